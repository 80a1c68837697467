"""What both renderers share: the scene as one mesh, per-person colours, the light and the
smooth normals (the software rasteriser in `render`, the optional OpenGL one in `render_gl`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

PALETTE = np.array(
    [
        (140, 180, 235),  # light blue
        (235, 150, 120),  # salmon
        (150, 215, 140),  # green
        (240, 205, 110),  # yellow
        (195, 150, 225),  # lavender
        (110, 210, 210),  # teal
        (240, 140, 190),  # pink
        (185, 160, 120),  # tan
    ],
    dtype=np.float64,
)
"""Default per-person RGB colours, used in order and cycled."""

AMBIENT = 0.3
# Direction towards the light: from just above and right of the camera (y is down).
LIGHT = torch.tensor([0.25, -0.4, -1.0], dtype=torch.float64)
LIGHT = LIGHT / LIGHT.norm()

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, dtype: torch.dtype) -> torch.Tensor:
    """Any array (strided, float32/64, numpy or torch) -> contiguous CPU tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=dtype).contiguous()
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def scene(meshes: Sequence[ArrayLike], faces: ArrayLike | Sequence[ArrayLike]):
    """Concatenate meshes into one: -> verts (V, 3) f64, faces (F, 3) i64, face_offsets (N+1,).

    `faces` is one (F, 3) array shared by all meshes, or a list/tuple with one per mesh.
    Mesh n owns faces face_offsets[n]:face_offsets[n+1] of the result.
    """
    verts = [as_tensor(v, torch.float64) for v in meshes]
    if isinstance(faces, (list, tuple)):
        if len(faces) != len(verts):
            raise ValueError(f"got {len(faces)} face arrays for {len(verts)} meshes")
        tris = [as_tensor(f, torch.int64) for f in faces]
    else:
        tris = [as_tensor(faces, torch.int64)] * len(verts)
    start, all_faces, sizes = 0, [torch.zeros(0, 3, dtype=torch.int64)], [0]
    for v, f in zip(verts, tris):
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(f.shape)}")
        if f.numel() and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError(f"face indices must lie in [0, {len(v)})")
        all_faces.append(f + start)
        start += len(v)
        sizes.append(len(f))
    verts = torch.cat([torch.zeros(0, 3, dtype=torch.float64), *verts])
    return verts, torch.cat(all_faces), torch.tensor(sizes).cumsum(0)


def mesh_colors(colors, n: int) -> np.ndarray:
    """Per-mesh RGB in 0..255 -> (n, 3) float64; None cycles `PALETTE`."""
    if colors is None:
        return PALETTE[np.arange(n) % len(PALETTE)]
    rgb = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    if len(rgb) < n:
        raise ValueError(f"got {len(rgb)} colours for {n} meshes")
    return rgb[:n]


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (V, 3); zero for unused vertices."""
    tri = verts[faces]
    fn = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = torch.zeros_like(verts)
    for corner in range(3):
        vn.index_add_(0, faces[:, corner], fn)
    return vn / vn.norm(dim=1, keepdim=True).clamp_min(1e-12)
