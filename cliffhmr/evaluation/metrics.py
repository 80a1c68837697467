"""The paper's error metrics on joints and vertices, and the paired comparison of two models."""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.procrustes import similarity_align


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint Euclidean distance, (B, K, 3) x 2 -> (B,), in the inputs' unit (no alignment)."""
    return (pred - gt).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes (similarity) alignment of pred to gt. (B, K, 3) x 2 -> (B,)."""
    return mpjpe(similarity_align(pred, gt), gt.double()).to(pred.dtype)


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over samples where both are finite, with a 95% bootstrap interval.

    a, b: (N,) the same metric for two models on the same samples. Pairing removes the
    per-image difficulty that both share, so a small gap on a small test set can still be told
    apart from noise: an interval that excludes 0 says which model is better on this data.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if not len(d):
        return {"n": 0, "mean": None, "lo": None, "hi": None}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"n": int(len(d)), "mean": float(d.mean()), "lo": float(lo), "hi": float(hi)}
