"""Stage 2: 2D keypoints (COCO-17 order) per person box, plus loaders for keypoints made elsewhere.

``PoseEstimator`` runs MediaPipe's BlazePose models (Apache-2.0, from the ``mediapipe==0.10.21``
wheel, converted once to ONNX by ``tools/convert_pose.py``; see ``cliffhmr/assets/LICENSES.md``)
with onnxruntime: the pose detector (``pose_detection.onnx``) finds, inside a square crop
around each person box (side 1.25 x the box's longer side), the mid-hip point and body size and
rotation from which MediaPipe frames its landmark model; the landmark model
(``pose_landmark_full.onnx``) then gives 33 landmarks, refined from its heatmaps as MediaPipe
does, of which the COCO-17 subset is kept. MoveNet Lightning (Apache-2.0, converted by
``tools/convert_movenet.py``) reads each person too, to catch BlazePose's whole-body left/right
mirror errors. Details in :class:`PoseEstimator`.

Confidence of a keypoint = sigmoid(visibility logit) * sigmoid(presence logit), in [0, 1]; 0 for
a keypoint outside the image (BlazePose guesses those, at times with confidence 0.8).
``Keypoints.score`` holds the model's per-person pose presence probability (MediaPipe drops a
pose below 0.5; we keep every box so that rows stay aligned with the input boxes).

``Keypoints.world`` holds BlazePose "world" landmarks: metric 3D (metres) in a frame whose
origin is the midpoint of the hips and whose axes are the camera's: **x** to the image right
(the person's left side when they face the camera), **y** down the image, **z** away from the
camera (negative = nearer to the camera than the hips). The axes follow the image, not gravity:
for a person lying across the photo the skeleton lies along x (as in MediaPipe, which rotates
the world landmarks by its ROI rotation). It is a body-centred frame: no camera translation;
the scale is the model's metric prior for body size.

All pixel coordinates use the continuous convention of the rest of the package: x right, y down,
the image covers [0, W] x [0, H] (the centre of pixel (0, 0) is at (0.5, 0.5)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .body.base import COCO17_NAMES  # noqa: F401  (re-exported: the one definition of the COCO-17 order)
from .detect import ASSETS, _ort_session, as_rgb_uint8, box_iou
from .errors import CliffError
from .jsonio import read_json_file
from .leftright import mirror_world, mirrored_against, swap_left_right

DEFAULT_POSE = ASSETS / "pose_landmark_full.onnx"
DEFAULT_POSE_DETECTOR = ASSETS / "pose_detection.onnx"
DEFAULT_MOVENET = ASSETS / "movenet_lightning.onnx"

# BlazePose 33-landmark topology index for each COCO-17 joint.
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

# OpenPose layouts -> COCO-17.
# BODY_25: 0 Nose 1 Neck 2 RShoulder 3 RElbow 4 RWrist 5 LShoulder 6 LElbow 7 LWrist 8 MidHip
#          9 RHip 10 RKnee 11 RAnkle 12 LHip 13 LKnee 14 LAnkle 15 REye 16 LEye 17 REar 18 LEar
#          19-24 feet
OPENPOSE_BODY25_TO_COCO17 = np.array([0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11])
# COCO-18: 0 Nose 1 Neck 2 RShoulder 3 RElbow 4 RWrist 5 LShoulder 6 LElbow 7 LWrist 8 RHip
#          9 RKnee 10 RAnkle 11 LHip 12 LKnee 13 LAnkle 14 REye 15 LEye 16 REar 17 LEar
OPENPOSE_COCO18_TO_COCO17 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])

_INPUT_SIZE = 256  # landmark model input
_DET_SIZE = 224  # pose detector input
_DET_MIN_SCORE = 0.5
_DET_NMS_IOU = 0.3
_ROI_SCALE = 1.25  # MediaPipe enlarges the detector's body circle by 1.25 for the landmark ROI
_HEATMAP_KERNEL = 7
_HEATMAP_MIN_CONFIDENCE = 0.5
_MOVENET_SIZE = 192


@dataclass
class Keypoints:
    """Keypoints of N people, rows aligned with the boxes they came from.

    coco:  (N, 17, 3) float32 -- x, y in full-image pixels and confidence in [0, 1], COCO-17 order
    world: (N, 17, 3) float32 metric 3D (metres; hip-centred, camera-aligned axes: x image right,
           y image down, z away from the camera -- see the module docstring) or None when not
           available (e.g. keypoints loaded from JSON)
    score: (N,) float32 per-person pose presence probability, or None when not available
    """

    coco: np.ndarray
    world: np.ndarray | None = None
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.coco.shape[0])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def refine_from_heatmap(xy_norm: np.ndarray, heatmap: np.ndarray, kernel: int = _HEATMAP_KERNEL,
                        min_confidence: float = _HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe-style refinement of normalized landmark x, y from per-landmark heatmap logits.

    xy_norm: (L, 2) in [0, 1] of the crop; heatmap: (Hh, Wh, L) logits. Returns refined (L, 2).
    """
    hh, wh, n = heatmap.shape
    out = xy_norm.copy()
    off = (kernel - 1) // 2
    for i in range(n):
        col = int(np.floor(xy_norm[i, 0] * wh))
        row = int(np.floor(xy_norm[i, 1] * hh))
        if not (0 <= col < wh and 0 <= row < hh):
            continue
        r0, r1 = max(0, row - off), min(hh, row + off + 1)
        c0, c1 = max(0, col - off), min(wh, col + off + 1)
        conf = _sigmoid(heatmap[r0:r1, c0:c1, i].astype(np.float64))
        total = conf.sum()
        if total <= 0 or conf.max() < min_confidence:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[i, 0] = (cols * conf).sum() / total / wh
        out[i, 1] = (rows * conf).sum() / total / hh
    return out


def square_crop(box: np.ndarray, margin: float) -> tuple[float, float, float]:
    """Square (centre x, centre y, side) on the box centre with side margin * max(w, h)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), max(1.0, margin * max(x2 - x1, y2 - y1))


def warp_square(pil_image, cx: float, cy: float, side: float, theta: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample a (possibly rotated) square of the image into a size x size RGB uint8 array.

    The square is centred on (cx, cy) with the given side, rotated by ``theta`` radians (image
    axes, y down). Outside the image is black. Returns (pixels, A) with A the 2x3 affine map from
    crop coordinates (continuous, [0, size]) to image coordinates: ``xy_img = A[:, :2] @ uv + A[:, 2]``.
    Large squares are first shrunk with PIL's antialiased resize so that the final sampling does
    not alias.
    """
    from PIL import Image

    s = side / size
    c, sn = np.cos(theta), np.sin(theta)
    a = np.array([[s * c, -s * sn, cx - s * size / 2 * (c - sn)],
                  [s * sn, s * c, cy - s * size / 2 * (sn + c)]])
    src, pre = pil_image, np.array([[1.0, 0, 0], [0, 1.0, 0]])  # pre: image -> src coordinates
    if s > 1.5:
        # Shrink only the part of the image the square can reach (the rest is black anyway).
        half = 0.5 * side * (abs(c) + abs(sn)) + 2 * s
        x0 = max(0, int(np.floor(cx - half)))
        y0 = max(0, int(np.floor(cy - half)))
        x1 = min(pil_image.width, int(np.ceil(cx + half)))
        y1 = min(pil_image.height, int(np.ceil(cy + half)))
        if x1 > x0 and y1 > y0:
            k = 1.0 / s
            sw, sh = max(1, int(round((x1 - x0) * k))), max(1, int(round((y1 - y0) * k)))
            src = pil_image.resize((sw, sh), Image.BILINEAR, box=(x0, y0, x1, y1))
            kx, ky = sw / (x1 - x0), sh / (y1 - y0)
            pre = np.array([[kx, 0, -kx * x0], [0, ky, -ky * y0]])
    # crop -> src coordinates = pre o a
    m = pre[:, :2] @ a
    m[:, 2] = pre[:, :2] @ a[:, 2] + pre[:, 2]
    out = src.transform((size, size), Image.AFFINE, tuple(m.reshape(-1)), resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out, dtype=np.uint8), a


def _pose_anchors() -> np.ndarray:
    """Centres (x, y) of the 2254 SSD anchors of MediaPipe's pose detector (224 input).

    MediaPipe SsdAnchorsCalculator settings: 5 layers, strides 8, 16, 32, 32, 32, aspect ratio
    1 plus the interpolated-scale anchor (2 anchors per cell and layer), fixed anchor size;
    layers with equal stride share one grid. Order: stride group, row, column, anchor.
    """
    centres = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = int(np.ceil(224 / stride))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float64)


def outside_missing(keypoints: np.ndarray, width: float, height: float) -> np.ndarray:
    """(..., 3) x, y, confidence -> a copy with confidence 0 (missing) for the keypoints outside
    the image [0, W] x [0, H] or not finite: whoever placed them there, it was a guess."""
    kp = np.array(keypoints, dtype=np.float64)
    x, y = kp[..., 0], kp[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    kp[..., 2] = np.where(inside & np.isfinite(kp[..., 2]), kp[..., 2], 0.0)
    return as_float32(kp)


def as_float32(keypoints) -> np.ndarray:
    """Keypoints as float32, quietly: a coordinate beyond its range (1e39) becomes inf, outside
    every image and so missing, instead of an overflow warning beside the result."""
    with np.errstate(over="ignore"):
        return np.asarray(keypoints, dtype=np.float64).astype(np.float32)


class MoveNet:
    """MoveNet SinglePose Lightning: a second reading of each person's COCO-17 keypoints, which
    `PoseEstimator` uses to check BlazePose's left and right. The two models were trained apart
    and mislabel different frames (BlazePose read 37 of 387 person-frames of the pose2sim demo
    mirrored, MoveNet 0; `benchmarks/leftright.py`). MoveNet's keypoints are coarser (192-pixel
    input, no visibility model), so they only arbitrate.

    ``MoveNet().read(pil_image, cx, cy, side, theta)``: (17, 3) float32 COCO-17 keypoints (x, y
    in image pixels, score in [0, 1]) of the person in a square region of the image (see
    `warp_square`), resampled to 192x192; `PoseEstimator` gives it BlazePose's landmark region,
    turned so that the body is upright (MoveNet, given lying people as they lie, reads a quarter
    of them mirrored on the composites of `benchmarks/leftright.py`)."""

    def __init__(self, model_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MOVENET
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = _ort_session(self.model_path, "MoveNet keypoint")
        return self._session

    def read(self, pil_image, cx: float, cy: float, side: float, theta: float) -> np.ndarray:
        crop, a = warp_square(pil_image, cx, cy, side, theta, _MOVENET_SIZE)
        yxs = self.session.run(["keypoints"], {"image": crop[None].astype(np.int32)})[0].reshape(17, 3)
        out = np.empty((17, 3), np.float32)
        out[:, :2] = (yxs[:, [1, 0]].astype(np.float64) * _MOVENET_SIZE) @ a[:, :2].T + a[:, 2]
        out[:, 2] = yxs[:, 2]
        return out


class PoseEstimator:
    """BlazePose landmarks per person box -> COCO-17 keypoints (+ metric world landmarks).

    ``PoseEstimator()(image, boxes)`` with ``image`` (H, W, 3) uint8 RGB and ``boxes`` (N, 4+)
    ``[x1, y1, x2, y2, ...]`` in pixels returns a :class:`Keypoints` with N rows.

    Per box, as in MediaPipe's pose pipeline:

    1. a square crop on the box centre, side ``margin`` (1.25) x the box's longer side, black
       outside the image, goes through BlazePose's pose detector (224x224, RGB in [-1, 1]);
       of its detections (score >= 0.5, weighted NMS at IoU 0.3) the best-scoring one whose face
       lies inside the box is kept;
    2. the landmark region of interest follows from that detection as in MediaPipe: centred on
       the predicted mid-hip point, side 2 x 1.25 x the distance from mid-hip to the full-body
       size point, rotated so that this vector points up -- so people cut off by the image
       border (portraits, half-body shots) and lying people are framed the way the landmark
       model was trained;
       if the pose detector finds no one, the box crop of step 1 is used, unrotated;
    3. that square (black outside the image) is resampled to 256x256, RGB in [0, 1], and run
       through the landmark model; x, y are refined from the heatmaps and mapped back to image
       pixels; the world landmarks are rotated back by the ROI rotation (as MediaPipe does);
    4. unless ``check_left_right`` is False, MoveNet reads the same region of interest too;
       a person it reads the other way round gets left and right exchanged and the world
       landmarks reflected in depth (``cliffhmr.leftright``): BlazePose at times reads a whole
       body mirrored.

    The ONNX sessions are created on first use and reused.
    """

    # Below this confidence a landmark is not visible (MediaPipe's own convention). BlazePose
    # gives limbs it cannot see 0.2-0.7 (a knee on a lap, a wrist in mid-air); keypoints from
    # other detectors keep the fit's default threshold.
    min_confidence = 0.5

    def __init__(self, model_path: str | None = None, margin: float = 1.25, refine: bool = True,
                 detector_path: str | None = None, use_pose_detector: bool = True, check_left_right: bool = True):
        if not margin > 0:
            raise CliffError(f"pose crop margin must be > 0, got {margin}")
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_POSE
        self.detector_path = Path(detector_path) if detector_path is not None else DEFAULT_POSE_DETECTOR
        self.margin = float(margin)
        self.refine = bool(refine)
        self.use_pose_detector = bool(use_pose_detector)
        self.reference = MoveNet() if check_left_right else None
        self._session = None
        self._det_session = None
        self._anchors = None

    @property
    def session(self):
        if self._session is None:
            self._session = _ort_session(self.model_path, "pose")
        return self._session

    @property
    def det_session(self):
        if self._det_session is None:
            self._det_session = _ort_session(self.detector_path, "pose detector")
            self._anchors = _pose_anchors()
        return self._det_session

    def pose_roi(self, pil_image, box: np.ndarray) -> tuple[float, float, float, float] | None:
        """MediaPipe-style landmark ROI (cx, cy, side, theta) for the person in ``box``, or None."""
        cx, cy, side = square_crop(box, self.margin)
        crop, a = warp_square(pil_image, cx, cy, side, 0.0, _DET_SIZE)
        x = crop.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        reg, logit = self.det_session.run(["regressors", "classificators"], {"image": x})
        reg = reg[0].astype(np.float64)
        score = _sigmoid(np.clip(logit[0, :, 0].astype(np.float64), -100, 100))
        sel = np.flatnonzero(score >= _DET_MIN_SCORE)
        if sel.size == 0:
            return None
        anc = self._anchors[sel]
        r = reg[sel] / _DET_SIZE
        ctr = r[:, 0:2] + anc
        faces = np.concatenate([ctr - r[:, 2:4] / 2, ctr + r[:, 2:4] / 2], axis=1) * _DET_SIZE
        kps = (r[:, 4:12].reshape(-1, 4, 2) + anc[:, None, :]) * _DET_SIZE
        sc = score[sel]
        # Crop -> image coordinates (no rotation here).
        to_img = lambda p: p @ a[:, :2].T + a[:, 2]
        faces = np.concatenate([to_img(faces[:, :2]), to_img(faces[:, 2:])], axis=1)
        kps = to_img(kps.reshape(-1, 2)).reshape(-1, 4, 2)
        # Weighted NMS (MediaPipe WEIGHTED, IoU 0.3): average each cluster by score.
        order = np.argsort(-sc)
        dets = []
        while order.size:
            iou = box_iou(faces[order[0]][None], faces[order])[0]
            cluster = order[iou > _DET_NMS_IOU]
            w = sc[cluster][:, None]
            face = (faces[cluster] * w).sum(0) / w.sum()
            kp = (kps[cluster] * w[:, :, None]).sum(0) / w.sum()
            dets.append((sc[order[0]], face, kp))
            order = order[iou <= _DET_NMS_IOU]
        x1, y1, x2, y2 = (float(v) for v in box[:4])

        def inside(face) -> bool:
            fx, fy = 0.5 * (face[0] + face[2]), 0.5 * (face[1] + face[3])
            return x1 <= fx <= x2 and y1 <= fy <= y2

        best = max(dets, key=lambda d: (inside(d[1]), d[0]))
        hip, top = best[2][0], best[2][1]
        radius = float(np.hypot(*(top - hip)))
        if not radius > 1.0:
            return None
        theta = np.pi / 2 - np.arctan2(-(top[1] - hip[1]), top[0] - hip[0])
        theta = float(theta - 2 * np.pi * np.floor((theta + np.pi) / (2 * np.pi)))
        return float(hip[0]), float(hip[1]), 2.0 * radius * _ROI_SCALE, theta

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> Keypoints:
        from PIL import Image

        image = as_rgb_uint8(image)
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            z = np.zeros((0, 17, 3), np.float32)
            return Keypoints(coco=z, world=z.copy(), score=np.zeros((0,), np.float32))
        if boxes.ndim != 2 or boxes.shape[1] < 4:
            raise CliffError(f"boxes must be an (N, 4) or (N, 5) array, got shape {boxes.shape}")
        if not np.isfinite(boxes[:, :4]).all():
            raise CliffError("boxes contain NaN or infinite values")
        for i, b in enumerate(boxes):
            if b[2] - b[0] <= 0 or b[3] - b[1] <= 0:
                raise CliffError(f"box {i} is empty: {b[:4].tolist()} (need x2 > x1 and y2 > y1)")

        pil = Image.fromarray(image)
        H, W = image.shape[:2]
        n = boxes.shape[0]
        coco = np.zeros((n, 17, 3), np.float32)
        world = np.zeros((n, 17, 3), np.float32)
        score = np.zeros((n,), np.float32)
        reference = np.zeros((n, 17, 3), np.float32)
        for i, box in enumerate(boxes):
            roi = self.pose_roi(pil, box) if self.use_pose_detector else None
            if roi is None:
                roi = (*square_crop(box, self.margin), 0.0)
            cx, cy, side, theta = roi
            crop, a = warp_square(pil, cx, cy, side, theta, _INPUT_SIZE)
            if self.reference is not None:
                reference[i] = self.reference.read(pil, cx, cy, side, theta)
            x = crop.astype(np.float32)[None] * (1.0 / 255.0)
            lm, flag, heatmap, wl = self.session.run(["landmarks", "pose_flag", "heatmap", "world"], {"image": x})
            lm = lm.reshape(-1, 5)[:33].astype(np.float64)
            uv = lm[:, :2] / _INPUT_SIZE
            if self.refine:
                uv = refine_from_heatmap(uv, heatmap[0, :, :, :33])
            xy = (uv * _INPUT_SIZE) @ a[:, :2].T + a[:, 2]
            conf = _sigmoid(lm[:, 3]) * _sigmoid(lm[:, 4])
            w3 = wl.reshape(-1, 3)[:33].astype(np.float64)
            c, sn = np.cos(theta), np.sin(theta)
            w3 = np.stack([c * w3[:, 0] - sn * w3[:, 1], sn * w3[:, 0] + c * w3[:, 1], w3[:, 2]], axis=1)
            sel = BLAZEPOSE_TO_COCO17
            # Outside the image a landmark is BlazePose's guess, however confident (a cut-off
            # hip at 0.8): missing, not evidence.
            coco[i] = outside_missing(np.concatenate([xy[sel], conf[sel, None]], axis=1), W, H)
            world[i] = w3[sel]
            score[i] = float(np.asarray(flag).reshape(-1)[0])
        if self.reference is not None:
            flip = mirrored_against(coco, reference, self.min_confidence)
            coco[flip], world[flip] = swap_left_right(coco[flip]), mirror_world(world[flip])
        return Keypoints(coco=coco, world=world, score=score)


# ----------------------------------------------------------------------------------------------
# Loaders for keypoints produced by other tools
# ----------------------------------------------------------------------------------------------


def _as_17x3(kps, path, where: str, scores=None) -> np.ndarray:
    """One person's keypoints -> (17, 3).

    Accepts 51 flat numbers (x, y, v/score per joint), 17 ``[x, y(, c)]`` rows (with
    ``keypoint_scores`` for 2-column rows), or the COCO-WholeBody 133-point layout in the same
    forms, whose first 17 points are the COCO body keypoints.
    """
    try:
        a = np.asarray(kps, dtype=np.float64)
    except (TypeError, ValueError):
        raise CliffError(f"{path}: {where}: keypoints must be numbers") from None
    if a.ndim == 1 and a.size in (51, 399):
        a = a.reshape(-1, 3)
    if not (a.ndim == 2 and a.shape[0] in (17, 133) and a.shape[1] in (2, 3)):
        raise CliffError(
            f"{path}: {where}: expected 17 COCO keypoints (51 numbers x, y, v), got shape {a.shape}"
        )
    n = a.shape[0]
    a = a[:17]
    if a.shape[1] == 2:
        if scores is None:
            c = np.ones(17)
        else:
            try:
                c = np.asarray(scores, dtype=np.float64).reshape(n)[:17]
            except (TypeError, ValueError):
                raise CliffError(f"{path}: {where}: keypoint_scores must be {n} numbers") from None
        a = np.concatenate([a, c[:, None]], axis=1)
    a = a.copy()
    if not np.isfinite(a).all():
        raise CliffError(f"{path}: {where}: keypoints contain NaN or infinite values")
    a[:, 2] = np.clip(a[:, 2], 0.0, 1.0)  # COCO visibility 0/1/2 -> 0/1/1; scores clipped
    return a


def _name_matches(entry_name, image_name: str) -> bool:
    if entry_name is None:
        return False
    entry_name = str(entry_name)
    return entry_name == image_name or os.path.basename(entry_name) == os.path.basename(image_name)


def _id_matches(image_id, image_name: str) -> bool:
    if image_id is None:
        return False
    stem = Path(image_name).stem
    if str(image_id) in (image_name, os.path.basename(image_name), stem):
        return True
    try:
        return int(stem) == int(image_id)  # COCO: image_id 397133 <-> 000000397133.jpg
    except (TypeError, ValueError):
        return False


def _guarded(fn, data, p: Path, *args) -> np.ndarray:
    """Turn any leftover structural surprise (unhashable ids, wrong types) into a CliffError."""
    try:
        return fn(data, p, *args)
    except CliffError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise CliffError(f"{p}: malformed keypoint file ({type(exc).__name__}: {exc})") from None


_NAME_KEYS = ("file_name", "image_name", "img_path", "image_path", "image")


def load_coco_keypoints(path, image_name: str | None = None) -> np.ndarray:
    """Read COCO-format person keypoints -> (N, 17, 3) float32 [x, y, confidence in [0, 1]].

    Accepts either
    * a result list ``[{"keypoints": [51 numbers], "image_id": ..., "score": ...}, ...]`` (what
      ViTPose / RTMPose / mmpose write for COCO evaluation; ``file_name``/``image_name``/``img_path``
      may name the image; ``keypoints`` may also be 17 ``[x, y]`` rows with ``keypoint_scores``), or
    * a full annotation file ``{"images": [...], "annotations": [...]}``.

    The third value (COCO visibility 0/1/2, or a score) is clipped to [0, 1]. Annotations with
    ``iscrowd`` set or with no labelled keypoint are skipped. ``image_name`` selects one image
    (matched by file name, base name, or image_id against the file's stem, e.g. 397133 <->
    ``000000397133.jpg``); without it the file must hold a single image.
    """
    return _guarded(_coco_from_data, read_json_file(path, "keypoint file"), Path(path), image_name)


def _coco_annotations(data, p: Path) -> tuple[dict, list[tuple[int, dict]]]:
    """An annotation file -> ({image_id: file_name}, [(index, annotation)] of the non-crowd people with keypoints)."""
    anns, images = data["annotations"], data.get("images", [])
    if not isinstance(anns, list) or not isinstance(images, list):
        raise CliffError(f"{p}: 'annotations' and 'images' must be lists")
    names = {im["id"]: im.get("file_name") for im in images if isinstance(im, dict) and "id" in im}
    kept = [(k, a) for k, a in enumerate(anns) if isinstance(a, dict) and "keypoints" in a and not a.get("iscrowd", 0)]
    return names, kept


def _annotation_keypoints(k: int, a: dict, p: Path) -> np.ndarray | None:
    """One annotation's (17, 3) keypoints, or None when it labels none."""
    kp = _as_17x3(a["keypoints"], p, f"annotation {k} (id {a.get('id')})")
    if a.get("num_keypoints", 1) == 0 or not (kp[:, 2] > 0).any():
        return None
    return kp


def _coco_results(data: list, p: Path) -> list[tuple[int, dict]]:
    """A results list -> [(index, entry)] of the person entries; anything but objects with 'keypoints' is an error."""
    entries = []
    for k, e in enumerate(data):
        if not isinstance(e, dict) or "keypoints" not in e:
            raise CliffError(f"{p}: entry {k} is not an object with 'keypoints'")
        if e.get("category_id", 1) == 1:
            entries.append((k, e))
    return entries


def _result_keypoints(k: int, e: dict, p: Path) -> np.ndarray:
    return _as_17x3(e["keypoints"], p, f"entry {k}", e.get("keypoint_scores"))


def _not_coco(p: Path) -> CliffError:
    return CliffError(f"{p}: not a COCO keypoint file (expected a list of results with 'keypoints', "
                      "or an object with 'images' and 'annotations')")  # fmt: skip


def _coco_from_data(data, p: Path, image_name: str | None) -> np.ndarray:
    if isinstance(data, dict) and "annotations" in data:
        id_to_name, anns = _coco_annotations(data, p)
        if image_name is not None:
            ids = {i for i, nm in id_to_name.items() if _name_matches(nm, image_name)}
            if not ids:
                ids = {i for i in id_to_name if _id_matches(i, image_name)}
            if not ids:
                raise CliffError(f"{p}: no image named {image_name!r} in 'images'")
            anns = [(k, a) for k, a in anns if a.get("image_id") in ids]
        else:
            ids = {a.get("image_id") for _, a in anns}
            if len(ids) > 1:
                raise CliffError(
                    f"{p}: holds keypoints for {len(ids)} images; say which image they belong to"
                )
        out = [kp for k, a in anns if (kp := _annotation_keypoints(k, a, p)) is not None]
    elif isinstance(data, list):
        entries = _coco_results(data, p)
        if image_name is not None:
            matching = [
                (k, e) for k, e in entries
                if any(_name_matches(e.get(key), image_name) for key in _NAME_KEYS)
                or _id_matches(e.get("image_id"), image_name)
                or all(e.get(key) is None for key in _NAME_KEYS + ("image_id",))
            ]
            named = {next((str(e[key]) for key in ("image_id",) + _NAME_KEYS if e.get(key) is not None), None) for _, e in entries}
            # A results file about one single image (e.g. image_id 1) belongs to the image it is given with.
            if not matching and len(named) > 1:
                raise CliffError(f"{p}: no keypoints for image {image_name!r} among its {len(named)} images")
            entries = matching if matching else entries
        else:
            ids = {next((str(e[key]) for key in ("image_id",) + _NAME_KEYS if e.get(key) is not None), None)
                   for _, e in entries}
            if len(ids) > 1:
                raise CliffError(
                    f"{p}: holds keypoints for {len(ids)} images; say which image they belong to"
                )
        out = [_result_keypoints(k, e, p) for k, e in entries]
    else:
        raise _not_coco(p)
    if not out:
        return np.zeros((0, 17, 3), np.float32)
    return as_float32(np.stack(out))


def coco_keypoints_by_image(path) -> dict[str, np.ndarray]:
    """A COCO-format file about many images (e.g. person_keypoints_train2017.json), read once ->
    {key: (N, 17, 3)}, keyed by image file base name and by str(image_id). Look images up with
    :func:`keypoints_for_image`. Same layouts and skipping rules as :func:`load_coco_keypoints`."""
    p = Path(path)
    return _guarded(_coco_table, read_json_file(p, "keypoint file"), p)


def _coco_table(data, p: Path) -> dict[str, np.ndarray]:
    people = []  # (image_id, file name or None, (17, 3))
    if isinstance(data, dict) and "annotations" in data:
        names, anns = _coco_annotations(data, p)
        for k, a in anns:
            if (kp := _annotation_keypoints(k, a, p)) is not None:
                people.append((a.get("image_id"), names.get(a.get("image_id")), kp))
    elif isinstance(data, list):
        for k, e in _coco_results(data, p):
            named = next((e[key] for key in _NAME_KEYS if e.get(key) is not None), None)
            if e.get("image_id") is None and named is None:
                raise CliffError(f"{p}: entry {k} names no image (image_id or file_name)")
            people.append((e.get("image_id"), named, _result_keypoints(k, e, p)))
    else:
        raise _not_coco(p)
    groups: dict[str, list[np.ndarray]] = {}
    for image_id, name, kp in people:
        keys = {str(image_id), os.path.basename(str(name or ""))} - {"", "None"}
        for key in keys:
            groups.setdefault(key, []).append(kp)
    return {key: as_float32(np.stack(kps)) for key, kps in groups.items()}


def keypoints_for_image(table: dict[str, np.ndarray], image_name: str) -> np.ndarray:
    """The people `table` lists for an image (by base name, stem, or image_id = the stem's number,
    397133 <-> 000000397133.jpg); (0, 17, 3) when it lists none."""
    base = os.path.basename(image_name)
    stem = Path(base).stem
    keys = [base, stem]
    if stem.isdigit():
        keys.append(str(int(stem)))
    for key in keys:
        if key in table:
            return table[key]
    return np.zeros((0, 17, 3), np.float32)


def load_openpose_keypoints(path) -> np.ndarray:
    """Read an OpenPose JSON (``{"people": [{"pose_keypoints_2d": [...]}, ...]}``) -> (N, 17, 3).

    The layout is told by length: 75 numbers = BODY_25, 54 = COCO-18; both are mapped to COCO-17
    (OpenPose's Neck, MidHip and foot points are dropped). Confidences are clipped to [0, 1];
    OpenPose writes undetected joints as (0, 0, 0), which stay at confidence 0.
    """
    return _guarded(_openpose_from_data, read_json_file(path, "keypoint file"), Path(path))


def _openpose_from_data(data, p: Path) -> np.ndarray:
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise CliffError(f"{p}: not an OpenPose keypoint file (expected an object with a 'people' list)")
    out = []
    for k, person in enumerate(data["people"]):
        if not isinstance(person, dict):
            raise CliffError(f"{p}: people[{k}] is not an object")
        kps = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
        if kps is None:
            raise CliffError(f"{p}: people[{k}] has no 'pose_keypoints_2d'")
        try:
            a = np.asarray(kps, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise CliffError(f"{p}: people[{k}]: pose_keypoints_2d must be a list of numbers") from None
        if a.size == 75:
            sel = OPENPOSE_BODY25_TO_COCO17
        elif a.size == 54:
            sel = OPENPOSE_COCO18_TO_COCO17
        else:
            raise CliffError(
                f"{p}: people[{k}]: pose_keypoints_2d has {a.size} numbers; "
                "expected 75 (BODY_25) or 54 (COCO-18)"
            )
        if not np.isfinite(a).all():
            raise CliffError(f"{p}: people[{k}]: keypoints contain NaN or infinite values")
        a = a.reshape(-1, 3)[sel]
        a[:, 2] = np.clip(a[:, 2], 0.0, 1.0)
        out.append(a)
    if not out:
        return np.zeros((0, 17, 3), np.float32)
    return as_float32(np.stack(out))


def load_keypoints_file(path, image_name: str | None = None) -> np.ndarray:
    """Read 2D keypoints from an OpenPose JSON or a COCO-format JSON (told apart by content).

    An object with a ``people`` list is OpenPose (:func:`load_openpose_keypoints`; one file per
    image, so ``image_name`` is not used); anything else is read as COCO
    (:func:`load_coco_keypoints`). Returns (N, 17, 3) float32.
    """
    data = read_json_file(path, "keypoint file")
    if isinstance(data, dict) and "people" in data:
        return _guarded(_openpose_from_data, data, Path(path))
    return _guarded(_coco_from_data, data, Path(path), image_name)
