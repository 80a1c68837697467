"""The joint sets of training and evaluation data: SPIN's J24 ground-truth joints, the LSP-14
evaluation joints, their left/right mirror tables, and how a posed SMPL body and COCO-17
keypoints give them."""

from __future__ import annotations

import numpy as np
import torch

J24_NAMES = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
]  # fmt: skip
J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
SMPL_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
J24_TO_J14 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18]
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
J24_HIPS = (2, 3)  # right, left: their midpoint is the pelvis for alignment

# J24 joints taken straight from SMPL's kinematic joints (same choice as SPIN).
_J24_FROM_SMPL = {0: 8, 1: 5, 4: 4, 5: 7, 6: 21, 7: 19, 8: 17, 9: 16, 10: 18, 11: 20}
_J24_FROM_COCO = {19: 0, 20: 1, 21: 2, 22: 3, 23: 4}  # face points from the body model's COCO-17
# SPIN's J_regressor_extra (9, 6890) rows, in J24 order.
J24_EXTRA_ROWS = [2, 3, 12, 13, 14, 15, 16, 17, 18]


def body_to_j24(joints: torch.Tensor, keypoints: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """SPIN's 24 ground-truth joints from a posed SMPL body.

    joints: (B, 24, 3) SMPL joints; keypoints: (B, 17, 3) COCO-17 of the same body;
    extra: (B, 9, 3) joints from SPIN's `J_regressor_extra.npy` (hips, neck, head top, pelvis,
    thorax, spine, jaw, head), or None for approximations from the SMPL skeleton, which are
    consistent between prediction and synthetic ground truth but not with real datasets' labels.
    Returns (B, 24, 3).
    """
    out = joints.new_zeros(joints.shape[0], 24, 3)
    for j, s in _J24_FROM_SMPL.items():
        out[:, j] = joints[:, s]
    for j, k in _J24_FROM_COCO.items():
        out[:, j] = keypoints[:, k]
    if extra is not None:
        out[:, J24_EXTRA_ROWS] = extra
        return out
    neck, head = joints[:, 12], joints[:, 15]
    out[:, 2], out[:, 3] = joints[:, 2], joints[:, 1]
    out[:, 12] = neck
    out[:, 13] = head + (head - neck)  # crown: as far above the head joint as the neck is below
    out[:, 14] = joints[:, 0]
    out[:, 15] = (joints[:, 16] + joints[:, 17] + 2 * neck) / 4  # between the collars and the neck
    out[:, 16] = joints[:, 6]
    out[:, 17] = (neck + head) / 2
    out[:, 18] = head
    return out


# SPIN's J24 slot of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO17_TO_J24 = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]


def coco17_to_j24(keypoints: np.ndarray, min_confidence: float = 0.0) -> np.ndarray:
    """(P, 17, 3) COCO-17 pixels + confidence -> (P, 24, 3) in J24 order; joints COCO lacks (neck,
    head top, pelvis, ...) and keypoints below `min_confidence` get confidence 0."""
    keypoints = np.asarray(keypoints, np.float32)
    out = np.zeros((keypoints.shape[0], 24, 3), np.float32)
    out[:, COCO17_TO_J24] = keypoints
    bad = ~np.isfinite(out).all(-1) | (out[..., 2] < min_confidence)
    out[bad] = 0.0
    return out
