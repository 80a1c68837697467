"""SPIN-style training losses, with CLIFF's full-frame 2D reprojection.

total = overall * (w2d * L_2D + w3d * L_3D + w_pose * L_pose + w_betas * L_betas + w_cam * L_cam)

with SPIN's weights (overall 60, keypoints 5, pose 1, betas 0.001, camera 1). The two modes
differ only in how predicted joints reach the image for L_2D:

- cliff: the crop camera (s, tx, ty) becomes a full-frame translation, the joints are projected
  with the full image's perspective camera (sample focal, principal point) and compared with
  the full-image keypoints, both expressed relative to the box: (u - center) / (b / 2).
  Keypoints outside the box count like any other.
- hmr: the baseline. The crop is treated as an image of its own, seen by a camera with a fixed
  large focal length (SPIN: 5000 px for a 224 px crop); the full-image keypoints are mapped
  into that crop with the same (u - center) / (b / 2).

The (u - center) / (b / 2) units equal SPIN's normalised crop coordinates, so the weights carry over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.joints import J24_HIPS, body_to_j24
from ..errors import CliffError
from ..geometry.camera import cam_crop_to_full, perspective_project
from ..models import CliffOutput

MODES = ("cliff", "hmr")
# A crop scale s <= 0 puts the body at or behind the camera, where reprojection errors and their
# gradients are unbounded: one bad step then wrecks the run. Below this floor the 2D term stops
# pulling on s and the camera term alone pushes it back up.
SCALE_FLOOR = 0.05


@dataclass
class LossConfig:
    mode: str = "cliff"  # "cliff" | "hmr"
    keypoint_2d: float = 5.0
    keypoint_3d: float = 5.0
    pose: float = 1.0
    betas: float = 0.001
    cam: float = 1.0
    overall: float = 60.0
    hmr_focal: float = 5000.0  # the baseline's fixed focal length, pixels ...
    hmr_crop: float = 224.0  # ... of a crop this many pixels high (SPIN's constants)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CliffError(f"loss.mode must be one of {MODES}, got {self.mode!r}")


def to_box_units(points: torch.Tensor, center: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Image pixels (B, K, 2) -> (u - center) / (b / 2), i.e. normalised crop coordinates."""
    return (points - center[:, None]) / (b[:, None, None] / 2)


def project_full(joints: torch.Tensor, cam: torch.Tensor, center, b, focal, principal) -> torch.Tensor:
    """CLIFF: body-frame joints (B, K, 3) -> full-image pixels (B, K, 2) through the full-frame camera."""
    transl = cam_crop_to_full(cam, center, b, focal, principal)
    return perspective_project(joints + transl[:, None], focal, principal)


def project_crop(joints: torch.Tensor, cam: torch.Tensor, focal_units: float) -> torch.Tensor:
    """HMR: body-frame joints (B, K, 3) -> normalised crop coordinates (B, K, 2).

    The crop camera sits at depth focal_units / s on the crop's own optical axis; focal_units
    is the focal length in the same units (half a crop height = 1).
    """
    s, t = cam[:, :1], cam[:, 1:]
    depth = joints[..., 2] + (focal_units / s)
    return focal_units * (joints[..., :2] + t[:, None]) / depth[..., None]


def safe_camera(cam: torch.Tensor) -> torch.Tensor:
    """The crop camera (B, 3) with its scale held at SCALE_FLOOR or above, for reprojection."""
    return torch.cat((cam[:, :1].clamp_min(SCALE_FLOOR), cam[:, 1:]), 1)


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted squared error, mean over all samples/joints/coords. pred (B, K, 2), gt (B, K, 3)."""
    return (gt[..., 2:] * (pred - gt[..., :2]) ** 2).mean()


def keypoint_3d_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Pelvis-aligned, confidence-weighted squared error over the samples with 3D labels.

    pred (B, 24, 3) J24; gt (B, 24, 4) with confidence; valid (B,) 0/1. 0 when none is valid.
    """
    hips = list(J24_HIPS)
    pred = pred - pred[:, hips].mean(1, keepdim=True)
    target = gt[..., :3] - gt[:, hips, :3].mean(1, keepdim=True)
    err = (gt[..., 3:] * (pred - target) ** 2).mean((1, 2))
    return _masked_mean(err, valid)


def smpl_losses(pred_rotmat, pred_betas, gt_rotmat, gt_betas, valid) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error on rotation matrices (B, 24, 3, 3) and betas (B, 10), over samples with SMPL labels."""
    pose = ((pred_rotmat - gt_rotmat) ** 2).mean((1, 2, 3))
    betas = ((pred_betas - gt_betas) ** 2).mean(1)
    return _masked_mean(pose, valid), _masked_mean(betas, valid)


def camera_scale_loss(cam: torch.Tensor) -> torch.Tensor:
    """SPIN's term that keeps the crop camera's scale s positive: mean(exp(-10 s)^2)."""
    return torch.exp(-10 * cam[:, 0]).pow(2).mean()


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values * valid).sum() / valid.sum().clamp_min(1)


def compute_losses(
    out: CliffOutput, body, batch: dict[str, torch.Tensor], cfg: LossConfig, extra_regressor: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its (weighted-in-total) parts for one batch.

    out: the network's prediction; body: an SMPL `BodyModel`; batch: collated `NpzDataset`
    samples; extra_regressor: SPIN's (9, V) `J_regressor_extra` or None (see `body_to_j24`).
    Everything here runs in float32, whatever precision the network ran in.
    """
    rotmat, betas, cam = out.rotmat.float(), out.betas.float(), out.cam.float()
    safe_cam = safe_camera(cam)
    posed = body(rotmat, betas, None)
    extra = body.regress(posed.vertices, extra_regressor) if extra_regressor is not None else None
    joints = body_to_j24(posed.joints, posed.keypoints, extra)

    center, b = batch["center"], batch["b"]
    if cfg.mode == "cliff":
        pred_2d = to_box_units(project_full(joints, safe_cam, center, b, batch["focal"], batch["principal"]), center, b)
    else:
        pred_2d = project_crop(joints, safe_cam, 2 * cfg.hmr_focal / cfg.hmr_crop)
    gt_2d = torch.cat((to_box_units(batch["keypoints"][..., :2], center, b), batch["keypoints"][..., 2:]), -1)

    parts = {
        "keypoints_2d": keypoint_2d_loss(pred_2d, gt_2d),
        "keypoints_3d": keypoint_3d_loss(joints, batch["joints3d"], batch["has_joints3d"]),
    }
    parts["pose"], parts["betas"] = smpl_losses(rotmat, betas, batch["rotmat"], batch["betas"], batch["has_smpl"])
    parts["cam"] = camera_scale_loss(cam)
    weights = {"keypoints_2d": cfg.keypoint_2d, "keypoints_3d": cfg.keypoint_3d, "pose": cfg.pose, "betas": cfg.betas, "cam": cfg.cam}
    total = cfg.overall * sum(weights[k] * v for k, v in parts.items())
    return total, parts
