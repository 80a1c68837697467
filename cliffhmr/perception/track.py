"""Following people from frame to frame, in the spirit of SORT and ByteTrack (small, our own).

Each track predicts where its box is now with a constant-velocity motion model: the box's
corners move on at the speed they last moved, in pixels per second, so skipped frames
(`--every`) and variable frame rates need no special case. Detections are then matched to the
predictions by the Hungarian method (`linear_assignment`) on an affinity that adds box overlap
(IoU) and keypoint similarity (COCO's OKS, the track's last keypoints moved with its box). A
track that finds no detection lives on, predicted, for `max_missed` processed frames (a person
occluded or missed by the detector); after that it ends. A detection that matches no track
starts one with the next unused ID: IDs are never reused.

Keypoint similarity takes the better of the two left/right labellings: the keypoint model at
times reads a whole body mirrored (`cliffhmr.leftright`), which must not split a track.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.boxes import box_iou
from .leftright import swap_left_right

# COCO's per-keypoint OKS constants (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO17_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)


def linear_assignment(cost: np.ndarray) -> np.ndarray:
    """Rows matched to columns at the least total cost: the Hungarian method (shortest augmenting
    paths with row and column potentials, O(n^2 m)).

    cost: (N, M) finite. Returns (min(N, M), 2) int pairs (row, column), sorted by row.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    flip = cost.shape[0] > cost.shape[1]  # the method below needs no more rows than columns
    c = cost.T if flip else cost
    n, m = c.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row (1-based) holding column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0  # column 0 is a virtual start holding the new row
        best = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while owner[j0] != 0:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < best[1:])
            best[1:][better] = reduced[better]
            way[1:][better] = j0
            j1 = 1 + int(np.argmin(np.where(free, best[1:], np.inf)))
            delta = best[j1]
            u[owner[used]] += delta
            v[used] -= delta
            best[~used] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:]) + 1
    pairs = np.stack((owner[cols] - 1, cols - 1), axis=1)
    if flip:
        pairs = pairs[:, ::-1]
    return pairs[np.argsort(pairs[:, 0])]


def keypoint_similarity(a: np.ndarray, b: np.ndarray, area: np.ndarray, min_conf: float = 0.3) -> np.ndarray:
    """COCO's object keypoint similarity, mean over the keypoints seen in both.

    a: (N, 17, 3), b: (M, 17, 3) pixels + confidence; area: (M,) the scale of b's people (box
    area, pixels^2). Returns (N, M) in [0, 1]; NaN where no keypoint is seen in both.
    """
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, 17)
    k2 = (2 * COCO17_SIGMAS) ** 2
    sim = np.exp(-d2 / (2 * np.maximum(area, 1.0)[None, :, None] * k2))
    both = (a[:, None, :, 2] >= min_conf) & (b[None, :, :, 2] >= min_conf)
    n = both.sum(-1)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (sim * both).sum(-1) / np.maximum(n, 1), np.nan)


@dataclass
class TrackerConfig:
    max_missed: int = 10  # processed frames a track outlives its last detection
    min_affinity: float = 0.2  # below this a detection and a track's prediction are not the same person
    w_keypoints: float = 0.5  # keypoint similarity's share of the affinity (the rest is IoU)
    velocity_gain: float = 0.3  # how much a new measurement moves the velocity: low resists a swap at a crossing


@dataclass
class Track:
    id: int
    box: np.ndarray  # (4,) x1, y1, x2, y2 last detected
    time: float  # seconds, when `box` was detected
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # (4,) pixels per second of each corner
    keypoints: np.ndarray | None = None  # (17, 3) last detected
    hits: int = 1
    missed: int = 0

    def predict(self, time: float) -> tuple[np.ndarray, np.ndarray | None]:
        """(box (4,), keypoints (17, 3) or None) where the motion model puts them at `time`."""
        box = self.box + self.velocity * (time - self.time)
        if self.keypoints is None:
            return box, None
        # The keypoints ride with the box: moved with its centre, scaled with its size.
        c0, c1 = (self.box[:2] + self.box[2:]) / 2, (box[:2] + box[2:]) / 2
        s = np.maximum(box[2:] - box[:2], 1.0) / np.maximum(self.box[2:] - self.box[:2], 1.0)
        kp = self.keypoints.copy()
        kp[:, :2] = c1 + (kp[:, :2] - c0) * s
        return box, kp


class Tracker:
    """`Tracker().update(time, boxes, keypoints)` per frame -> each detection's track ID."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 0

    def affinity(self, time: float, boxes: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
        """(T, N) affinity in [0, 1] of the live tracks' predictions with N detections."""
        predicted = [t.predict(time) for t in self.tracks]
        pred_boxes = np.array([p[0] for p in predicted]).reshape(-1, 4)
        aff = box_iou(pred_boxes, boxes)
        have_kp = [i for i, p in enumerate(predicted) if p[1] is not None]
        if keypoints is None or not have_kp or not len(boxes):
            return aff
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kp = np.stack([predicted[i][1] for i in have_kp])
        oks = np.fmax(keypoint_similarity(kp, keypoints, area), keypoint_similarity(swap_left_right(kp), keypoints, area))
        w = self.config.w_keypoints
        mixed = np.where(np.isnan(oks), aff[have_kp], (1 - w) * aff[have_kp] + w * oks)
        aff[have_kp] = mixed
        return aff

    def update(self, time: float, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """boxes: (N, 4+) this frame's detections; keypoints: (N, 17, 3) or None. -> (N,) int track IDs."""
        cfg = self.config
        boxes = np.asarray(boxes, np.float64)[:, :4].reshape(-1, 4)
        keypoints = None if keypoints is None else np.asarray(keypoints, np.float64)
        aff = self.affinity(time, boxes, keypoints)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        matched = set()
        for t, d in linear_assignment(-aff):
            if aff[t, d] >= cfg.min_affinity:
                self._hit(self.tracks[t], time, boxes[d], None if keypoints is None else keypoints[d])
                ids[d] = self.tracks[t].id
                matched.add(t)
        for t, track in enumerate(self.tracks):
            if t not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= cfg.max_missed]
        for d in np.flatnonzero(ids < 0):
            track = Track(self._next_id, boxes[d].copy(), time, keypoints=None if keypoints is None else keypoints[d].copy())
            self._next_id += 1
            self.tracks.append(track)
            ids[d] = track.id
        return ids

    def _hit(self, track: Track, time: float, box: np.ndarray, keypoints: np.ndarray | None) -> None:
        dt = time - track.time
        if dt > 0:
            measured = (box - track.box) / dt
            gain = 1.0 if track.hits == 1 else self.config.velocity_gain  # the first measured speed is all there is
            track.velocity = gain * measured + (1 - gain) * track.velocity
        track.box, track.time, track.keypoints = box.copy(), time, None if keypoints is None else keypoints.copy()
        track.hits += 1
        track.missed = 0
