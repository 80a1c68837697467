"""Result files: npz arrays, OBJ and GLB meshes, JSON summaries, PNG images.

Every writer goes through `atomic_path`, so an interrupted run leaves either the old file
or the complete new one, never a truncated file.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # Intel's ISA-L deflate (the `fast` extra): 4-5x zlib's level 1, files no larger
    from isal import isal_zlib as _deflate
except ImportError:
    _deflate = zlib

from ..atomic import write_bytes_atomic, write_npz_atomic, write_text_atomic


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    write_npz_atomic(path, arrays)


def save_png(path: str | Path, image: np.ndarray) -> None:
    """An (H, W, 3) uint8 RGB image as PNG (`png_bytes`), written under a temporary name."""
    write_bytes_atomic(path, png_bytes(image))


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> an 8-bit RGB PNG file.

    Every row with the "up" filter (the difference from the row above, worked out with numpy)
    and deflate at level 1, by ISA-L where the `fast` extra is installed, else zlib
    (benchmarks/file_writing.py has the times and sizes).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"a PNG here is (H, W, 3) uint8, got {image.shape} {image.dtype}")
    h, w, _ = image.shape
    rows = image.reshape(h, w * 3)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the filter is defined
    raw = np.concatenate((np.full((h, 1), 2, np.uint8), up), axis=1)  # filter type 2 (up) per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, colour type 2 (RGB), no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", _deflate.compress(raw.tobytes(), 1)) + chunk(b"IEND", b"")


def save_json(path: str | Path, data) -> None:
    """Strict JSON: a non-finite number (a failed fit's NaN, a metric over no samples) is
    written as null; NaN and Infinity are not JSON, and strict parsers reject them."""
    write_text_atomic(path, json_text(data) + "\n")


def json_text(data, indent: int | None = 2) -> str:
    """`data` (numpy arrays and values, paths, NaN included) as strict JSON text, as `save_json` writes it."""
    return json.dumps(_plain(data), indent=indent, allow_nan=False)


def _plain(obj):
    """`obj` with numpy values as Python ones, paths as strings and non-finite floats as None."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return _plain(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def obj_text(vertices: np.ndarray, faces: np.ndarray) -> str:
    """Wavefront OBJ text for vertices (V, 3) and 0-based triangles (F, 3)."""
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    # One %-format over the whole array: 3x faster than a format per line, the same text.
    return ("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel().tolist()) + _face_text(faces)


_FACE_TEXT: dict[bytes, str] = {}  # the last faces' lines: every person of one body model shares them


def _face_text(faces: np.ndarray) -> str:
    """OBJ 'f' lines of 0-based triangles (F, 3), made once per distinct face array."""
    f = np.ascontiguousarray(faces, np.int64).reshape(-1, 3)
    key = hashlib.blake2b(f.tobytes(), digest_size=16).digest()
    text = _FACE_TEXT.get(key)
    if text is None:
        text = ("f %d %d %d\n" * len(f)) % tuple((f + 1).ravel().tolist())
        _FACE_TEXT.clear()
        _FACE_TEXT[key] = text
    return text


def save_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    write_text_atomic(path, obj_text(vertices, faces))


def glb_bytes(vertices: np.ndarray, faces: np.ndarray, color=(0.65, 0.74, 0.86)) -> bytes:
    """A binary glTF 2.0 file holding one triangle mesh with one matte material.

    glTF is Y-up with the viewer looking down -Z; our camera frame is y-down, z-forward, so the
    mesh is rotated 180 degrees about X on the way out and appears upright in glTF viewers.
    """
    v = np.asarray(vertices, np.float32) * np.array([1, -1, -1], np.float32)
    f = np.asarray(faces, np.uint32)
    if f.size and f.max() >= len(v):
        raise ValueError("face index out of range")
    vbin, ibin = v.tobytes(), f.tobytes()
    gltf = {
        "asset": {"version": "2.0", "generator": "cliff-hmr"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0, "mode": 4}]}],
        "materials": [
            {"pbrMetallicRoughness": {"baseColorFactor": [*map(float, color), 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8},
             "doubleSided": True}
        ],
        "buffers": [{"byteLength": len(vbin) + len(ibin)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(vbin), "target": 34962},
            {"buffer": 0, "byteOffset": len(vbin), "byteLength": len(ibin), "target": 34963},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(v), "type": "VEC3",
             "min": v.min(0).tolist() if len(v) else [0, 0, 0], "max": v.max(0).tolist() if len(v) else [0, 0, 0]},
            {"bufferView": 1, "componentType": 5125, "count": int(f.size), "type": "SCALAR"},
        ],
    }
    return _glb(gltf, vbin + ibin)


def _glb(gltf: dict, binary: bytes) -> bytes:
    """A binary glTF file: the JSON chunk and the binary buffer, each 4-byte aligned."""
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)  # chunks are 4-byte aligned; JSON pads with spaces, binary with zeros
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON") + js
        + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    )


def save_glb(path: str | Path, vertices: np.ndarray, faces: np.ndarray, color=(0.65, 0.74, 0.86)) -> None:
    write_bytes_atomic(path, glb_bytes(vertices, faces, color))


# Camera frame (x right, y down, z forward) -> glTF's and BVH's Y-up frame (the viewer looking down -Z).
Y_UP = np.diag([1.0, -1.0, -1.0])


@dataclass
class Motion:
    """One person's motion for animation files: their skeleton at their (track's) shape, and per frame
    the joints' local rotations and the body's translation in the camera frame.

    rest_vertices (V, 3), rest_joints (J, 3): the body at rest, canonical frame (Y up, facing +Z);
    faces (F, 3); weights (V, J) skinning weights; parents (J,) -1 for the root; names (J,);
    rotmat (T, J, 3, 3) local rotations, [0] in the camera frame; transl (T, 3) camera frame;
    times (T,) seconds.
    """

    rest_vertices: np.ndarray
    rest_joints: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    parents: list[int]
    names: list[str]
    rotmat: np.ndarray
    transl: np.ndarray
    times: np.ndarray

    def root_position(self) -> np.ndarray:
        """(T, 3) the root joint in the Y-up frame, metres (it turns about its rest place, then moves by transl)."""
        return (self.rest_joints[0] + self.transl) @ Y_UP.T

    def local_rotations(self) -> np.ndarray:
        """(T, J, 3, 3) rotations in the Y-up frame: the root's turned with the frame, the others local."""
        R = np.array(self.rotmat, np.float64)
        R[:, 0] = Y_UP @ R[:, 0]
        return R


def _quaternions(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions (x, y, z, w), glTF's order."""
    import torch

    from ..geometry.rotation import rotmat_to_quat

    return rotmat_to_quat(torch.as_tensor(R, dtype=torch.float64)).numpy()


def animation_glb_bytes(motion: Motion, color=(0.65, 0.74, 0.86)) -> bytes:
    """A binary glTF 2.0 file of a skinned mesh whose skeleton is keyframed at every time of
    `motion`: joint rotations (and the root's translation), linearly interpolated between frames.

    The four strongest skinning weights of each vertex are kept (renormalised), as every glTF
    viewer supports; Anny's vertices have at most 7, 1.6 on average, and skinning is linear blend
    as in the body model (SMPL's pose-dependent corrections are not carried).
    """
    views, accessors, chunks = [], [], []

    def add(array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        offset = sum(len(c) for c in chunks)
        chunks.append(data + b"\0" * (-len(data) % 4))
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": int(array.shape[0]), "type": kind}
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            acc["min"], acc["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    J = len(motion.parents)
    weights = np.asarray(motion.weights, np.float64)
    strongest = np.argsort(-weights, axis=1, kind="stable")[:, :4]
    w4 = np.take_along_axis(weights, strongest, axis=1)
    w4 /= w4.sum(1, keepdims=True)
    strongest[w4 == 0] = 0  # unused slots point at joint 0, as validators ask
    rest_joints = np.asarray(motion.rest_joints, np.float64)
    offsets = rest_joints - np.where(np.array(motion.parents)[:, None] >= 0, rest_joints[np.maximum(motion.parents, 0)], 0.0)
    inverse_bind = np.tile(np.eye(4), (J, 1, 1))
    inverse_bind[:, :3, 3] = -rest_joints  # the rest skeleton has no turns: binding undoes its joints' places
    position = add(np.asarray(motion.rest_vertices, np.float32), "VEC3", 5126, 34962, bounds=True)
    joints0 = add(strongest.astype(np.uint16), "VEC4", 5123, 34962)
    weights0 = add(w4.astype(np.float32), "VEC4", 5126, 34962)
    indices = add(np.asarray(motion.faces, np.uint32).reshape(-1), "SCALAR", 5125, 34963)
    ibm = add(inverse_bind.transpose(0, 2, 1).astype(np.float32), "MAT4", 5126)  # glTF matrices are column-major
    times = add(np.asarray(motion.times, np.float32), "SCALAR", 5126, bounds=True)
    rotations = _quaternions(motion.local_rotations()).astype(np.float32)
    samplers = [{"input": times, "output": add(rotations[:, j], "VEC4", 5126), "interpolation": "LINEAR"} for j in range(J)]
    samplers.append({"input": times, "output": add(motion.root_position().astype(np.float32), "VEC3", 5126), "interpolation": "LINEAR"})
    channels = [{"sampler": j, "target": {"node": 1 + j, "path": "rotation"}} for j in range(J)]
    channels.append({"sampler": J, "target": {"node": 1, "path": "translation"}})
    nodes = [{"name": "body", "mesh": 0, "skin": 0}]
    for j in range(J):
        node = {"name": motion.names[j], "translation": offsets[j].tolist()}
        children = [1 + c for c in range(J) if motion.parents[c] == j]
        if children:
            node["children"] = children
        nodes.append(node)
    gltf = {
        "asset": {"version": "2.0", "generator": "cliff-hmr"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1]}],
        "nodes": nodes,
        "skins": [{"joints": list(range(1, J + 1)), "inverseBindMatrices": ibm, "skeleton": 1}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": position, "JOINTS_0": joints0, "WEIGHTS_0": weights0},
                                    "indices": indices, "material": 0, "mode": 4}]}],  # fmt: skip
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*map(float, color), 1.0], "metallicFactor": 0.0,
                                                "roughnessFactor": 0.8}, "doubleSided": True}],  # fmt: skip
        "animations": [{"name": "motion", "samplers": samplers, "channels": channels}],
        "buffers": [{"byteLength": sum(len(c) for c in chunks)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    return _glb(gltf, b"".join(chunks))


def euler_zxy(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) angles (z, x, y) in degrees with R = Rz(z) @ Rx(x) @ Ry(y), BVH's
    usual channel order Zrotation Xrotation Yrotation."""
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    y = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    z = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    return np.degrees(np.stack((z, x, y), -1))


def bvh_text(motion: Motion) -> str:
    """The skeleton's motion as BVH: centimetres, Y up; the root's position and every joint's
    rotation (Z, X, Y Euler angles in degrees) per frame. BVH has one frame interval: the median
    of `motion.times`' steps (a variable frame rate, or frames the person was not seen in, are not kept)."""
    J = len(motion.parents)
    rest = np.asarray(motion.rest_joints, np.float64) * 100.0
    lines = ["HIERARCHY"]
    order: list[int] = []  # the joints as the hierarchy lists them, depth first: the order of each frame's values

    def joint(j: int, depth: int) -> None:
        order.append(j)
        pad = "  " * depth
        offset = [0.0, 0.0, 0.0] if j == 0 else (rest[j] - rest[motion.parents[j]]).tolist()
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {motion.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "6 Xposition Yposition Zposition" if j == 0 else "3"
        lines.append(f"{pad}  CHANNELS {channels} Zrotation Xrotation Yrotation")
        children = [c for c in range(J) if motion.parents[c] == j]
        for c in children:
            joint(c, depth + 1)
        if not children:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.000000 0.000000 0.000000", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    times = np.asarray(motion.times, np.float64)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / 30
    angles = euler_zxy(motion.local_rotations()[:, order]).reshape(len(times), -1)
    values = np.concatenate((motion.root_position() * 100.0, angles), axis=1)
    lines += ["MOTION", f"Frames: {len(times)}", f"Frame Time: {step:.6f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def save_animation(glb_path: str | Path, bvh_path: str | Path, motion: Motion) -> None:
    write_bytes_atomic(glb_path, animation_glb_bytes(motion))
    write_text_atomic(bvh_path, bvh_text(motion))
