"""Full-frame fitting (CLIFF+ style): body parameters whose keypoints, seen by the whole image's
perspective camera, land on the detected 2D keypoints.

All people of an image are optimised together as one batch. The crop-only alternative used by
HMR-style fitting (a weak-perspective camera per crop) is `FitConfig(camera="crop")`; the
benchmark compares the two.

In video, a person's fit starts from where their track's previous fits say they are now
(`expected`), with the few steps of `warm_config`, and is held near it by the smoothness terms;
their shape is the track's, held fixed (`shape`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..body import BodyModel, BodyOutput, Estimate
from ..body.prior import PosePrior, load_pose_prior
from ..geometry.boxes import box_around, box_size
from ..geometry.camera import cam_crop_to_full, cam_full_to_crop, perspective_project, ray_rotation, weak_perspective_to_image
from ..geometry.rotation import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle, rotmat_to_rot6d
from ..perception.keypoints import sanitize_keypoints

# COCO-17 indices used to anchor the torso before the limbs are free to move.
TORSO = (5, 6, 11, 12)
HIPS = (11, 12)
MIN_DEPTH = 0.2  # metres: a fit closer than this to the camera has diverged
STIFF_JOINTS = ("spine", "neck", "clavicle", "collar", "head")
LEG_JOINTS = ("upperleg", "lowerleg", "hip", "knee")  # Anny's and SMPL's names


@dataclass
class FitConfig:
    iterations: int = 200  # at most; the fit stops earlier once it has converged (see `tolerance`)
    torso_iterations: int = 30  # first steps move only global orientation and translation
    anneal_iterations: int = 60  # steps over which the robust scale narrows to `robust_sigma`
    tolerance: float = 1e-3  # stop when the loss fell by less than this fraction over `patience` steps
    patience: int = 10
    lr: float = 0.03
    robust_sigma: float = 0.1  # Geman-McClure scale, in person heights, reached after annealing
    robust_sigma_start: float = 1.0  # wide at first so large initial errors still pull
    min_confidence: float = 0.2  # keypoints below this are ignored
    w_prior: float = 1e-3  # the learned pose prior's -log density (bodies with one)
    w_limits: float = 10.0  # squared radians outside the joint limits (then projected back), and the shape outside its range
    w_pose: float = 0.01  # L2 on axis-angles: the only pose prior of bodies without a learned one (SMPL)
    w_torso_pose: float = 0.1  # spine, neck, clavicles held straight, in proportion to `missing` (a person cut at the waist stays upright)
    w_shape: float = 0.05  # shape prior; scaled up as fewer keypoints are seen
    w_world: float = 3.0
    w_init: float = 0.01  # squared distance of the joint rotations from the initial estimate's (a learned guess at the unseen)
    w_init_missing: float = 0.3  # added to w_init in proportion to `missing`
    w_upright: float = 1.0  # when neither hip is seen: the root's up axis towards the camera's up, legs straight
    w_smooth: float = 0.0  # with `expected`: squared distance of every joint rotation (root too) from its
    w_smooth_transl: float = 0.0  # with `expected`: squared distance of the translation from its, over its depth
    camera: str = "full"  # "full": perspective camera of the whole image; "crop": weak perspective per crop


def warm_config(config: FitConfig | None = None) -> FitConfig:
    """Settings for a fit that starts where the same person's previous frames say they are: near
    the answer already, so no torso-only phase, no annealing of the robust scale, a small step
    and few iterations; held there by the smoothness terms where the keypoints say little."""
    base = config or FitConfig()
    return replace(base, iterations=min(base.iterations, 8), torso_iterations=0, anneal_iterations=0,
                   robust_sigma_start=base.robust_sigma, patience=5, lr=0.01, w_smooth=1.0, w_smooth_transl=50.0)  # fmt: skip


@dataclass
class FitResult(Estimate):
    body: BodyOutput = None
    quality: torch.Tensor = None  # (P,) in [0, 1]
    flags: list[list[str]] = field(default_factory=list)
    iterations: int = 0  # optimisation steps taken


def keypoint_quality(pred: torch.Tensor, target: torch.Tensor, size: torch.Tensor, min_conf: float = 0.2) -> torch.Tensor:
    """OKS-like agreement in [0, 1]: pred (P, 17, 2), target (P, 17, 3) with confidence, size (P,) box heights."""
    conf = target[..., 2] * (target[..., 2] >= min_conf)
    err = (pred - target[..., :2]).norm(dim=-1) / size[:, None]
    sim = torch.exp(-(err**2) / (2 * 0.05**2))
    return (conf * sim).sum(-1) / conf.sum(-1).clamp_min(1e-6)


def fit_people(
    body_model: BodyModel,
    keypoints: torch.Tensor,
    focal: torch.Tensor,
    principal: torch.Tensor,
    init: Estimate,
    world: torch.Tensor | None = None,
    config: FitConfig | None = None,
    boxes: torch.Tensor | None = None,
    pose_prior: PosePrior | None = None,
    expected: Estimate | None = None,
    shape: torch.Tensor | None = None,
) -> FitResult:
    """Optimise P people at once.

    keypoints: (P, 17, 3) COCO-17 pixels + confidence; focal, principal: (P, 2) pixels; world: (P, 17, 3) optional metric
    root-relative 3D keypoints in each crop's camera frame (e.g. BlazePose world landmarks);
    boxes: (P, 4) optional, only used by the crop camera; default: the keypoints' extent.
    pose_prior: the learned pose prior and joint limits; default: the body's own (`load_pose_prior`),
    none for bodies without one (then an L2 penalty on the axis-angles stands in).
    expected: (P people) where each person's previous frames put them now (video); the fit is held
    near its rotations and translation by `w_smooth` and `w_smooth_transl`, and its rotations
    replace the initial estimate's as the guess at what the keypoints do not show.
    shape: (P, S) betas to hold fixed (a track's shape) instead of fitting them.
    """
    cfg = config or FitConfig()
    P = keypoints.shape[0]
    kp = sanitize_keypoints(keypoints)
    conf = kp[..., 2] * (kp[..., 2] >= cfg.min_confidence)
    visible = conf > 0
    size = _keypoint_extent(kp, visible)
    center = _visible_center(kp, visible)
    prior = load_pose_prior(body_model.joint_names) if pose_prior is None else pose_prior

    root6d = rotmat_to_rot6d(init.rotmat[:, 0]).detach().clone()
    body_aa = rotmat_to_axis_angle(init.rotmat[:, 1:]).detach().clone()
    if prior is not None:
        body_aa = prior.project(body_aa)
    betas = (init.betas if shape is None else shape).detach().clone().nan_to_num(0.0, 0.0, 0.0)
    transl = init.transl.detach().clone()
    f, c = focal.float(), principal.float()
    f_mean = f.prod(-1).sqrt()  # the crop camera assumes square pixels
    bad = ~torch.isfinite(transl).all(-1)
    if bad.any():
        # An estimate with no finite placement (e.g. a crop scale of 0): start a body of 1.7 m
        # that spans the keypoints, on the ray through their centre.
        z = (f_mean * 1.7 / size).clamp_min(MIN_DEPTH)
        ray = torch.cat(((center - c) / f, torch.ones_like(z)[:, None]), -1)
        transl[bad] = (ray * z[:, None])[bad]
    params = tuple(t.requires_grad_(True) for t in ((root6d, body_aa, transl) if shape is not None else (root6d, body_aa, betas, transl)))
    init_rot = axis_angle_to_rotmat(body_aa.detach())
    if expected is not None:
        init_rot = expected.rotmat[:, 1:].detach().float()
        smooth_root = expected.rotmat[:, 0].detach().float()
        smooth_t = expected.transl.detach().float()
        smooth_depth = smooth_t[:, 2:].abs().clamp_min(MIN_DEPTH)
    stiff = [any(k in n.lower() for k in STIFF_JOINTS) for n in body_model.joint_names[1:]]
    w_free = 0.0 if prior is not None else cfg.w_pose  # the learned prior replaces the plain L2
    # Evidence missing: the share of keypoints not seen, squared (whole body seen -> ~0, face and
    # shoulders only -> 0.35). The priors that only guess what is unseen are held that much harder.
    missing = (1 - visible.sum(-1) / 17.0) ** 2
    pose_w = torch.where(torch.tensor(stiff), cfg.w_torso_pose * missing[:, None], torch.tensor(w_free))
    # Fewer keypoints, less evidence about the build: the shape is held harder (17 seen -> 1x, 6 -> 8x).
    shape_w = cfg.w_shape * (17.0 / visible.sum(-1).clamp_min(1)) ** 2
    # Without the hips, 2D cannot tell an upright torso from one leaning back or forwards, nor
    # anything about the legs: the person is taken to stand (a portrait), legs straight.
    upright_w = cfg.w_upright * (~visible[:, list(HIPS)]).all(-1).float()
    legs = torch.tensor([j for j, n in enumerate(body_model.joint_names) if j and any(k in n.lower() for k in LEG_JOINTS)])
    # Anchored to the initial estimate only where it is the keypoint regressor's, learned from the
    # same real motion as the prior; a rest pose or an unknown network's guess is no such evidence.
    init_w = (cfg.w_init + cfg.w_init_missing * missing) if prior is not None else torch.zeros(P)
    if expected is not None:  # the previous frames' pose is the better guess at the unseen, whatever the body
        init_w = cfg.w_smooth + cfg.w_init_missing * missing

    world_cam = None
    if world is not None:
        # World landmarks are in the crop's camera frame: turn them to the full camera's frame.
        R_ray = ray_rotation(center, focal, principal)
        world_cam = _centred(world.float() @ R_ray.transpose(1, 2), conf)
        world_w = cfg.w_world * conf / conf.sum(-1, keepdim=True).clamp_min(1e-6)

    crop_box_center = center if boxes is None else (boxes[:, :2] + boxes[:, 2:4]) / 2
    crop_b = size if boxes is None else (boxes[:, 3] - boxes[:, 1]).clamp_min(1.0)
    if cfg.camera == "crop":
        # The crop camera's unknowns are (tx, ty) in body units and the depth that sets its scale.
        with torch.no_grad():
            cam = cam_full_to_crop(transl, crop_box_center, crop_b, f_mean, c)
            transl[:, :2] = cam[:, 1:]

    def rotmats():
        return torch.cat((rot6d_to_rotmat(root6d)[:, None], axis_angle_to_rotmat(body_aa)), dim=1)

    def project(keypoints: torch.Tensor) -> torch.Tensor:
        if cfg.camera == "full":
            return perspective_project(keypoints, f, c)
        # Crop-only: weak perspective of the un-translated body, scale from the depth, as HMR.
        s = 2 * f_mean / (crop_b * transl[:, 2].clamp_min(MIN_DEPTH))
        cam = torch.stack((s, transl[:, 0], transl[:, 1]), -1)
        return weak_perspective_to_image(keypoints - transl[:, None], cam, crop_box_center, crop_b)

    # The 2D term's weights, normalised per person: all seen keypoints, or the torso's only.
    kp_w = {torso: w / w.sum(-1, keepdim=True).clamp_min(1e-6) for torso, w in
            ((False, conf), (True, conf * torch.zeros(17).index_fill_(0, torch.tensor(TORSO), 1.0)))}  # fmt: skip
    target, scale2 = kp[..., :2], size[:, None] ** 2
    eye = torch.eye(3)

    def body_terms(R: torch.Tensor) -> torch.Tensor:
        """(P,) the terms on the body below the root: pose and shape priors, legs straight, anchoring."""
        per_person = (pose_w[..., None] * body_aa**2).sum((-1, -2))
        per_person = per_person + cfg.w_limits * body_model.shape_excess(betas)
        if prior is not None:
            per_person = per_person + cfg.w_prior * prior.penalty(body_aa) + cfg.w_limits * prior.limit_penalty(body_aa)
            per_person = per_person + shape_w * prior.shape_penalty(betas)
        else:
            per_person = per_person + shape_w * (betas**2).sum(-1)
        per_person = per_person + upright_w * ((R[:, legs] - eye) ** 2).sum((-1, -2, -3))
        return per_person + init_w * ((R[:, 1:] - init_rot) ** 2).sum((-1, -2, -3))

    still: dict[str, torch.Tensor] = {}  # while only the root moves: the body about its root joint, its terms

    def loss_fn(torso_only: bool, sigma: float) -> torch.Tensor:
        root = rot6d_to_rotmat(root6d)
        if torso_only:
            # Pose and shape are held: the keypoints are the same body turned about its root joint
            # and moved, every step.
            if not still:
                with torch.no_grad():
                    R = rotmats()
                    R[:, 0] = eye
                    still["pivot"] = body_model.root_position(betas)[:, None]
                    still["keypoints"] = body_model.keypoints_only(R, betas) - still["pivot"]
                    still["terms"] = body_terms(R)
            keypoints = still["keypoints"] @ root.transpose(1, 2) + (still["pivot"] + transl[:, None])
            per_person = still["terms"]
        else:
            R = torch.cat((root[:, None], axis_angle_to_rotmat(body_aa)), dim=1)
            keypoints = body_model.keypoints_only(R, betas, transl)
            per_person = body_terms(R)
        proj = project(keypoints)
        r2 = ((proj - target) ** 2).sum(-1) / scale2
        rho = r2 / (r2 + sigma**2)  # Geman-McClure: outliers stop pulling
        per_person = per_person + (kp_w[torso_only] * rho).sum(-1)
        # Camera up is -y: 1 - cos(tilt of the body's +Y from it) = 1 + R[1, 1].
        per_person = per_person + upright_w * (1 + root[:, 1, 1])
        if expected is not None:
            per_person = per_person + cfg.w_smooth * ((root - smooth_root) ** 2).sum((-1, -2))
            per_person = per_person + cfg.w_smooth_transl * (((transl - smooth_t) / smooth_depth) ** 2).sum(-1)
        if world_cam is not None:
            # Compared about the seen keypoints' centroid, not the hips: hidden hips are guesses,
            # and anchoring on them tilts the whole torso (a portrait leaning back).
            err = _centred(keypoints, conf) - world_cam
            per_person = per_person + (world_w * (err**2).sum(-1)).sum(-1)
        return per_person

    history: list[float] = []
    steps = 0
    good = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=True)
    for step in range(cfg.iterations):
        torso = step < cfg.torso_iterations
        # Geometric annealing of the robust scale.
        t = min(1.0, step / max(1, cfg.anneal_iterations))
        sigma = cfg.robust_sigma_start * (cfg.robust_sigma / cfg.robust_sigma_start) ** t
        opt.zero_grad()
        per_person = loss_fn(torso, sigma)
        per_person.sum().backward()
        if torso:
            body_aa.grad = None
            betas.grad = None
        for p in params:
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        steps = step + 1
        with torch.no_grad():
            transl[:, 2].clamp_(min=MIN_DEPTH)
            if prior is not None:
                body_aa.copy_(prior.project(body_aa))
            ok = torch.isfinite(per_person) & torch.isfinite(torch.cat([p.reshape(P, -1) for p in params], 1)).all(-1)
            if not bool(ok.all()):
                for p, g in zip(params, good):
                    p[~ok] = g[~ok]  # a diverged person goes back to its last finite state
            torch._foreach_copy_(good, params)
        # Converged: the annealing is over and the loss stopped falling.
        history.append(float(torch.where(ok, per_person.detach(), 0.0).sum()))
        if step >= max(cfg.anneal_iterations, cfg.torso_iterations) + cfg.patience:
            before, now = history[-1 - cfg.patience], history[-1]
            if before - now <= cfg.tolerance * abs(before):
                break

    with torch.no_grad():
        final_rot = rotmats()
        if cfg.camera == "crop":
            # HMR's reading of a crop camera: the same rotation, translated to where the box is.
            s = 2 * f_mean / (crop_b * transl[:, 2])
            cam = torch.stack((s, transl[:, 0], transl[:, 1]), -1)
            transl = cam_crop_to_full(cam, crop_box_center, crop_b, f_mean, c)
        out = body_model(final_rot, betas, transl)
        proj = perspective_project(out.keypoints, f, c)
        quality = keypoint_quality(proj, kp, size, cfg.min_confidence)
    flags = [_flags(visible[i], quality[i], transl[i].detach()) for i in range(P)]
    return FitResult(final_rot, betas.detach(), transl.detach(), body=out, quality=quality, flags=flags, iterations=steps)


def _centred(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """points (P, K, 3) minus their `weights` (P, K)-weighted mean."""
    w = weights[..., None]
    return points - (w * points).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-6)


def _keypoint_extent(kp: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(P,) a person's size in pixels: the larger side of the visible keypoints' box (at least 16 px)."""
    ext = box_size(box_around(kp[..., :2], visible))
    return torch.where(visible.any(-1), ext, torch.zeros_like(ext)).clamp_min(16.0)


def _visible_center(kp: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    w = visible.float()[..., None]
    return (kp[..., :2] * w).sum(1) / w.sum(1).clamp_min(1.0)


def _flags(visible: torch.Tensor, quality: torch.Tensor, transl: torch.Tensor) -> list[str]:
    flags = []
    if int(visible.sum()) < 6:
        flags.append("few_keypoints")
    if float(quality) < 0.3:
        flags.append("poor_fit")
    if float(transl[2]) <= MIN_DEPTH + 1e-6:
        flags.append("depth_clamped")
    return flags
