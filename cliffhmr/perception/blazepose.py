"""Stage 2: 2D keypoints (COCO-17 order, `keypoints`) per person box, by BlazePose.

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
a keypoint outside the image (BlazePose guesses those, at times with confidence 0.8), and 0 for
a limb of a person cut by the border that MoveNet does not confirm (see `PoseEstimator`).
``Keypoints.score`` holds the model's per-person pose presence probability (MediaPipe drops a
pose below 0.5; we keep every box so that rows stay aligned with the input boxes).

``Keypoints.world`` holds BlazePose "world" landmarks: metric 3D (metres) in a frame whose
origin is the midpoint of the hips and whose axes are the camera's: **x** to the image right
(the person's left side when they face the camera), **y** down the image, **z** away from the
camera (negative = nearer to the camera than the hips). The axes follow the image, not gravity:
for a person lying across the photo the skeleton lies along x (as in MediaPipe, which rotates
the world landmarks by its ROI rotation). It is a body-centred frame: no camera translation;
the scale is the model's metric prior for body size.

Pixel coordinates are the package's continuous ones (`geometry.camera`): the image covers
[0, W] x [0, H], pixel (0, 0)'s centre is at (0.5, 0.5), as in PIL's and MediaPipe's crops here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..geometry.boxes import box_iou
from .keypoints import Keypoints, outside_missing, unconfirmed_missing
from .leftright import mirror_world, mirrored_against, swap_left_right
from .onnx import ASSETS, LazySession, as_rgb_uint8

DEFAULT_POSE = ASSETS / "pose_landmark_full.onnx"
DEFAULT_POSE_DETECTOR = ASSETS / "pose_detection.onnx"
DEFAULT_MOVENET = ASSETS / "movenet_lightning.onnx"

# BlazePose 33-landmark topology index for each COCO-17 joint.
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

_INPUT_SIZE = 256  # landmark model input
_DET_SIZE = 224  # pose detector input
_DET_MIN_SCORE = 0.5
_DET_NMS_IOU = 0.3
_ROI_SCALE = 1.25  # MediaPipe enlarges the detector's body circle by 1.25 for the landmark ROI
_HEATMAP_KERNEL = 7
_HEATMAP_MIN_CONFIDENCE = 0.5
_MOVENET_SIZE = 192


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


@functools.lru_cache(maxsize=1)
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

    session = LazySession("model_path", "MoveNet keypoint")

    def __init__(self, model_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MOVENET

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
       landmarks reflected in depth (``cliffhmr.perception.leftright``): BlazePose at times reads a whole
       body mirrored. For a person the image border cuts, a limb keypoint that MoveNet neither
       sees nor places near BlazePose's is a guess at a limb outside the frame, and is missing
       (``keypoints.unconfirmed_missing``).

    The ONNX sessions are created on first use and reused.
    """

    # Below this confidence a landmark is not visible (MediaPipe's own convention). BlazePose
    # gives limbs it cannot see 0.2-0.7 (a knee on a lap, a wrist in mid-air); keypoints from
    # other detectors keep the fit's default threshold.
    min_confidence = 0.5
    session = LazySession("model_path", "pose")
    det_session = LazySession("detector_path", "pose detector")

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
        anc = _pose_anchors()[sel]
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
            coco = unconfirmed_missing(coco, reference, boxes, W, H)
        return Keypoints(coco=coco, world=world, score=score)
