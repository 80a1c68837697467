"""The rows of the CLIFF+ annotator's dataset, in the SPIN/CLIFF npz format (`data.npz_format`).

Each person the pipeline finds becomes one row: the detected box (x1.2, the evaluation and
training convention), the detected 2D keypoints in SPIN's J24 order, the camera, and, with an
SMPL body, the refined SMPL parameters as pseudo ground truth (which refinement: `run`).
Anny's parameters are not SMPL's, so without `--smpl` the file holds 2D supervision only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..atomic import check_output_file, write_npz_atomic
from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..fitting.fit import FitConfig
from ..perception import crop
from ..inference.pipeline import ImageResult
from ..data.joints import coco17_to_j24

SMPL_POSE_DIM = 3 * SMPL_NUM_JOINTS


def result_rows(result: ImageResult, imgname: str, min_quality: float) -> dict[str, np.ndarray]:
    """The dataset rows of one image's people (keys as `npz_format.load_annotations` reads them)."""
    n = len(result.people)
    K = result.intrinsics
    boxes = torch.as_tensor(np.array([p.bbox[:4] for p in result.people], np.float32).reshape(n, 4))
    center, scale = crop.box_to_center_scale(boxes, rescale=crop.RESCALE_EVALUATION)
    detected = np.array([p.detected_keypoints for p in result.people], np.float32).reshape(n, 17, 3)
    quality = np.array([np.nan if p.quality is None else p.quality for p in result.people], np.float32)
    rows = {
        "imgname": np.array([imgname] * n, dtype=str),
        "center": center.numpy(),
        "scale": scale.numpy(),
        "part": coco17_to_j24(detected, FitConfig.min_confidence),  # what the fit used, and nothing it ignored
        "focal_l": np.full(n, K.focal, np.float32),
        "cam_int": np.tile(np.array([[K.fx, 0, K.cx], [0, K.fy, K.cy], [0, 0, 1]], np.float32), (n, 1, 1)),
        "quality": quality,
    }
    if result.body_model == "smpl":
        rows["pose"] = np.array([p.pose[:SMPL_POSE_DIM] for p in result.people], np.float32).reshape(n, SMPL_POSE_DIM)
        rows["shape"] = np.array([p.betas[:SMPL_NUM_BETAS] for p in result.people], np.float32).reshape(n, SMPL_NUM_BETAS)
        rows["transl"] = np.array([p.transl for p in result.people], np.float32).reshape(n, 3)
        rows["has_smpl"] = (quality >= min_quality).astype(np.float32)
    return rows


def concat_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join per-image rows; every part has the same keys."""
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def write_dataset(path: str | Path, rows: dict[str, np.ndarray]) -> None:
    """One npz, written under a temporary name and renamed."""
    write_npz_atomic(path, rows)


def dataset_root(source: str | Path) -> Path:
    """The folder image names are relative to: the input folder, or a single image's folder."""
    source = Path(source)
    return source if source.is_dir() else source.parent


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CliffError(f"--out {path}: is a folder; give the dataset file's name, e.g. {path / 'annotations.npz'}")
    if path.suffix != ".npz":
        raise CliffError(f"--out {path}: the dataset file must end in .npz")
    return check_output_file(path)  # a place this run can write to, before it works for nothing
