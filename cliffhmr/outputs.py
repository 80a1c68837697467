"""An `ImageResult` -> the files a user gets for one image.

DIR/<stem>.npz            arrays, see NPZ_KEYS
DIR/<stem>_overlay.png    meshes drawn over the photo
DIR/<stem>_side.png       the same meshes seen from the side (depth placement)
DIR/<stem>_person<i>.obj / .glb   one mesh per person, camera frame (GLB: glTF's Y-up frame)
DIR/<stem>.json           a readable summary

A rerun replaces an image's whole set: files of the set that this run does not write (a second
person's mesh when one person is found now, images after --no-render) are removed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import all_or_none
from .export import save_glb, save_json, save_npz, save_obj, save_png
from .pipeline import ImageResult, single_threaded

NPZ_KEYS = {
    "imgname": "(N,) image path, repeated per person (as in the official demo)",
    "pose": "(N, 3J) axis-angle local joint rotations, joint 0 = global orientation in the camera frame",
    "rotmat": "(N, J, 3, 3) the same as rotation matrices",
    "shape": "(N, S) body-model shape coefficients (SMPL betas, or Anny phenotype offsets)",
    "global_t": "(N, 3) body translation in the camera frame, metres",
    "pred_cam": "(N, 3) crop weak-perspective camera (s, tx, ty)",
    "pred_joints": "(N, K, 3) body-model joints then COCO-17 keypoints, camera frame, global_t applied",
    "pred_keypoints_2d": "(N, K, 2) pred_joints projected into the image, pixels",
    "joint_names": "(K,) names of pred_joints' rows",
    "focal_l": "(N,) focal length in pixels used for each person",
    "intrinsics": "(3, 3) camera matrix of the image",
    "center": "(N, 2) crop centre, pixels",
    "scale": "(N,) crop height / 200 pixels",
    "detection_all": "(N, 6) [image index, x1, y1, x2, y2, score] (as in the official demo)",
    "vertices": "(N, V, 3) mesh vertices, camera frame",
    "faces": "(F, 3) mesh triangles",
    "detected_keypoints": "(N, 17, 3) 2D keypoints the fit used (x, y, confidence); fitting path only",
    "quality": "(N,) fit quality in [0, 1]; fitting path only (NaN for the network path)",
}


def result_arrays(result: ImageResult) -> dict[str, np.ndarray]:
    people = result.people
    n = len(people)
    K = result.intrinsics
    nj = len(result.joint_names)

    def stack(attr, shape, dtype=np.float32):
        values = [getattr(p, attr) for p in people]
        return np.stack(values).astype(dtype) if n else np.zeros((0, *shape), dtype)

    n_rot = people[0].rotmat.shape[0] if n else 0
    n_betas = people[0].betas.shape[0] if n else 0
    detected = [p.detected_keypoints for p in people]
    return {
        "imgname": np.array([str(result.image.path or "")] * n),
        "pose": stack("pose", (n_rot * 3,)),
        "rotmat": stack("rotmat", (n_rot, 3, 3)),
        "shape": stack("betas", (n_betas,)),
        "global_t": stack("transl", (3,)),
        "pred_cam": stack("pred_cam", (3,)),
        "pred_joints": stack("joints", (nj, 3)),
        "pred_keypoints_2d": stack("keypoints_2d", (nj, 2)),
        "joint_names": np.array(result.joint_names),
        "focal_l": np.full((n,), K.focal, np.float32),
        "intrinsics": np.array([[K.fx, 0, K.cx], [0, K.fy, K.cy], [0, 0, 1]], np.float32),
        "center": stack("center", (2,)),
        "scale": np.array([p.scale for p in people], np.float32),
        "detection_all": np.array([[0, *p.bbox[:5]] for p in people], np.float32).reshape(n, 6),
        "vertices": stack("vertices", (result.faces.max() + 1 if result.faces.size else 0, 3)),
        "faces": result.faces.astype(np.int32),
        "detected_keypoints": (
            np.stack(detected).astype(np.float32) if n and all(d is not None for d in detected) else np.zeros((0, 17, 3), np.float32)
        ),
        "quality": np.array([np.nan if p.quality is None else p.quality for p in people], np.float32),
    }


def summary(result: ImageResult) -> dict:
    K = result.intrinsics
    return {
        "cliff_hmr_version": __version__,
        "image": str(result.image.path or ""),
        "width": result.image.width,
        "height": result.image.height,
        "camera": {"fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy},
        "body_model": result.body_model,
        "method": result.method,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "people": [
            {
                "bbox": [round(float(x), 2) for x in p.bbox[:4]],
                "score": round(float(p.bbox[4]), 4),
                "translation_m": [round(float(x), 4) for x in p.transl],
                "distance_m": round(float(np.linalg.norm(p.transl)), 4),
                "quality": None if p.quality is None else round(float(p.quality), 4),
                "flags": p.flags,
            }
            for p in result.people
        ],
    }


def write_outputs(result: ImageResult, out_dir: str | Path, stem: str, meshes: bool = True, images: bool = True) -> tuple[list[Path], list[Path]]:
    """Write every file for one image -> (paths written, stale paths of an earlier run removed).
    Adds 'render' and 'export' to result.timings."""
    from .render import render_overlay, render_side_view

    out_dir = Path(out_dir)
    K = result.intrinsics
    verts = [p.vertices for p in result.people]
    start = time.perf_counter()
    rendered = {}
    if images:
        with single_threaded():
            pixels = result.image.pixels
            rendered[f"{stem}_overlay.png"] = render_overlay(pixels, verts, result.faces, K.fx, K.fy, K.cx, K.cy)
            rendered[f"{stem}_side.png"] = render_side_view(pixels.shape[:2], verts, result.faces, K.fx, K.fy, K.cx, K.cy)
        result.timings["render"] = time.perf_counter() - start

    start = time.perf_counter()
    written = [out_dir / f"{stem}.npz"]
    with all_or_none():  # a disk that fills up mid-set leaves the earlier run's set whole
        save_npz(written[-1], result_arrays(result))
        for name, image in rendered.items():
            written.append(out_dir / name)
            save_png(written[-1], image)
        if meshes:
            for i, v in enumerate(verts):
                written += [out_dir / f"{stem}_person{i}.obj", out_dir / f"{stem}_person{i}.glb"]
                save_obj(written[-2], v, result.faces)
                save_glb(written[-1], v, result.faces)
        result.timings["export"] = time.perf_counter() - start
        written.append(out_dir / f"{stem}.json")
        save_json(written[-1], summary(result))
    removed = sorted(set(result_set(out_dir, stem)) - set(written))
    for stale in removed:
        stale.unlink()
    return written, removed


def result_set(out_dir: Path, stem: str) -> list[Path]:
    """The files in `out_dir` that belong to the image named `stem` (not to 'photo_person1.jpg'
    when the stem is 'photo')."""
    own = re.compile(rf"{re.escape(stem)}(\.npz|\.json|_overlay\.png|_side\.png|_person\d+\.(obj|glb))")
    return [p for p in Path(out_dir).iterdir() if own.fullmatch(p.name)] if Path(out_dir).is_dir() else []
