"""`--refine network`: the paper's CLIFF+ annotator. A copy of the pretrained CLIFF network is
fine-tuned on one shard's 2D keypoints, then read off (like EFT, but a batch of people at once;
the author's description, noah-research/CLIFF issue 121).

The loss is training's (`train.losses`): the keypoints of the predicted body projected by the
full image's perspective camera (CLIFF's 2D term), plus the squared distance of the rotations and
shape from the pretrained network's own prediction (training's SMPL terms, with that prediction
as the label), the crop-scale term, and the learned pose prior where the body has one. BatchNorm
statistics stay frozen (eval mode). The copy starts from the pretrained weights for every shard
and the steps run in a fixed order, so a shard's result depends on its content alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from ..body.prior import load_pose_prior
from ..device import single_threaded
from ..errors import CliffError
from ..geometry.rotation import rotmat_to_axis_angle
from ..inference.engine import bbox_info, cut_crops
from ..inference.pipeline import ImageResult
from ..train.losses import (LossConfig, camera_scale_loss, keypoint_2d_loss, project_full, safe_camera, smpl_losses,
                            to_box_units)  # fmt: skip


@dataclass
class RefineConfig:
    steps: int = 20  # optimiser steps per shard, one minibatch each
    lr: float = 1e-5  # Adam; EFT's order of magnitude (5e-6 for one person)
    batch_size: int = 32  # people per step
    prior: float = 1e-3  # the pose prior's -log density (bodies with one)
    seed: int = 0
    weights: LossConfig = field(default_factory=LossConfig)  # 2D, pose, betas, camera, overall: training's


@dataclass
class Targets:
    """What the fine-tuning sees of N people: the network's inputs, the full-frame camera, the keypoints."""

    crops: torch.Tensor  # (N, 3, h, w)
    info: torch.Tensor  # (N, 3) bbox_info
    center: torch.Tensor  # (N, 2) pixels
    b: torch.Tensor  # (N,) box size, pixels
    focal: torch.Tensor  # (N,)
    principal: torch.Tensor  # (N, 2)
    keypoints: torch.Tensor  # (N, 17, 3) COCO-17, pixels, confidence (0 below the minimum)


def gather_targets(net, images: list[tuple[np.ndarray, ImageResult, float]]) -> Targets | None:
    """(pixels, the network's result, minimum keypoint confidence) per image -> Targets (None: nobody)."""
    parts = []
    for pixels, result, min_conf in images:
        if not result.people:
            continue
        center = torch.as_tensor(np.stack([p.center for p in result.people]), dtype=torch.float32)
        scale = torch.tensor([p.scale for p in result.people], dtype=torch.float32)
        batch = cut_crops([(pixels, center, scale, result.intrinsics)], net.model.crop_height, torch.device("cpu"))
        kp = torch.as_tensor(np.stack([p.detected_keypoints for p in result.people]), dtype=torch.float32)
        kp[..., 2] = torch.where(kp[..., 2] >= min_conf, kp[..., 2], torch.zeros(()))
        parts.append((batch.crops, bbox_info(net, batch), batch.center, 200.0 * batch.scale, batch.focal, batch.principal, kp))
    if not parts:
        return None
    return Targets(*(torch.cat(column) for column in zip(*parts)))


def fine_tune(net, body, targets: Targets, config: RefineConfig, device: torch.device):
    """A copy of `net.model` (a LoadedCheckpoint's CLIFF) fine-tuned on `targets`; `net` is untouched.

    On one CPU thread: with two, the gradients' sums come out in varying order and the weights
    differ in the 8th digit from run to run (a resumed run would not equal an uninterrupted one);
    on a busy 2-core machine one thread was also faster (17 s vs 98 s, tests/test_annotate_shards.py).
    """
    if not isinstance(net.model, torch.nn.Module):
        raise CliffError("--refine network fine-tunes the network: give a torch checkpoint, not an exported .onnx file")
    with single_threaded():
        return _fine_tune(net, body, targets, config, device)


def _fine_tune(net, body, targets: Targets, config: RefineConfig, device: torch.device):
    torch.manual_seed(config.seed)
    model = copy.deepcopy(net.model).to(device).eval()  # eval: BatchNorm keeps its statistics
    t = {k: v.to(device) for k, v in vars(targets).items()}
    n = len(targets.crops)
    chunks = [slice(k, min(k + config.batch_size, n)) for k in range(0, n, config.batch_size)]
    with torch.no_grad():
        start = [model(t["crops"][c], t["info"][c]) for c in chunks]  # the pretrained prediction, the anchor
    prior = load_pose_prior(body.joint_names)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    for step in range(config.steps):
        k = step % len(chunks)
        loss = _loss(model, body, {key: v[chunks[k]] for key, v in t.items()}, start[k], prior, config)
        optimiser.zero_grad()
        loss.backward()
        if _finite(loss, model):  # a body reaching behind the camera projects to inf: that step is left out
            optimiser.step()
    return model


def _finite(loss: torch.Tensor, model: torch.nn.Module) -> bool:
    return bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)


def _loss(model, body, t: dict, start, prior, config: RefineConfig) -> torch.Tensor:
    w = config.weights
    out = model(t["crops"], t["info"])
    posed = body(out.rotmat, out.betas, None)
    center, b = t["center"], t["b"]
    pred = to_box_units(project_full(posed.keypoints, safe_camera(out.cam), center, b, t["focal"], t["principal"]), center, b)
    kp = t["keypoints"]
    target = torch.cat((to_box_units(kp[..., :2], center, b), kp[..., 2:]), -1)
    ones = torch.ones(len(center), device=center.device)
    pose, betas = smpl_losses(out.rotmat, out.betas, start.rotmat, start.betas, ones)
    total = w.overall * (w.keypoint_2d * keypoint_2d_loss(pred, target) + w.pose * pose + w.betas * betas
                         + w.cam * camera_scale_loss(out.cam))  # fmt: skip
    if prior is not None:
        total = total + config.prior * prior.penalty(rotmat_to_axis_angle(out.rotmat[:, 1:])).mean()
    return total
