"""Result files: npz arrays, OBJ and GLB meshes, JSON summaries, PNG images.

Every writer goes through `atomic_path`, so an interrupted run leaves either the old file
or the complete new one, never a truncated file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path, write_bytes_atomic, write_npz_atomic, write_text_atomic


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    write_npz_atomic(path, arrays)


def save_png(path: str | Path, image: np.ndarray) -> None:
    # zlib level 1: 2.5x faster than PIL's default 6 on the bundled photos, files 8% larger.
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG", compress_level=1)


def save_json(path: str | Path, data) -> None:
    """Strict JSON: a non-finite number (a failed fit's NaN, a metric over no samples) is
    written as null; NaN and Infinity are not JSON, and strict parsers reject them."""
    write_text_atomic(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")


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
    f = np.asarray(faces, np.int64).reshape(-1, 3) + 1
    # One %-format over the whole array: 3x faster than a format per line, the same text.
    return ("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel()) + ("f %d %d %d\n" * len(f)) % tuple(f.ravel())


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
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)  # chunks are 4-byte aligned; JSON pads with spaces, binary with zeros
    binary = vbin + ibin
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON") + js
        + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    )


def save_glb(path: str | Path, vertices: np.ndarray, faces: np.ndarray, color=(0.65, 0.74, 0.86)) -> None:
    write_bytes_atomic(path, glb_bytes(vertices, faces, color))
