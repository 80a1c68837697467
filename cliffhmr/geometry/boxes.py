"""Axis-aligned boxes (x1, y1, x2, y2) in pixels: around points, grown, compared.

The one place that boxes keypoints: the fit's person size, the regressor's crop, the evaluation
protocol's box, boxes from user keypoints and the synthetic scenes all start from `box_around`.
"""

from __future__ import annotations

import numpy as np
import torch


def box_around(points: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
    """The tight box around the seen points: (..., K, 2) pixels, (..., K) bool (None: all seen)
    -> (..., 4). Where no point is seen the box is inside out (x1 = y1 = +max, x2 = y2 = -max)."""
    if seen is None:
        return torch.cat((points.amin(-2), points.amax(-2)), -1)
    big = torch.finfo(points.dtype).max
    lo = torch.where(seen[..., None], points, big).amin(-2)
    hi = torch.where(seen[..., None], points, -big).amax(-2)
    return torch.cat((lo, hi), -1)


def grow_box(box: torch.Tensor, margin: float, min_pad: float = 0.0) -> torch.Tensor:
    """(..., 4) -> the box grown on each side by `margin` times its width (height), and by at
    least `min_pad` pixels."""
    pad = (box[..., 2:] - box[..., :2]) * margin
    if min_pad:
        pad = pad.clamp_min(min_pad)
    return torch.cat((box[..., :2] - pad, box[..., 2:] + pad), -1)


def box_size(box: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (...) the longer side."""
    return (box[..., 2:] - box[..., :2]).amax(-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4+) x (M, 4+) boxes [x1, y1, x2, y2, ...] -> (N, M) intersection over union; empty
    boxes have area 0."""
    a = np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1])[:, :4]
    b = np.asarray(b, np.float64).reshape(-1, np.shape(b)[-1])[:, :4]
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h

    def area(x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)

    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)
