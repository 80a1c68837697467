"""Fit the Anny pose prior (Gaussian mixture + joint limits) to retargeted real motion.

    .venv/bin/python tools/fit_pose_prior.py                  # data/mocap/anny_poses.npz -> cliffhmr/assets/anny_pose_prior.npz

Training poses: the frames of the clips marked "train", plus their left/right mirror images
(people are symmetric; a clip of someone kicking with the right leg teaches the left kick too).
The clips marked "test" never enter the fit; their log-likelihood is reported, next to random
Gaussian poses and poses with hyper-extended knees, and goes into docs/pose_prior.md.

Mixture: full covariances fitted by EM (k-means++ start), a floor of `--reg` rad^2 added to each
covariance's diagonal so that rarely moving joints do not collapse the density. The number of
components is chosen by held-out likelihood among `--components` when several are given.
Limits: per joint and axis-angle component, the 0.1 and 99.9 percentiles of the training poses
widened by `--margin-deg`; knees straighten to at most 10 degrees past straight.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cliffhmr.body.anny import ANNY_JOINT_NAMES  # noqa: E402
from cliffhmr.body.prior import PRIOR_FILE, PosePrior, mirror_pose, save_prior_file  # noqa: E402
from cliffhmr.synthetic.scenes import source_weights  # noqa: E402

POSES = ROOT / "data" / "mocap" / "anny_poses.npz"
# Spread of adults of normal build around the wrapper's mean, per phenotype (gender, age, muscle,
# weight, height, proportions): gender is weakly held (people come in both), the rest within ~0.1.
SHAPE_STD = (0.3, 0.1, 0.1, 0.1, 0.1, 0.1)
KNEES = ("lowerleg01.L", "lowerleg01.R")
# A knee straightens to about 0 and not much past it; the retargeted clips reach -44 degrees
# where a source's knee landmark sits off the hip-ankle line, so flexion (+X) is bounded by anatomy.
KNEE_MIN_FLEXION_DEG = -10.0


def load_poses(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> train, test body poses (N, J-1, 3) float64 by the file's clip split (root dropped), and
    per training frame a weight that gives every source the same total (N,), mean 1: one long
    climbing capture would otherwise outweigh all the walking, running and kicking."""
    with np.load(path, allow_pickle=False) as z:
        pose, clip, split, source = z["pose"], z["clip"], z["split"], z["source"]
    is_test = (split == "test")[clip]
    body = torch.from_numpy(pose[:, 1:].astype(np.float64))
    return body[~is_test], body[is_test], torch.from_numpy(source_weights(source[clip][~is_test]))


def kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    centres = [x[torch.randint(len(x), (1,), generator=gen)]]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.cat(centres)).amin(1) ** 2
        centres.append(x[torch.multinomial(d2 / d2.sum(), 1, generator=gen)])
    return torch.cat(centres)


def fit_gmm(x: torch.Tensor, k: int, reg: float, sample_weight: torch.Tensor | None = None, iterations: int = 200, seed: int = 0):
    """EM for a full-covariance mixture. x (N, D), sample_weight (N,) summing to N (default all 1)
    -> weights (K,), means (K, D), covariances (K, D, D)."""
    gen = torch.Generator().manual_seed(seed)
    N, D = x.shape
    sw = torch.ones(N, dtype=x.dtype) if sample_weight is None else sample_weight.to(x.dtype)
    means = kmeans_pp(x, k, gen)
    posterior = torch.nn.functional.one_hot(torch.cdist(x, means).argmin(1), k).double()
    eye = torch.eye(D, dtype=x.dtype)
    last = -math.inf
    for _ in range(iterations):
        # M step
        resp = posterior * sw[:, None]
        nk = resp.sum(0) + 1e-9
        weights = nk / nk.sum()
        means = (resp.T @ x) / nk[:, None]
        diff = x[:, None] - means  # (N, K, D)
        covariances = torch.einsum("nk,nkd,nke->kde", resp, diff, diff) / nk[:, None, None] + reg * eye
        # E step
        log_p = component_log_prob(x, weights, means, covariances)
        total = torch.logsumexp(log_p, 1)
        posterior = (log_p - total[:, None]).exp()
        ll = float((sw * total).sum() / sw.sum())
        if ll - last < 1e-6 * abs(ll):
            break
        last = ll
    return weights, means, covariances


def component_log_prob(x, weights, means, covariances) -> torch.Tensor:
    """(N, D) -> (N, K) log(w_k N(x; mu_k, S_k))."""
    L = torch.linalg.cholesky(covariances)
    diff = (x[:, None] - means).permute(1, 2, 0)  # (K, D, N)
    z = torch.linalg.solve_triangular(L, diff, upper=False)  # (K, D, N)
    D = x.shape[1]
    log_det = 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return (weights.log() - 0.5 * (D * math.log(2 * math.pi) + log_det))[None] - 0.5 * (z**2).sum(1).T


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--poses", type=Path, default=POSES)
    p.add_argument("--out", type=Path, default=PRIOR_FILE)
    p.add_argument("--components", type=int, nargs="+", default=[4])
    p.add_argument("--reg", type=float, default=0.01, help="added to each covariance's diagonal, rad^2")
    p.add_argument("--margin-deg", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    torch.set_num_threads(1)
    train, test, train_weight = load_poses(a.poses)
    names = ANNY_JOINT_NAMES
    body_names = names[1:]
    mirrored = mirror_pose(torch.cat((torch.zeros(len(train), 1, 3, dtype=train.dtype), train), 1), names)[:, 1:]
    train_all = torch.cat((train, mirrored))
    x_train, x_test = train_all.flatten(1), test.flatten(1)
    w_train = torch.cat((train_weight, train_weight))
    print(f"train: {len(train)} frames (+ mirrored = {len(train_all)}), test: {len(test)} frames")

    best = None
    for k in a.components:
        w, mu, cov = fit_gmm(x_train, k, a.reg, w_train, seed=a.seed)
        ll_train = float((w_train * torch.logsumexp(component_log_prob(x_train, w, mu, cov), 1)).mean())
        ll_test = float(torch.logsumexp(component_log_prob(x_test, w, mu, cov), 1).mean())
        print(f"K={k:3d}  mean log-likelihood train {ll_train:8.2f}  held-out {ll_test:8.2f}")
        if best is None or ll_test > best[0]:
            best = (ll_test, k, w, mu, cov)
    _, k, w, mu, cov = best

    q = torch.quantile(train_all.reshape(len(train_all), -1), torch.tensor([0.001, 0.999], dtype=train_all.dtype), dim=0)
    margin = math.radians(a.margin_deg)
    lower, upper = (q[0] - margin).reshape(-1, 3), (q[1] + margin).reshape(-1, 3)
    for knee in KNEES:
        lower[body_names.index(knee), 0] = math.radians(KNEE_MIN_FLEXION_DEG)
    shape_std = torch.tensor(SHAPE_STD, dtype=torch.float64)
    prior = PosePrior(w, mu, cov, lower, upper, names, shape_std)

    # What the prior says about poses it never saw, and about poses no person holds.
    gen = torch.Generator().manual_seed(a.seed + 1)
    random_pose = torch.randn(len(test), len(body_names), 3, generator=gen, dtype=torch.float64) * 0.35
    hyper = test.clone()
    for knee in KNEES:
        hyper[:, body_names.index(knee), 0] = -math.radians(40)  # knee bent 40 degrees backwards
    ll = {name: prior.log_prob(v.float()) for name, v in
          (("train", train), ("held-out", test), ("random Gaussian (0.35 rad)", random_pose), ("hyper-extended knees", hyper))}  # fmt: skip
    inside = prior.project(test.float()).sub(test.float()).abs().amax((-1, -2)) < 1e-6
    print(f"chosen K={k}; mean log-likelihood per pose:")
    for name, v in ll.items():
        print(f"  {name:28s} {float(v.mean()):9.2f}  (median {float(v.median()):9.2f})")
    print(f"held-out frames inside the joint limits: {100 * float(inside.float().mean()):.2f}%")
    save_prior_file(
        a.out, w.numpy(), mu.numpy(), cov.numpy(), lower.numpy(), upper.numpy(), names, shape_std.numpy(),
        heldout_log_likelihood=np.array(float(ll["held-out"].mean())), train_frames=np.array(len(train)),
        test_frames=np.array(len(test)), margin_deg=np.array(a.margin_deg),
    )  # fmt: skip
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
