"""The CLIFF network (its checkpoint files: `checkpoint`).

CLIFF = an image encoder (ResNet-50 or HRNet-W48, 2048 features) + the HMR iterative
regressor, whose input also carries the 3-vector `bbox_info` that locates the crop in
the full image. The regressor starts from a mean estimate and refines it by adding
predicted corrections, three times by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..geometry.rotation import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from ..npzio import read_npz
from ..perception.crop import CROP_HEIGHT, crop_width
from .hrnet import HRNetW48
from .resnet import ResNet50

BACKBONES = {"res50": ResNet50, "hr48": HRNetW48}

NPOSE = SMPL_NUM_JOINTS * 6
NCAM = 3
NBBOX = 3
HIDDEN = 1024
INIT_CAM = (0.9, 0.0, 0.0)  # crop weak-perspective (s, tx, ty) of the SPIN mean


@dataclass
class CliffOutput:
    """Regressor output for a batch of B crops."""

    rotmat: torch.Tensor  # (B, 24, 3, 3) SMPL joint rotations, root first
    pose6d: torch.Tensor  # (B, 144) the same in the 6D representation
    betas: torch.Tensor  # (B, 10) SMPL shape
    cam: torch.Tensor  # (B, 3) crop weak-perspective camera (s, tx, ty)


class CLIFF(nn.Module):
    """Crop (B, 3, 256, 192) + bbox_info (B, 3) -> `CliffOutput`.

    backbone: "res50" or "hr48".
    crop_height: the input height the model is trained for (width 3/4 of it). The official models
        use 256; smaller crops of the same box train faster (benchmarks on CPU). Both encoders
        pool globally, so the weights do not depend on it.
    mean_params: optional SPIN/CLIFF `smpl_mean_params.npz` (keys `pose` (144,) in 6D or
        (72,) axis-angle, `shape` (10,), `cam` (3,)) for the regressor's starting point.
        Without it the start is the identity pose, zero shape and cam (0.9, 0, 0); loading a
        checkpoint overwrites these buffers anyway.
    """

    def __init__(
        self, backbone: str = "res50", mean_params: str | os.PathLike | None = None, crop_height: int = CROP_HEIGHT
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise CliffError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        crop_width(crop_height)  # validates
        self.backbone = backbone
        self.crop_height = crop_height
        self.encoder = BACKBONES[backbone]()

        # No nonlinearity between the fc layers: this is the official (SPIN-derived) regressor.
        self.fc1 = nn.Linear(self.encoder.num_features + NBBOX + NPOSE + SMPL_NUM_BETAS + NCAM, HIDDEN)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.drop2 = nn.Dropout(0.5)
        self.decpose = nn.Linear(HIDDEN, NPOSE)
        self.decshape = nn.Linear(HIDDEN, SMPL_NUM_BETAS)
        self.deccam = nn.Linear(HIDDEN, NCAM)

        pose, shape, cam = _initial_estimate(mean_params)
        self.register_buffer("init_pose", pose[None])
        self.register_buffer("init_shape", shape[None])
        self.register_buffer("init_cam", cam[None])
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.encoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Tiny initial corrections, so training starts close to the mean estimate.
        for head in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(head.weight, gain=0.01)

    def forward(self, img: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3) -> CliffOutput:
        """img: (B, 3, H, W) normalised RGB (H = crop_height); bbox_info: (B, 3)."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise CliffError(f"expected images of shape (B, 3, H, W), got {tuple(img.shape)}")
        b = img.shape[0]
        if bbox_info.shape != (b, NBBOX):
            raise CliffError(f"expected bbox_info of shape ({b}, {NBBOX}), got {tuple(bbox_info.shape)}")

        feats = self.encoder(img)
        pose = self.init_pose.expand(b, -1)
        shape = self.init_shape.expand(b, -1)
        cam = self.init_cam.expand(b, -1)
        for _ in range(n_iter):
            h = torch.cat([feats, bbox_info, pose, shape, cam], dim=1)
            h = self.drop2(self.fc2(self.drop1(self.fc1(h))))
            pose = pose + self.decpose(h)
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)

        rotmat = rot6d_to_rotmat(pose.reshape(b, SMPL_NUM_JOINTS, 6))
        return CliffOutput(rotmat=rotmat, pose6d=pose, betas=shape, cam=cam)


def _initial_estimate(path: str | os.PathLike | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The regressor's starting (pose6d (144,), shape (10,), cam (3,)), float32."""
    if path is None:
        pose = rotmat_to_rot6d(torch.eye(3).expand(SMPL_NUM_JOINTS, 3, 3)).reshape(NPOSE)
        return pose, torch.zeros(SMPL_NUM_BETAS), torch.tensor(INIT_CAM)
    data = read_npz(path, "mean parameters file")
    if not {"pose", "shape", "cam"} <= data.keys():
        raise CliffError(f"mean parameters {path} must be an .npz with arrays pose, shape, cam")
    bad = [k for k in ("pose", "shape", "cam") if data[k].dtype.kind not in "iuf" or not np.isfinite(data[k]).all()]
    if bad:
        raise CliffError(f"mean parameters {path}: {', '.join(bad)} must hold finite real numbers")
    arrays = {k: torch.from_numpy(data[k].astype(np.float32)).reshape(-1) for k in ("pose", "shape", "cam")}
    pose = arrays["pose"]
    if pose.numel() == SMPL_NUM_JOINTS * 3:  # axis-angle
        pose = rotmat_to_rot6d(axis_angle_to_rotmat(pose.reshape(SMPL_NUM_JOINTS, 3))).reshape(NPOSE)
    sizes = (pose.numel(), arrays["shape"].numel(), arrays["cam"].numel())
    if sizes != (NPOSE, SMPL_NUM_BETAS, NCAM):
        raise CliffError(f"mean parameters {path} have sizes pose/shape/cam = {sizes}, expected (144 or 72, 10, 3)")
    return pose, arrays["shape"], arrays["cam"]
