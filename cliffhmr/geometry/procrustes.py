"""Similarity (Procrustes) alignment of point sets: the PA in PA-MPJPE."""

from __future__ import annotations

import torch


def similarity_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The similarity transform (scale, rotation, translation) of pred closest to gt, applied to pred.

    pred, gt: (B, K, 3). Umeyama's least-squares solution with a proper rotation (det = +1).
    """
    pred, gt = pred.double(), gt.double()
    mu_p, mu_g = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    x, y = pred - mu_p, gt - mu_g
    cov = x.transpose(1, 2) @ y  # (B, 3, 3)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack((torch.ones_like(d), torch.ones_like(d), d), -1))
    R = Vh.transpose(1, 2) @ D @ U.transpose(1, 2)  # rotates pred onto gt: y ~ s R x
    scale = (S * D.diagonal(dim1=1, dim2=2)).sum(-1) / x.pow(2).sum((1, 2)).clamp_min(1e-12)
    return scale[:, None, None] * x @ R.transpose(1, 2) + mu_g
