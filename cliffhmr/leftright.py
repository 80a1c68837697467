"""Whole-body left/right errors of a keypoint detector, fixed along a person's track.

BlazePose sometimes labels a whole body mirrored, left for right: in the front view `cam02` of
the pose2sim demo video it did so in 41 of 100 frames, in runs of up to 30 (a man facing the
camera read as facing away). One image cannot settle it: a body facing away and its mirror
image facing the camera project to the same points, and BlazePose reads the flipped image the
same way. A track can: nobody turns around between two frames. So each frame takes the
labelling closer to its predecessor's, and the track as a whole takes the labelling that most
of its frames were given (so a track that starts on a mirrored frame is not mirrored throughout).
"""

from __future__ import annotations

import numpy as np

# COCO-17: nose, then (left, right) pairs of eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO17_MIRROR = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


def swap_left_right(keypoints: np.ndarray) -> np.ndarray:
    """(..., 17, C) COCO-17 keypoints -> the same points with left and right labels exchanged."""
    return keypoints[..., COCO17_MIRROR, :]


def _distance(a: np.ndarray, b: np.ndarray, min_conf: float) -> float:
    """Mean image distance of the keypoints seen in both (17, 3) frames, in units of b's size;
    NaN when fewer than two are seen in both."""
    both = (a[:, 2] >= min_conf) & (b[:, 2] >= min_conf)
    if both.sum() < 2:
        return float("nan")
    size = np.ptp(b[b[:, 2] >= min_conf, :2], axis=0).max()
    return float(np.linalg.norm(a[both, :2] - b[both, :2], axis=1).mean() / max(size, 1.0))


def consistent_left_right(track: np.ndarray, min_conf: float = 0.5) -> np.ndarray:
    """Which frames of one person's track to swap left for right.

    track: (T, 17, 3) COCO-17 keypoints (pixels, confidence) in consecutive frames; frames
    without the person have no keypoint at `min_conf` or above (zeros, or NaN). Returns (T,)
    bool, True where `swap_left_right` makes the frame agree with the rest of the track.
    """
    track = np.nan_to_num(np.asarray(track, dtype=np.float64), nan=0.0)
    swap = np.zeros(len(track), dtype=bool)
    present = (track[..., 2] >= min_conf).sum(-1) >= 2
    prev = None
    for t in np.flatnonzero(present):
        if prev is not None:
            keep, swapped = _distance(track[t], prev, min_conf), _distance(swap_left_right(track[t]), prev, min_conf)
            swap[t] = bool(swapped < keep)  # False when either is NaN: nothing to compare
        prev = swap_left_right(track[t]) if swap[t] else track[t]
    if swap[present].sum() * 2 > present.sum():
        swap[present] = ~swap[present]
    return swap
