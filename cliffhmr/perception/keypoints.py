"""2D keypoints as every stage passes them: COCO-17 order, (..., 17, 3) x, y, confidence.

Pixels are continuous image coordinates (see `geometry.camera`): the image covers [0, W] x [0, H]
and pixel (i, j) has its centre at (i + 0.5, j + 0.5). Confidence 0 means missing. BlazePose
(`blazepose`), keypoint files made elsewhere (`keypoint_files`) and the body models all give
keypoints in this order; the fit and the initial estimate read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CliffError

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


@dataclass
class Keypoints:
    """Keypoints of N people, rows aligned with the boxes they came from.

    coco:  (N, 17, 3) float32 -- x, y in full-image pixels and confidence in [0, 1], COCO-17 order
    world: (N, 17, 3) float32 metric 3D (metres; hip-centred, camera-aligned axes: x image right,
           y image down, z away from the camera -- see `blazepose`) or None when not
           available (e.g. keypoints loaded from JSON)
    score: (N,) float32 per-person pose presence probability, or None when not available
    """

    coco: np.ndarray
    world: np.ndarray | None = None
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.coco.shape[0])


def outside_missing(keypoints: np.ndarray, width: float, height: float) -> np.ndarray:
    """(..., 3) x, y, confidence -> a copy with confidence 0 (missing) for the keypoints outside
    the image [0, W] x [0, H] or not finite: whoever placed them there, it was a guess."""
    kp = np.array(keypoints, dtype=np.float64)
    x, y = kp[..., 0], kp[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    kp[..., 2] = np.where(inside & np.isfinite(kp[..., 2]), kp[..., 2], 0.0)
    return as_float32(kp)


LIMBS = tuple(range(7, 17))  # elbows, wrists, hips, knees, ankles: what a model guesses when the frame cuts it off


def unconfirmed_missing(keypoints: np.ndarray, reference: np.ndarray, boxes: np.ndarray, width: float, height: float,
                        reference_conf: float = 0.15, distance: float = 0.25, edge: float = 0.02) -> np.ndarray:  # fmt: skip
    """Limb keypoints of people the image border cuts that a second model does not confirm -> missing.

    keypoints, reference: (N, 17, 3) two models' readings of the same people, left and right
    agreeing; boxes: (N, 4+) the people's boxes. For a person whose box comes within `edge` x its
    longer side of an image border, a limb keypoint (`LIMBS`) is set missing (confidence 0)
    when the reference neither sees it (score below `reference_conf`) nor places it within
    `distance` x the box's longer side. Such a point is a guess at a limb the frame cut off, put
    inside the image (BlazePose's wrist on the flag beside Grace Hopper, at 0.88). People wholly
    in the frame are left alone: there the second model (MoveNet Lightning) is the one more often
    wrong (benchmarks/guessed_keypoints.py).
    """
    kp = np.array(keypoints, dtype=np.float32)
    if not len(kp):
        return kp
    ref = np.asarray(reference, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64)[:, :4]
    size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    cut = (b[:, 0] <= edge * size) | (b[:, 1] <= edge * size) | (b[:, 2] >= width - edge * size) | (b[:, 3] >= height - edge * size)
    far = np.linalg.norm(kp[..., :2] - ref[..., :2], axis=-1) > distance * size[:, None]
    limb = np.zeros(17, bool)
    limb[list(LIMBS)] = True
    guessed = cut[:, None] & limb & (ref[..., 2] < reference_conf) & far
    kp[..., 2] = np.where(guessed, 0.0, kp[..., 2])
    return kp


def as_float32(keypoints) -> np.ndarray:
    """Keypoints as float32, quietly: a coordinate beyond its range (1e39) becomes inf, outside
    every image and so missing, instead of an overflow warning beside the result."""
    with np.errstate(over="ignore"):
        return np.asarray(keypoints, dtype=np.float64).astype(np.float32)


def sanitize_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """(P, 17, 3) -> a float copy where keypoints with non-finite values are missing (all zero)."""
    kp = keypoints.detach().float().clone()
    kp[~torch.isfinite(kp).all(-1)] = 0.0
    return kp


def check_user_keypoints(keypoints, width: int, height: int, source: str, image_name: str = "") -> np.ndarray:
    """User keypoints (N, 17, 3) that plausibly belong to this image, or a CliffError naming `source`."""
    try:
        kp = np.array(keypoints, dtype=np.float64)  # a copy: the caller's array stays as it was
    except (TypeError, ValueError):
        raise CliffError(f"{source}: keypoints must be numbers, (N, 17, 3) x, y, confidence") from None
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise CliffError(f"{source}: expected COCO-17 keypoints of shape (N, 17, 3), got {kp.shape}")
    if len(kp) == 0:  # the file lists nobody in this image
        return kp
    kp[..., 2] = np.clip(kp[..., 2], 0.0, 1.0)  # as the file loaders do: 1e38 would weigh the fit to inf
    seen = kp[..., 2] > 0
    if not seen.any(-1).all():
        raise CliffError(f"{source}: a person has no keypoint with positive confidence")
    kept = outside_missing(kp, width, height)  # placed outside the image: missing, as BlazePose's
    inside = kept[..., 2] > 0
    if inside.sum() < 0.5 * seen.sum():
        raise CliffError(
            f"{source}: most keypoints lie outside the {width}x{height} image {image_name}; wrong file or image?"
        )
    if not inside.any(-1).all():
        raise CliffError(f"{source}: a person has no keypoint inside the {width}x{height} image {image_name}")
    return kept
