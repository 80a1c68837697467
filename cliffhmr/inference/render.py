"""Offscreen software renderer: shaded mesh overlays on photos, and side views.

CPU only, numpy + torch, no OpenGL. Camera convention (OpenCV): camera at the origin,
x right, y down, z forward; a camera-space point (X, Y, Z) projects to
``u = fx*X/Z + cx``, ``v = fy*Y/Z + cy``, and pixel (row j, column i) covers
[i, i+1) x [j, j+1) with its centre at (u, v) = (i + 0.5, j + 0.5): the package's continuous
pixel coordinates (`geometry.camera`). Inside, the rasteriser works in pixel indices, u - 0.5.

How a mesh is rasterised:

* Triangles with any vertex at z <= `NEAR` are dropped (no clipping), as are
  degenerate ones (zero screen area). Both windings are drawn (no back-face culling).
* A pixel is covered when its centre is strictly inside a triangle, or exactly on an
  edge that is a top or left edge of it (the usual top-left fill rule), so triangles
  sharing an edge cover each pixel along it exactly once. Each edge function is
  evaluated with the edge's endpoints in a canonical screen-space order, so both
  triangles of a shared edge compute bit-identical values of opposite sign.
* Depth is perspective-correct: 1/z is interpolated with screen-space barycentrics.
* Each triangle's pixel bounding box is cut into tiles of at most `_TILE` pixels a
  side; tiles are bucketed by power-of-two size and each bucket is evaluated as a
  padded (n, 3 edges, h, w) grid by broadcasting, at most `_CHUNK` pixels at a time.
* The z-buffer is one packed int64 key per pixel, ``float32 depth bits << 32 | face``,
  reduced with ``scatter_reduce('amin')``: the nearest face wins, ties go to the lower
  face id. All meshes of a scene share one z-buffer, so people occlude each other.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from .shading import AMBIENT, LIGHT, ArrayLike, as_tensor, mesh_colors, scene, vertex_normals

NEAR = 1e-3
"""Triangles with a vertex at z <= NEAR (metres) are not drawn."""

_TILE = 64
_CHUNK = 1 << 20  # candidate pixels per step: bounds the temporaries to tens of MB
_NO_HIT = torch.iinfo(torch.int64).max


# ------------------------------------------------------------------------ rasteriser


def _project(verts: torch.Tensor, fx, fy, cx, cy) -> torch.Tensor:
    """(V, 3) camera coords -> (V, 2) pixel indices (u - 0.5, v - 0.5): pixel (j, i)'s centre is
    at index (i, j). Garbage where z <= 0."""
    z = verts[:, 2]
    return torch.stack((fx * verts[:, 0] / z + (cx - 0.5), fy * verts[:, 1] / z + (cy - 0.5)), dim=1)


def _setup_triangles(xy: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> dict:
    """Per drawable triangle: what the tile rasteriser needs.

    xy (V, 2) vertex pixel coords, z (V,) vertex depths, faces (F, 3).
    Returns a dict of tensors over the T drawable triangles:
      id (T,) index into faces; box (T, 4) int64 pixel bbox [x0, y0, w, h];
      a (T, 3, 2) canonical start point of edge k (the edge opposite vertex k);
      d (T, 3, 2) edge direction, signed so the edge function is positive inside;
      top_left (T, 3) bool, whether edge k owns pixel centres lying exactly on it;
      inv_z (T, 3) 1/z of vertex k.
    """
    xy, z = xy[faces], z[faces]  # (F, 3, 2), (F, 3)
    e1, e2 = xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # > 0: clockwise on screen (y down)

    # Clamp before rounding so near-plane vertices (|u| ~ 1e12) cannot overflow int64.
    lo = xy.amin(1).clamp(-1, max(height, width)).ceil().long()
    hi = xy.amax(1).clamp(-1, max(height, width)).floor().long()
    lo = torch.maximum(lo, torch.zeros_like(lo))
    hi = torch.minimum(hi, torch.tensor([width - 1, height - 1]))
    keep = (z > NEAR).all(1) & (area2 != 0) & torch.isfinite(area2) & (lo <= hi).all(1)
    ids = keep.nonzero().squeeze(1)
    xy, z, area2, lo, hi = xy[ids], z[ids], area2[ids], lo[ids], hi[ids]

    # Edge k runs from vertex k+1 to k+2. Order its endpoints lexicographically so that
    # the two triangles sharing it evaluate the same expression, then flip the direction
    # so the edge function is positive inside (negating both factors is exact).
    a, b = xy[:, [1, 2, 0]], xy[:, [2, 0, 1]]  # (T, 3, 2)
    swap = (b[..., 0] < a[..., 0]) | ((b[..., 0] == a[..., 0]) & (b[..., 1] < a[..., 1]))
    start = torch.where(swap[..., None], b, a)
    sign = torch.where(swap, -1.0, 1.0) * area2.sign()[:, None]
    d = (torch.where(swap[..., None], a, b) - start) * sign[..., None]
    # With y down and the inside on the positive side, a left edge points up (dy < 0)
    # and a top edge points right (dy == 0, dx > 0).
    top_left = (d[..., 1] < 0) | ((d[..., 1] == 0) & (d[..., 0] > 0))
    return {
        "id": ids,
        "box": torch.cat((lo, hi - lo + 1), dim=1),
        "a": start,
        "d": d,
        "top_left": top_left,
        "inv_z": 1.0 / z,
    }


def _split_tiles(box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut boxes (T, 4) [x0, y0, w, h] into tiles of at most _TILE a side.

    Returns owner (N,) the box each tile came from, and tiles (N, 4) in the same layout.
    """
    nx = (box[:, 2] + _TILE - 1) // _TILE
    ny = (box[:, 3] + _TILE - 1) // _TILE
    count = nx * ny
    owner = torch.repeat_interleave(torch.arange(len(box)), count)
    first = torch.cumsum(count, 0) - count
    k = torch.arange(len(owner)) - first[owner]  # tile number within its box
    off = torch.stack((k % nx[owner], k // nx[owner]), dim=1) * _TILE
    b = box[owner]
    tiles = torch.cat((b[:, :2] + off, torch.minimum(b[:, 2:] - off, torch.tensor(_TILE))), dim=1)
    return owner, tiles


def _cover_tiles(tiles: torch.Tensor, tri: dict, owner: torch.Tensor, gw: int, gh: int, width: int):
    """Rasterise n tiles, each padded to a (gh, gw) grid.

    tiles (n, 4) [x0, y0, w, h] with w <= gw, h <= gh; owner (n,) triangle of each tile.
    Returns, per covered pixel: flat pixel index (M,), triangle (M,), depth (M,) f64.
    """
    x0, y0, w, h = tiles.unbind(1)
    ix, iy = torch.arange(gw), torch.arange(gh)
    px = (x0[:, None] + ix).double()  # (n, gw) pixel-centre u
    py = (y0[:, None] + iy).double()  # (n, gh) pixel-centre v
    a, d = tri["a"][owner], tri["d"][owner]  # (n, 3, 2)
    # Edge functions, (n, 3, gh, gw): dx*(v - ay) - dy*(u - ax), built by broadcasting.
    ev = d[..., 0, None] * (py[:, None, :] - a[..., 1, None])  # (n, 3, gh)
    eu = d[..., 1, None] * (px[:, None, :] - a[..., 0, None])  # (n, 3, gw)
    e = ev[..., :, None] - eu[..., None, :]
    on_edge_ok = tri["top_left"][owner][..., None, None]
    inside = ((e > 0) | ((e == 0) & on_edge_ok)).all(1)
    inside &= (iy[:, None] < h[:, None, None]) & (ix < w[:, None, None])
    t, r, c = inside.nonzero(as_tuple=True)
    e_in = e[t, :, r, c]  # (M, 3): barycentrics up to a common factor
    owner_t = owner[t]
    depth = e_in.sum(1) / (e_in * tri["inv_z"][owner_t]).sum(1)
    pix = (y0[t] + r) * width + (x0[t] + c)
    return pix, owner_t, depth


def _zbuffer(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int, fx, fy, cx, cy):
    """verts (V, 3) f64, faces (F, 3) i64 -> depth (H, W) f32 (inf = empty), face (H, W) i64 (-1)."""
    tri = _setup_triangles(_project(verts, fx, fy, cx, cy), verts[:, 2], faces, height, width)
    owner, tiles = _split_tiles(tri["box"])
    # Bucket tiles by power-of-two padded size so little of each grid is wasted.
    log_w = torch.ceil(torch.log2(tiles[:, 2].double())).long()
    log_h = torch.ceil(torch.log2(tiles[:, 3].double())).long()
    bucket = log_h * 64 + log_w
    order = torch.argsort(bucket)
    kinds, counts = torch.unique_consecutive(bucket[order], return_counts=True)
    keys = torch.full((height * width,), _NO_HIT, dtype=torch.int64)
    for kind, part in zip(kinds.tolist(), torch.split(order, counts.tolist())):
        gh, gw = 1 << (kind // 64), 1 << (kind % 64)
        for chunk in torch.split(part, max(1, _CHUNK // (gh * gw))):
            pix, t, depth = _cover_tiles(tiles[chunk], tri, owner[chunk], gw, gh, width)
            # Positive float32 bit patterns sort like the floats they encode.
            key = (depth.float().view(torch.int32).long() << 32) | t
            keys.scatter_reduce_(0, pix, key, "amin")
    hit = keys != _NO_HIT
    face = torch.full_like(keys, -1)
    face[hit] = tri["id"][keys[hit] & 0xFFFFFFFF]
    depth = torch.full((height * width,), math.inf, dtype=torch.float32)
    depth[hit] = (keys[hit] >> 32).int().view(torch.float32)
    return depth.view(height, width), face.view(height, width)


def rasterize_meshes(meshes: Sequence[ArrayLike], faces, height: int, width: int, fx, fy, cx, cy):
    """Rasterise several meshes into one z-buffer.

    meshes: list of (V_n, 3) vertex arrays in camera coordinates (metres);
    faces: (F, 3) shared by all meshes, or a list with one (F_n, 3) array per mesh.
    Returns depth (H, W) float32 (inf where empty), face_index (H, W) int64 (the face
    within its own mesh, -1 where empty), mesh_index (H, W) int64 (-1 where empty).
    """
    verts, all_faces, offsets = scene(meshes, faces)
    depth, face = _zbuffer(verts, all_faces, int(height), int(width), fx, fy, cx, cy)
    mesh = torch.searchsorted(offsets, face, right=True) - 1
    mesh[face < 0] = -1
    local = torch.where(face >= 0, face - offsets[mesh.clamp_min(0)], face)
    return depth.numpy(), local.numpy(), mesh.numpy()


def rasterize(verts_cam: ArrayLike, faces: ArrayLike, height: int, width: int, fx, fy, cx, cy):
    """Rasterise one mesh: verts_cam (V, 3) camera coords, faces (F, 3).

    Returns depth (H, W) float32 (inf where empty) and face_index (H, W) int64 (-1).
    """
    depth, face, _ = rasterize_meshes([verts_cam], [faces], height, width, fx, fy, cx, cy)
    return depth, face


# --------------------------------------------------------------------------- shading


def _lambert(verts, faces, face, u, v, fx, fy, cx, cy) -> torch.Tensor:
    """Brightness (M,) in [AMBIENT, 1] at the centres of pixels (column u, row v) (M,) lying on faces face (M,).

    Smooth normals interpolated perspective-correctly, flipped to face the camera so
    inside-out or inconsistently wound meshes are lit the same. What depends only on the face
    (its corners on screen, their normals and depths) is worked out once per drawn face, in
    float32, and gathered per pixel: there are several pixels per face.
    """
    drawn, at = torch.unique(face, return_inverse=True)  # the faces seen, and each pixel's among them
    idx = faces[drawn]  # (D, 3)
    tri = verts[idx]  # (D, 3, 3)
    xy = _project(tri.reshape(-1, 3), fx, fy, cx, cy).view(-1, 3, 2).float()
    inv_z = (1.0 / tri[..., 2]).float()
    normals = vertex_normals(verts, faces)[idx].float()  # (D, 3, 3) at the corners
    flat = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1).float()
    p = torch.stack((u, v), 1).float()[:, None]  # (M, 1, 2)
    corners = xy[at]  # (M, 3, 2)
    a, b = corners[:, [1, 2, 0]] - p, corners[:, [2, 0, 1]] - p
    w = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) * inv_z[at]  # (M, 3), up to a common factor
    w = w / w.sum(1, keepdim=True)
    n = torch.einsum("mk,mkc->mc", w, normals[at])
    n = torch.where(n.norm(dim=1, keepdim=True) < 1e-6, flat[at], n)  # normals cancelled out
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ray = torch.stack(((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, torch.ones_like(u)), 1).float()
    n = torch.where((n * ray).sum(1, keepdim=True) > 0, -n, n)
    return (AMBIENT + (1 - AMBIENT) * (n @ LIGHT.float()).clamp_min(0)).double()


def _use_gl(height: int, width: int) -> bool:
    """Whether OpenGL draws (`render_gl`; CLIFFHMR_RENDERER: auto, the default; gl; software)."""
    choice = os.environ.get("CLIFFHMR_RENDERER", "auto")
    if choice not in ("auto", "gl", "software"):
        raise ValueError(f"CLIFFHMR_RENDERER must be auto, gl or software, got {choice!r}")
    if choice == "software":
        return False
    from . import render_gl

    if render_gl.available() and max(height, width) <= render_gl.max_size():
        return True
    if choice == "gl":
        raise RuntimeError(f"CLIFFHMR_RENDERER=gl, but OpenGL cannot draw here ({render_gl.why_not()})")
    return False


def _render(height: int, width: int, meshes, faces, fx, fy, cx, cy, colors):
    """Shaded colours of all meshes, by the software rasteriser -> rgb (H, W, 3) float in 0..255
    and coverage mask (H, W)."""
    verts, all_faces, offsets = scene(meshes, faces)
    _, face = _zbuffer(verts, all_faces, height, width, fx, fy, cx, cy)
    mask = face >= 0
    rows, cols = mask.nonzero(as_tuple=True)
    f = face[mask]
    shade = _lambert(verts, all_faces, f, cols.double(), rows.double(), fx, fy, cx, cy)
    mesh = torch.searchsorted(offsets, f, right=True) - 1
    rgb = np.zeros((height, width, 3))
    mask_np = mask.numpy()
    rgb[mask_np] = mesh_colors(colors, len(offsets) - 1)[mesh.numpy()] * shade.numpy()[:, None]
    return rgb, mask_np


def render_overlay(
    image: np.ndarray, meshes: Sequence[ArrayLike], faces, fx, fy, cx, cy, colors=None, alpha: float = 0.85
) -> np.ndarray:
    """Blend shaded meshes over a photo.

    image (H, W, 3) uint8 RGB; meshes: list of (V_n, 3) camera-space vertices;
    faces: (F, 3) shared, or one array per mesh; colors: per-mesh RGB 0..255 (default
    `PALETTE`); alpha: mesh opacity. Returns a new (H, W, 3) uint8 image in which only
    covered pixels differ from `image`.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if _use_gl(*image.shape[:2]):
        from . import render_gl

        return render_gl.draw(*image.shape[:2], meshes, faces, fx, fy, cx, cy, colors, NEAR, photo=image, alpha=alpha)
    rgb, mask = _render(image.shape[0], image.shape[1], meshes, faces, fx, fy, cx, cy, colors)
    out = image.copy()
    out[mask] = np.rint(alpha * rgb[mask] + (1 - alpha) * image[mask]).clip(0, 255).astype(np.uint8)
    return out


def _rotation_y(angle_deg: float) -> torch.Tensor:
    """Rotation about camera +y (down) by angle_deg: +90 turns +z (away) into +x (right)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _fit_depth(verts: torch.Tensor, width: int, height: int, fx, fy, cx, cy, margin: float = 0.05) -> float:
    """Smallest shift along +z that puts every vertex (V, 3) in front of the camera and inside
    the frame, `margin` of the frame away from its edges."""
    x, y, z = verts.unbind(1)
    room_u = torch.where(x < 0, cx - margin * width, width * (1 - margin) - cx) / fx
    room_v = torch.where(y < 0, cy - margin * height, height * (1 - margin) - cy) / fy
    need = torch.maximum(x.abs() / room_u.clamp_min(1e-6), y.abs() / room_v.clamp_min(1e-6))
    need = torch.maximum(need, torch.full_like(need, 0.1)) - z  # and at least 10 cm deep
    return float(need.max().clamp_min(0.0))


def render_side_view(
    image_shape: tuple[int, ...],
    meshes: Sequence[ArrayLike],
    faces,
    fx,
    fy,
    cx,
    cy,
    colors=None,
    angle_deg: float = 90.0,
    background=(255, 255, 255),
) -> np.ndarray:
    """Render the meshes turned by angle_deg about the vertical through their centroid.

    The centroid is the mean of all vertices of all meshes; at +90 degrees depth becomes
    left-right: farther people appear further right, as if seen from the camera's right-hand
    side. The turned scene is then moved away from the camera, if needed, until every vertex
    lies in the frame, so people spread out in depth all stay visible.
    image_shape: (H, W) or (H, W, 3). Returns (H, W, 3) uint8 on `background`.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    verts = [as_tensor(v, torch.float64) for v in meshes]
    if sum(len(v) for v in verts):
        centre = torch.cat(verts).mean(0)
        rot = _rotation_y(angle_deg)
        verts = [(v - centre) @ rot.T + centre for v in verts]
        verts = [v + torch.tensor([0.0, 0.0, _fit_depth(torch.cat(verts), width, height, fx, fy, cx, cy)]) for v in verts]
    if _use_gl(height, width):
        from . import render_gl

        return render_gl.draw(height, width, verts, faces, fx, fy, cx, cy, colors, NEAR, background=background)
    rgb, mask = _render(height, width, verts, faces, fx, fy, cx, cy, colors)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = np.asarray(background, dtype=np.uint8)
    out[mask] = np.rint(rgb[mask]).clip(0, 255).astype(np.uint8)
    return out
