"""The SPIN/CLIFF npz format of training and evaluation data, read and checked.

One npz file describes N person instances (one row each):

    imgname   (N,)        image path relative to the dataset root                        required
    center    (N, 2)      box centre in image pixels                                     required
    scale     (N,)        box size / 200 (b = 200 * scale pixels)                        required
    part      (N, 24, 3)  2D keypoints in full-image pixels + confidence, J24 order      optional
    S         (N, 24, 4)  3D joints in the camera frame (metres) + confidence, J24       optional
    pose      (N, 72)     SMPL axis-angle pose, global orientation in the camera frame   optional
    shape     (N, 10)     SMPL betas                                                     optional
    has_smpl  (N,)        1 where pose/shape are valid (default: 1 if `pose` is present) optional
    focal_l   (N,)        focal length in pixels                                         optional
    cam_int   (N, 3, 3)   full intrinsics (focal and principal point)                    optional
    transl    (N, 3)      SMPL translation in the camera frame                           optional
    gender    (N,)        'm' / 'f' / 'n'                                                optional

Without `focal_l` / `cam_int`, the camera is CLIFF's default: f = sqrt(W^2 + H^2), principal
point at the image centre. J24 is SPIN's superset of ground-truth joints (`J24_NAMES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..npzio import read_npz


_REQUIRED = ("imgname", "center", "scale")
# key -> trailing shape of one row
_SHAPES = {
    "center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (3 * SMPL_NUM_JOINTS,), "shape": (SMPL_NUM_BETAS,),
    "has_smpl": (), "focal_l": (), "cam_int": (3, 3), "transl": (3,),
}  # fmt: skip


@dataclass
class Annotations:
    """The validated arrays of one npz file (float arrays as float32, rows aligned)."""

    path: Path
    imgname: np.ndarray  # (N,) str
    center: np.ndarray  # (N, 2)
    scale: np.ndarray  # (N,)
    part: np.ndarray  # (N, 24, 3), confidence 0 where the file has none
    S: np.ndarray | None  # (N, 24, 4)
    pose: np.ndarray  # (N, 72), zeros where has_smpl is 0
    shape: np.ndarray  # (N, 10)
    has_smpl: np.ndarray  # (N,) bool
    focal: np.ndarray | None  # (N,) pixels
    principal: np.ndarray | None  # (N, 2)
    transl: np.ndarray | None  # (N, 3)
    gender: np.ndarray | None  # (N,) str

    def __len__(self) -> int:
        return len(self.imgname)


def load_annotations(path: str | Path) -> Annotations:
    """Read and check one npz file; every problem names the file (and the row, where there is one)."""
    path = Path(path)
    raw = read_npz(path, "dataset file")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CliffError(f"{path}: missing key(s) {', '.join(missing)} (required: {', '.join(_REQUIRED)})")
    if not any(k in raw for k in ("part", "S", "pose")):
        raise CliffError(f"{path}: no supervision: needs at least one of 'part', 'S', 'pose'")
    n = len(raw["imgname"])
    for key, arr in raw.items():
        if arr.ndim == 0:
            raise CliffError(f"{path}: '{key}' must hold one row per sample, got a single value")
        if len(arr) != n:
            raise CliffError(f"{path}: '{key}' has {len(arr)} rows but 'imgname' has {n}")
        if key in _SHAPES and arr.shape[1:] != _SHAPES[key]:
            raise CliffError(f"{path}: '{key}' must have shape (N, {', '.join(map(str, _SHAPES[key]))}), got {arr.shape}")
    if ("pose" in raw) != ("shape" in raw):
        raise CliffError(f"{path}: 'pose' and 'shape' come together; found only {'pose' if 'pose' in raw else 'shape'}")

    f32 = {}
    for key in _SHAPES:
        if key not in raw:
            continue
        try:
            arr = raw[key].astype(np.float32)
        except (TypeError, ValueError):
            raise CliffError(f"{path}: '{key}' is not numeric ({raw[key].dtype})") from None
        bad = ~np.isfinite(arr.reshape(n, -1)).all(1)
        if bad.any():
            raise CliffError(f"{path}: index {int(np.argmax(bad))}: NaN or infinite value in '{key}' ({int(bad.sum())} rows)")
        f32[key] = arr
    _check_positive(path, f32["scale"], "scale")
    if "focal_l" in f32:
        _check_positive(path, f32["focal_l"], "focal_l")
    focal = f32.get("focal_l")
    principal = None
    if "cam_int" in f32:
        K = f32["cam_int"]
        _check_positive(path, K[:, 0, 0] * K[:, 1, 1], "cam_int focal")
        focal = np.sqrt(K[:, 0, 0] * K[:, 1, 1]) if focal is None else focal
        principal = K[:, :2, 2].copy()

    has_smpl = np.zeros(n, bool)
    if "pose" in f32:
        has_smpl = f32["has_smpl"] > 0.5 if "has_smpl" in f32 else np.ones(n, bool)
    part = f32.get("part", np.zeros((n, 24, 3), np.float32))
    return Annotations(
        path=path,
        imgname=raw["imgname"].astype(str),
        center=f32["center"],
        scale=f32["scale"],
        part=part,
        S=f32.get("S"),
        pose=np.where(has_smpl[:, None], f32.get("pose", np.zeros((n, 3 * SMPL_NUM_JOINTS), np.float32)), 0).astype(np.float32),
        shape=np.where(has_smpl[:, None], f32.get("shape", np.zeros((n, SMPL_NUM_BETAS), np.float32)), 0).astype(np.float32),
        has_smpl=has_smpl,
        focal=focal,
        principal=principal,
        transl=f32.get("transl"),
        gender=raw["gender"].astype(str) if "gender" in raw else None,
    )


def _check_positive(path: Path, values: np.ndarray, key: str) -> None:
    bad = values <= 0
    if bad.any():
        raise CliffError(f"{path}: index {int(np.argmax(bad))}: '{key}' must be positive, got {values[np.argmax(bad)]:g}")
