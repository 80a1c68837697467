"""Initial body estimate from 2D keypoints, before the full-frame fit.

Two estimators, both following CLIFF's reasoning that what a crop shows is seen along the
viewing ray through the person, not along the optical axis:

- learned (default when `assets/keypoint_regressor.pt` exists): `KeypointRegressor`, a small MLP
  in the CLIFF spirit. It reads the keypoints normalised in the person's crop plus `bbox_info`
  (where the crop is and how big, relative to the focal length), so it can predict the root
  orientation directly in the full camera frame. Trained on synthetic people in real captured poses by
  `python -m cliffhmr.models.keypoint_regressor` (see `train_regressor`).
- geometric (fallback): upright rest pose, heading from the left/right order and the nose,
  depth from torso/shoulder/ear lengths, turned by the viewing-ray rotation.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from ..body import FACE_CAMERA, BodyModel, Estimate, load_body_model
from ..errors import CliffError
from ..geometry.boxes import box_around, box_size, grow_box
from ..geometry.camera import bbox_info, cam_crop_to_full, cam_full_to_crop, perspective_project, ray_rotation
from ..geometry.rotation import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from ..perception.crop import box_to_center_scale
from ..perception.keypoints import sanitize_keypoints
from ..synthetic.scenes import MOCAP_FILE, load_mocap_poses, make_scenes

NOSE, L_EAR, R_EAR, L_SHO, R_SHO, L_HIP, R_HIP = 0, 3, 4, 5, 6, 11, 12
DEFAULT_WEIGHTS = Path(__file__).parents[1] / "assets" / "keypoint_regressor.pt"
WEIGHTS_FORMAT = 1
# Shapes the regressor learns from: wider than the fit's shape prior (adults of normal build).
TRAIN_BETAS_STD = torch.tensor([0.3, 0.15, 0.15, 0.15, 0.15, 0.15])


class KeypointRegressor(nn.Module):
    """2D keypoints in the crop + bbox_info -> body pose, shape and crop camera, as CLIFF's head.

    Input (B, 54), see `regressor_inputs`. Output: rotmat (B, J, 3, 3) local rotations with [0]
    the root in the full camera frame; betas (B, S); cam (B, 3) the crop camera (s, tx, ty).
    The network predicts offsets from a mean (facing the camera, rest pose, mean shape, s = 1).
    """

    def __init__(self, num_joints: int, num_betas: int, body: str = "anny", hidden: int = 384, blocks: int = 3):
        super().__init__()
        self.config = {"format": WEIGHTS_FORMAT, "body": body, "num_joints": num_joints, "num_betas": num_betas,
                       "hidden": hidden, "blocks": blocks}  # fmt: skip
        self.num_joints, self.num_betas = num_joints, num_betas
        self.inp = nn.Linear(17 * 3 + 3, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            for _ in range(blocks)
        )
        self.out = nn.Linear(hidden, 6 * num_joints + num_betas + 3)
        with torch.no_grad():  # start at the mean
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()
        pose = rotmat_to_rot6d(torch.eye(3)).repeat(num_joints - 1)
        mean = torch.cat((rotmat_to_rot6d(FACE_CAMERA), pose, torch.zeros(num_betas + 3)))  # cam as (log s, tx, ty)
        self.register_buffer("mean", mean)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        y = self.mean + self.out(h)
        J, S = self.num_joints, self.num_betas
        rotmat = rot6d_to_rotmat(y[:, : 6 * J].reshape(-1, J, 6))
        betas = y[:, 6 * J : 6 * J + S]
        cam = torch.cat((y[:, -3:-2].clamp(-4, 4).exp(), y[:, -2:]), -1)  # s > 0, finite
        return rotmat, betas, cam


def regressor_inputs(
    keypoints: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
    min_conf: float = 0.2,
) -> torch.Tensor:  # fmt: skip
    """(B, 54) network input: per keypoint (x, y, confidence), x, y = (pixel - crop centre) / (b / 2)
    with b = 200 * scale, all three zero where the keypoint is not seen; then bbox_info 'plain'.

    keypoints (B, 17, 3) pixels + confidence; center (B, 2); scale (B,); focal, principal (B, 2).
    """
    kp = sanitize_keypoints(keypoints)
    b = (200.0 * scale).clamp_min(1.0)
    seen = (kp[..., 2] > min_conf).float()[..., None]
    xy = ((kp[..., :2] - center[:, None]) / (b[:, None, None] / 2)).clamp(-4, 4)  # a stray detection stays bounded
    per_keypoint = torch.cat((xy, kp[..., 2:3].clamp(0, 1)), -1) * seen
    info = bbox_info(center, b, focal.prod(-1).sqrt(), principal, style="plain")
    return torch.cat((per_keypoint.flatten(1), info), 1)


def keypoint_crop(keypoints: torch.Tensor, fallback_center: torch.Tensor, min_conf: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop the regressor reads: the box around the seen keypoints grown by 10% of its size
    on each side, as centre (B, 2) and scale (B,) of `box_to_center_scale`, at least 16 px.

    keypoints (B, 17, 3) pixels + confidence; people with no seen keypoint keep `fallback_center`
    (B, 2). Training and inference both crop by this rule, whatever box found the person.
    """
    kp = sanitize_keypoints(keypoints)
    seen = kp[..., 2] > min_conf
    box = torch.where(seen.any(1)[:, None], box_around(kp[..., :2], seen), fallback_center.repeat(1, 2))
    center, scale = box_to_center_scale(grow_box(box, 0.1))
    return center, scale.clamp_min(16 / 200)


_loaded: dict[tuple[str, int], KeypointRegressor] = {}


def save_regressor(model: KeypointRegressor, path: str | Path) -> None:
    """Write `model` as {"config": plain dict, "state_dict": tensors}, readable with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save({"config": model.config, "state_dict": model.state_dict()}, tmp)


def load_regressor(path: str | Path = DEFAULT_WEIGHTS) -> KeypointRegressor:
    """The regressor saved at `path` by `train_regressor`, in eval mode (cached per file version)."""
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"keypoint regressor weights not found: {path}")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _loaded:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            cfg = saved["config"]
            if cfg.get("format") != WEIGHTS_FORMAT:
                raise ValueError(f"format {cfg.get('format')!r}, expected {WEIGHTS_FORMAT}")
            model = KeypointRegressor(cfg["num_joints"], cfg["num_betas"], cfg["body"], cfg["hidden"], cfg["blocks"])
            model.load_state_dict(saved["state_dict"])
        except Exception as e:  # unpickling, missing keys, wrong shapes: all mean "not our file"
            raise CliffError(f"{path}: not a keypoint regressor weights file ({type(e).__name__}: {e})") from e
        _loaded[key] = model.eval()
    return _loaded[key]


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
    model = load_regressor(weights)
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


def geometric_estimate(
    body: BodyModel,
    keypoints: torch.Tensor,
    center: torch.Tensor,
    scale: torch.Tensor,
    focal: torch.Tensor,
    principal: torch.Tensor,
    full_frame: bool = True,
    min_conf: float = 0.2,
) -> Estimate:
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


class _PosePool:
    """Synthetic people from `make_scenes` (pose, shape, posed keypoints without translation),
    renewed a few at a time so training keeps seeing new ones; cameras are drawn per batch.
    Poses are frames of real motion (`poses`, (N, J, 3)) or, without them, random joint angles."""

    def __init__(self, body: BodyModel, size: int, seed: int, poses: torch.Tensor | None = None,
                 betas_std: float | torch.Tensor = 0.5, chunk: int = 512):  # fmt: skip
        self.body, self.seed, self.poses, self.betas_std, self.calls, self.next = body, seed, poses, betas_std, 0, 0
        parts = [self._make(min(chunk, size - i)) for i in range(0, size, chunk)]
        self.rotmat, self.betas, self.kp = (torch.cat(p) for p in zip(*parts))

    def _make(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.calls += 1
        s = make_scenes(self.body, n, seed=self.seed * 1_000_003 + self.calls, noise=0.0, dropout=0.0,
                        poses=self.poses, betas_std=self.betas_std)  # fmt: skip
        return s.rotmat, s.betas, s.keypoints_3d - s.transl[:, None]

    def renew(self, n: int) -> None:
        """Replace the n oldest people."""
        idx = (self.next + torch.arange(n)) % len(self.kp)
        self.rotmat[idx], self.betas[idx], self.kp[idx] = self._make(n)
        self.next = int(idx[-1] + 1) % len(self.kp)


def synthetic_batch(pool: _PosePool, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """n people from the pool, each placed anywhere in its own frame (landscape or portrait,
    45-100 degree horizontal field of view, 2-10 m away) and seen as a keypoint detector would:
    0-2% noise, 0-30% dropouts, nothing outside the image, a few hallucinated points. A third
    are cut by the frame's bottom edge somewhere between a little above the hips and the
    shins (half-body photos).
    The crop is `keypoint_crop`'s, as at inference."""
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    i = torch.randint(len(pool.kp), (n,), generator=gen)
    rotmat, betas, kp_body = pool.rotmat[i], pool.betas[i], pool.kp[i]
    portrait = rand(n) < 0.3
    width = torch.where(portrait, 1080.0, 1920.0)
    height = torch.where(portrait, 1920.0, 1080.0)
    focal = width / 2 / torch.tan(torch.deg2rad(45 + 55 * rand(n)) / 2)
    principal = torch.stack((width / 2, height / 2), -1)
    uv = (0.05 + 0.9 * rand(n, 2)) * torch.stack((width, height), -1)
    z = 2 + 8 * rand(n)
    # Cut people: the bottom edge lies from 0.1 body heights above the pelvis to 0.4 below it.
    cut = rand(n) < 0.33
    body_px = focal * 1.7 / z
    uv[:, 1] = torch.where(cut, height - (0.5 * rand(n) - 0.1) * body_px, uv[:, 1])
    transl = torch.cat(((uv - principal) / focal[:, None] * z[:, None], z[:, None]), -1) - kp_body[:, 11:13].mean(1)
    clean = perspective_project(kp_body + transl[:, None], focal, principal)

    inside = ((clean >= 0) & (clean <= torch.stack((width, height), -1)[:, None])).all(-1)
    seen = (rand(n, 17) >= 0.3 * rand(n, 1)) & inside
    few = seen.sum(1) < 2
    seen[few] = inside[few] | (inside[few].sum(1, keepdim=True) < 2)  # a detector reports nobody with fewer
    box = box_around(clean, seen)
    lo, hi, size = box[:, :2], box[:, 2:], box_size(box)
    noisy = clean + torch.randn(clean.shape, generator=gen) * (0.02 * rand(n) * size)[:, None, None]
    conf = (0.3 + 0.7 * rand(n, 17)) * seen
    # Hallucinations, as BlazePose makes for limbs it cannot see (knees on a lap, a wrist in
    # mid-air): on average 5% of the keypoints, seen or not, reported anywhere among the seen
    # ones with modest confidence, so that the estimate learns not to follow one point blindly.
    fake = rand(n, 17) < 0.1 * rand(n, 1)
    noisy = torch.where(fake[..., None], lo[:, None] + rand(n, 17, 2) * (hi - lo)[:, None], noisy)
    conf = torch.where(fake, 0.21 + 0.49 * rand(n, 17), conf)
    keypoints = torch.cat((noisy, conf[..., None]), -1)
    center, scale = keypoint_crop(keypoints, (lo + hi) / 2)
    f2 = focal[:, None].expand(n, 2)
    return {
        "x": regressor_inputs(keypoints, center, scale, f2, principal),
        "rotmat": rotmat, "betas": betas, "transl": transl, "clean": clean, "kp3d": kp_body,
        "center": center, "b": 200 * scale, "focal": focal, "principal": principal,
    }  # fmt: skip


def regressor_loss(model: KeypointRegressor, body: BodyModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss terms, each a scalar: 3D keypoints (mean distance in metres, mid-hip aligned, as
    MPJPE), rotations (squared Frobenius distance of root and joint rotations), betas (L2),
    crop camera (L2 on log s, tx, ty) and full-frame reprojection (pixel distance of all 17
    keypoints, in units of the crop size b, seen or not)."""
    rotmat, betas, cam = model(batch["x"])
    center, b, f, c = batch["center"], batch["b"], batch["focal"], batch["principal"]
    cam_gt = cam_full_to_crop(batch["transl"], center, b, f, c)
    transl = cam_crop_to_full(cam, center, b, f, c)
    proj = perspective_project(body.keypoints_only(rotmat, betas, transl), f, c)
    sq = ((rotmat - batch["rotmat"]) ** 2).sum((-1, -2))
    mid = lambda k: k - k[:, 11:13].mean(1, keepdim=True)  # noqa: E731
    return {
        "kp3d": (mid(body.keypoints_only(rotmat, betas)) - mid(batch["kp3d"])).norm(dim=-1).mean(),
        "root": sq[:, 0].mean(),
        "pose": sq[:, 1:].mean(),
        "betas": ((betas - batch["betas"]) ** 2).mean(),
        "cam": ((cam[:, 0].log() - cam_gt[:, 0].log()) ** 2 + ((cam[:, 1:] - cam_gt[:, 1:]) ** 2).sum(-1)).mean(),
        "reproj": ((proj - batch["clean"]).norm(dim=-1) / b[:, None]).mean(),
    }


LOSS_WEIGHTS = {"kp3d": 4.0, "root": 1.0, "pose": 1.0, "betas": 0.1, "cam": 1.0, "reproj": 2.0}


def train_regressor(
    out_path: str | Path,
    steps: int = 3000,
    batch_size: int = 256,
    seed: int = 0,
    lr: float = 1e-3,
    pool_size: int = 4096,
    renew: int = 16,
    hidden: int = 384,
    blocks: int = 3,
    body: BodyModel | None = None,
    log_every: int = 100,
    poses: torch.Tensor | None = None,
    betas_std: float | torch.Tensor = TRAIN_BETAS_STD,
) -> dict[str, float]:
    """Train a `KeypointRegressor` for `body` (default: the default body model) on synthetic
    people and save it to `out_path`; returns the last losses and the seconds taken.

    Each step draws a batch from a pool of `pool_size` people of `make_scenes`, `renew` of whom
    are replaced by new ones, with fresh cameras and detector noise (`synthetic_batch`). Their
    poses are frames of `poses` (N, J, 3), real motion, or random joint angles without it; their
    betas Gaussian with `betas_std`. AdamW with a cosine learning-rate decay.
    """
    start = time.perf_counter()
    body = body or load_body_model(None)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pool = _PosePool(body, pool_size, seed, poses, betas_std)
    model = KeypointRegressor(body.num_joints, body.num_betas, body.name, hidden, blocks)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(1, steps))))
    terms = {}
    for step in range(steps):
        if renew:
            pool.renew(renew)
        terms = regressor_loss(model, body, synthetic_batch(pool, batch_size, gen))
        loss = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            parts = " ".join(f"{k} {v.item():.4f}" for k, v in terms.items())
            print(f"step {step:5d}  loss {loss.item():.4f}  {parts}  {time.perf_counter() - start:.0f} s", flush=True)
    save_regressor(model, out_path)
    return {k: v.item() for k, v in terms.items()} | {"seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the keypoint regressor (the initial body estimate) on synthetic people.")
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pool", type=int, default=4096, help="synthetic people kept at once")
    p.add_argument("--hidden", type=int, default=384, help="width of the MLP")
    p.add_argument("--blocks", type=int, default=3, help="residual blocks of the MLP")
    p.add_argument("--poses", type=Path, default=MOCAP_FILE, help="real motion: the 'train' clips are used")
    p.add_argument("--no-balance", dest="balance", action="store_false", help="draw frames as they come, not each source equally")
    a = p.parse_args(argv)
    # Small matrices: one thread is much faster than two, and 20-50x faster when another
    # process keeps a core busy (the threads wait on each other).
    torch.set_num_threads(1)
    poses = load_mocap_poses("train", a.poses, balance=a.balance)
    stats = train_regressor(a.out, a.steps, a.batch_size, a.seed, a.lr, a.pool, hidden=a.hidden, blocks=a.blocks, poses=poses)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB) in {stats['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
