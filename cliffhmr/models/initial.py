"""The initial body estimate from 2D keypoints, where the full-frame fit starts.

Two estimators, both following CLIFF's reasoning that what a crop shows is seen along the
viewing ray through the person, not along the optical axis:

- learned (default when `assets/keypoint_regressor.pt` exists): the `KeypointRegressor`, whose
  root orientation is already in the full camera frame.
- geometric (fallback): upright rest pose, heading from the left/right order and the nose,
  depth from torso/shoulder/ear lengths, turned by the viewing-ray rotation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..body import FACE_CAMERA, BodyModel, Estimate
from ..errors import CliffError
from ..geometry.camera import cam_crop_to_full, ray_rotation
from ..geometry.rotation import axis_angle_to_rotmat
from ..perception.keypoints import sanitize_keypoints
from .keypoint_regressor import DEFAULT_WEIGHTS, keypoint_crop, load_keypoint_regressor, regressor_inputs

NOSE, L_EAR, R_EAR, L_SHO, R_SHO, L_HIP, R_HIP = 0, 3, 4, 5, 6, 11, 12


def initial_estimate(
    body: BodyModel,
    keypoints: torch.Tensor,
    center: torch.Tensor,
    scale: torch.Tensor,
    focal: torch.Tensor,
    principal: torch.Tensor,
    full_frame: bool = True,
    min_conf: float = 0.2,
    learned: bool | None = None,
    weights: str | Path = DEFAULT_WEIGHTS,
) -> Estimate:
    """keypoints (P, 17, 3) pixels + confidence; center (P, 2), scale (P,) of the person crops;
    focal, principal (P, 2). full_frame=False reads the orientation as a crop-only method would
    (relative to the optical axis, not the viewing ray).

    learned: True uses the regressor at `weights` (CliffError if missing, unreadable or made for
    another body model), False the geometric estimate; None (default) the regressor when its file
    exists and matches `body`, else the geometric estimate.
    """
    if learned is False or (learned is None and not Path(weights).is_file()):
        return geometric_estimate(body, keypoints, center, scale, focal, principal, full_frame, min_conf)
    model = load_keypoint_regressor(weights)
    cfg = model.config
    if (cfg["body"], cfg["num_joints"], cfg["num_betas"]) != (body.name, body.num_joints, body.num_betas):
        if learned:
            raise CliffError(f"{weights}: trained for the {cfg['body']} body ({cfg['num_joints']} joints, "
                             f"{cfg['num_betas']} betas), not {body.name} ({body.num_joints}, {body.num_betas})")  # fmt: skip
        return geometric_estimate(body, keypoints, center, scale, focal, principal, full_frame, min_conf)
    with torch.no_grad():
        center, scale = keypoint_crop(keypoints, center, min_conf)
        rotmat, betas, cam = model(regressor_inputs(keypoints, center, scale, focal, principal, min_conf))
    transl = cam_crop_to_full(cam, center, 200.0 * scale, focal.prod(-1).sqrt(), principal)
    if not full_frame:  # what the crop alone shows: the orientation relative to the viewing ray
        rotmat[:, 0] = ray_rotation(center, focal, principal).transpose(1, 2) @ rotmat[:, 0]
    return Estimate(rotmat=rotmat, betas=betas, transl=transl)


def _rest_keypoints(body: BodyModel) -> torch.Tensor:
    """(17, 3) COCO keypoints of the rest pose at zero shape, canonical frame."""
    J = body.num_joints
    eye = torch.eye(3).expand(1, J, 3, 3)
    with torch.no_grad():
        return body(eye, torch.zeros(1, body.num_betas)).keypoints[0]


def geometric_estimate(body: BodyModel, keypoints: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, focal: torch.Tensor,
                       principal: torch.Tensor, full_frame: bool = True, min_conf: float = 0.2) -> Estimate:  # fmt: skip
    """The estimate without learned weights; arguments as `initial_estimate`."""
    P = keypoints.shape[0]
    keypoints = sanitize_keypoints(keypoints)
    rest = _rest_keypoints(body)
    conf = keypoints[..., 2]
    xy = keypoints[..., :2]

    # Depth from the most reliable visible length, compared with the rest body's: torso length
    # (does not change with heading), else shoulder span, else ear span, else the crop height.
    f = focal.prod(-1).sqrt()
    z = f * (rest[:, 1].max() - rest[:, 1].min()) / (200.0 * scale / 1.15)  # crop ~1.15x the body
    for a, b, min_px in (((L_EAR, R_EAR), None, 6), ((L_SHO, R_SHO), None, 8), ((L_SHO, R_SHO), (L_HIP, R_HIP), 8)):
        if b is None:  # a span between a left/right pair
            ok = (conf[:, list(a)] > min_conf).all(1)
            px = (xy[:, a[0]] - xy[:, a[1]]).norm(dim=-1)
            metres = (rest[a[0]] - rest[a[1]]).norm()
        else:  # the distance between the midpoints of two pairs
            ok = (conf[:, list(a + b)] > min_conf).all(1)
            px = (xy[:, list(a)].mean(1) - xy[:, list(b)].mean(1)).norm(dim=-1)
            metres = (rest[list(a)].mean(0) - rest[list(b)].mean(0)).norm()
        z = torch.where(ok & (px > min_px), f * metres / px.clamp_min(1.0), z)
    sho_ok = (conf[:, [L_SHO, R_SHO]] > min_conf).all(1)

    # Heading theta about the body's vertical axis (0 = facing the camera). Turned by theta, the
    # person's left-minus-right image x is cos(theta) times the rest width at that depth, and the
    # nose moves off the shoulders' midpoint towards sin(theta).
    cos_terms, weights = [], []
    for l, r in ((L_SHO, R_SHO), (L_HIP, R_HIP)):
        ok = (conf[:, l] > min_conf) & (conf[:, r] > min_conf)
        width_px = f * (rest[l, 0] - rest[r, 0]) / z
        cos_terms.append(torch.where(ok, (xy[:, l, 0] - xy[:, r, 0]) / width_px, torch.zeros_like(z)))
        weights.append(ok.float())
    w = torch.stack(weights).sum(0)
    cos_t = (torch.stack(cos_terms).sum(0) / w.clamp_min(1)).clamp(-1, 1)
    cos_t = torch.where(w > 0, cos_t, torch.ones_like(cos_t))
    nose_ok = (conf[:, NOSE] > min_conf) & sho_ok
    side = torch.where(nose_ok, torch.sign(xy[:, NOSE, 0] - xy[:, [L_SHO, R_SHO], 0].mean(1)), torch.ones_like(z))
    side = torch.where(side == 0, torch.ones_like(side), side)
    yaw = torch.atan2(side * (1 - cos_t**2).clamp_min(0).sqrt(), cos_t)
    R_crop = FACE_CAMERA @ axis_angle_to_rotmat(torch.stack((torch.zeros(P), yaw, torch.zeros(P)), -1))

    # Translation: the visible keypoints' centroid, back-projected at depth z, is where the same
    # keypoints' centroid of the turned rest body goes (falls back to the crop centre).
    visible = (conf > min_conf).float()
    seen = visible.sum(1) > 0
    anchor = torch.where(seen[:, None], (xy * visible[..., None]).sum(1) / visible.sum(1, keepdim=True).clamp_min(1), center)
    R_global = ray_rotation(anchor, focal, principal) @ R_crop if full_frame else R_crop
    rest_turned = rest @ R_global.transpose(1, 2)  # (P, 17, 3)
    w = torch.where(seen[:, None], visible, torch.ones_like(visible))
    rest_anchor = (rest_turned * w[..., None]).sum(1) / w.sum(1, keepdim=True)
    target = torch.cat(((anchor - principal) / focal * z[:, None], z[:, None]), -1)
    transl = target - rest_anchor

    rotmat = torch.eye(3).repeat(P, body.num_joints, 1, 1)
    rotmat[:, 0] = R_global
    return Estimate(rotmat=rotmat, betas=torch.zeros(P, body.num_betas), transl=transl)
