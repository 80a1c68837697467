"""Training the keypoint regressor (`models.keypoint_regressor`) on synthetic people:

    python -m cliffhmr.train.keypoint_regressor --out cliffhmr/assets/keypoint_regressor.pt

Each step draws people in real captured poses (`synthetic.scenes`), places them anywhere in
frames of varied cameras, and shows the regressor their keypoints as a detector would report them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from ..body import BodyModel, load_body_model
from ..geometry.boxes import box_around, box_size
from ..geometry.camera import cam_crop_to_full, cam_full_to_crop, perspective_project
from ..models.keypoint_regressor import DEFAULT_WEIGHTS, KeypointRegressor, keypoint_crop, regressor_inputs, save_keypoint_regressor
from ..synthetic.scenes import MOCAP_FILE, load_mocap_poses, make_scenes

# Shapes the regressor learns from: wider than the fit's shape prior (adults of normal build).
TRAIN_BETAS_STD = torch.tensor([0.3, 0.15, 0.15, 0.15, 0.15, 0.15])
# Shares of people given another frame's arms / legs (`sample_mocap_rotmats`): the committed
# weights' setting (docs/pose_prior.md: better whole bodies, hidden legs a little worse).
MIX_PARTS = {"arms": 0.3, "legs": 0.15}


class _PosePool:
    """Synthetic people from `make_scenes` (pose, shape, posed keypoints without translation),
    renewed a few at a time so training keeps seeing new ones; cameras are drawn per batch.
    Poses are frames of real motion (`poses`, (N, J, 3)) or, without them, random joint angles."""

    def __init__(self, body: BodyModel, size: int, seed: int, poses: torch.Tensor | None = None,
                 betas_std: float | torch.Tensor = 0.5, chunk: int = 512, mix_parts: dict[str, float] | None = None):  # fmt: skip
        self.body, self.seed, self.poses, self.betas_std, self.calls, self.next = body, seed, poses, betas_std, 0, 0
        self.mix_parts = mix_parts
        parts = [self._make(min(chunk, size - i)) for i in range(0, size, chunk)]
        self.rotmat, self.betas, self.kp = (torch.cat(p) for p in zip(*parts))

    def _make(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.calls += 1
        s = make_scenes(self.body, n, seed=self.seed * 1_000_003 + self.calls, noise=0.0, dropout=0.0,
                        poses=self.poses, betas_std=self.betas_std, mix_parts=self.mix_parts)  # fmt: skip
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
    mix_parts: dict[str, float] | None = None,
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
    pool = _PosePool(body, pool_size, seed, poses, betas_std, mix_parts=mix_parts)
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
    save_keypoint_regressor(model, out_path)
    return {k: v.item() for k, v in terms.items()} | {"seconds": time.perf_counter() - start}


def _parts(text: str) -> dict[str, float]:
    """'arms=0.3,legs=0.1' -> {'arms': 0.3, 'legs': 0.1}."""
    from ..synthetic.scenes import BODY_PARTS

    parts = {}
    for item in filter(None, text.split(",")):
        part, _, share = item.partition("=")
        if part not in BODY_PARTS or not share:
            raise argparse.ArgumentTypeError(f"expected PART=SHARE with PART one of {', '.join(BODY_PARTS)}, got {item!r}")
        parts[part] = float(share)
    return parts


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
    p.add_argument("--mix-parts", type=_parts, default=MIX_PARTS, metavar="PART=SHARE,...",
                   help="shares of people given another frame's arms and/or legs ('' for none; default: "
                        + ",".join(f"{k}={v}" for k, v in MIX_PARTS.items()) + ")")
    p.add_argument("--no-balance", dest="balance", action="store_false", help="draw frames as they come, not each source equally")
    a = p.parse_args(argv)
    # Small matrices: one thread is much faster than two, and 20-50x faster when another
    # process keeps a core busy (the threads wait on each other).
    torch.set_num_threads(1)
    poses = load_mocap_poses("train", a.poses, balance=a.balance)
    stats = train_regressor(a.out, a.steps, a.batch_size, a.seed, a.lr, a.pool, hidden=a.hidden, blocks=a.blocks, poses=poses,
                            mix_parts=a.mix_parts)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB) in {stats['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
