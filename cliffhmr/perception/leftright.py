"""Whole-body left/right errors of a keypoint detector: found by a second model in one image,
and fixed along a person's track in video.

BlazePose sometimes labels a whole body mirrored, left for right: in the front view `cam02` of
the pose2sim demo video it did so in 37 of 100 frames, in runs of up to 30 (a man facing the
camera read as facing away). The keypoints alone cannot settle it: a body facing away and its
mirror image facing the camera project to the same points, and BlazePose reads the flipped image
the same way. Two things can. A second keypoint model trained apart (MoveNet) that reads the
body the other way (`mirrored_against`). And a track: nobody turns around between two frames,
so each frame takes the labelling closer to its predecessor's, and the track as a whole takes
the labelling most of its frames were given (`consistent_left_right`).
"""

from __future__ import annotations

import numpy as np

# COCO-17: nose, then (left, right) pairs of eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO17_MIRROR = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


def swap_left_right(keypoints: np.ndarray) -> np.ndarray:
    """(..., 17, C) COCO-17 keypoints -> the same points with left and right labels exchanged."""
    return keypoints[..., COCO17_MIRROR, :]


def mirror_world(world: np.ndarray) -> np.ndarray:
    """(..., 17, 3) hip-centred metric keypoints (x right, y down, z away from the camera) of a
    body read mirrored -> the body the image shows: labels exchanged and depth reflected, since
    the mirrored reading is that body reflected through the image plane (it faces away)."""
    out = swap_left_right(world).copy()
    out[..., 2] *= -1
    return out


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


def mirrored_against(keypoints: np.ndarray, reference: np.ndarray, min_conf: float = 0.5, reference_conf: float = 0.3,
                     margin: float = 0.5, min_reference_points: int = 8) -> np.ndarray:  # fmt: skip
    """Which people a second keypoint model reads the other way round.

    keypoints, reference: (N, 17, 3) COCO-17 of the same N people (pixels, confidence) from two
    models; `reference_conf` is where the reference's scores mean seen (MoveNet's are lower than
    BlazePose's). Returns (N,) bool, True where swapping left and right brings `keypoints`
    closer to the reference by more than `margin` (swapped distance < margin * kept distance):
    side views, where both labellings lie close, stay as they are; so does a person the
    reference sees fewer than `min_reference_points` keypoints of (an unsure reading, which on
    the composites of `benchmarks/leftright.py` flipped correct labels).
    """
    ref = np.asarray(reference, dtype=np.float64).copy()
    ref[..., 2] = np.where(ref[..., 2] >= reference_conf, 1.0, 0.0)
    kp = np.nan_to_num(np.asarray(keypoints, dtype=np.float64), nan=0.0)
    out = np.zeros(len(kp), dtype=bool)
    for i in range(len(kp)):
        if ref[i, :, 2].sum() < min_reference_points:
            continue
        keep, swapped = _distance(kp[i], ref[i], min_conf), _distance(swap_left_right(kp[i]), ref[i], min_conf)
        out[i] = bool(swapped < margin * keep)  # False when either is NaN
    return out
