"""What real people's bodies do: a pose prior and joint limits learned from motion capture, and
a shape prior, for the Anny body.

- Pose prior: a Gaussian mixture over the body pose (the local axis-angle rotations of joints
  1..J-1, root excluded), as SMPLify's prior is for SMPL. Anny ships none; ours is fitted by
  `tools/fit_pose_prior.py` to real motion capture retargeted onto Anny (`tools/convert_mocap.py`),
  mirrored left/right, with whole clips held out for evaluation (see docs/pose_prior.md).
- Joint limits: a box per joint on the axis-angle components, from the same motion (a margin
  beyond what real people did). Knees and elbows therefore bend one way only. Being a box, the
  fit can both penalise leaving it and project back into it exactly.
- Shape prior: phenotype offsets pulled to the mean with the spread of adults of normal build,
  and held inside Anny's valid range (beyond it the shape stops changing, so nothing else would).

The file is `assets/anny_pose_prior.npz` (plain float arrays; read with allow_pickle=False).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CliffError
from ..geometry.rotation import rotmat_to_axis_angle

PRIOR_FILE = Path(__file__).parents[1] / "assets" / "anny_pose_prior.npz"
PRIOR_FORMAT = 1


def mirror_names(names: list[str]) -> list[int]:
    """For each joint, the index of its left/right twin (itself on the midline). Names end in
    '.L'/'.R' (Anny) or start with 'left_'/'right_' or 'L_'/'R_' (COCO, SMPL)."""

    def twin(name: str) -> str:
        for a, b in ((".L", ".R"), (".R", ".L")):
            if name.endswith(a):
                return name[: -len(a)] + b
        for a, b in (("left_", "right_"), ("right_", "left_"), ("L_", "R_"), ("R_", "L_")):
            if name.startswith(a):
                return b + name[len(a) :]
        return name

    index = {n: i for i, n in enumerate(names)}
    return [index[twin(n)] for n in names]


def mirror_pose(aa: Tensor, names: list[str]) -> Tensor:
    """The left/right mirror image of local axis-angle poses: aa (..., J, 3) -> (..., J, 3).

    Reflecting the body in its sagittal plane (x -> -x in the canonical frame) maps a rotation R
    to M R M with M = diag(-1, 1, 1), i.e. axis-angle (x, y, z) -> (x, -y, -z), and swaps each
    left joint with its right twin.
    """
    flip = aa.new_tensor([1.0, -1.0, -1.0])
    return aa[..., mirror_names(names), :] * flip


class PosePrior(nn.Module):
    """Gaussian mixture over body poses plus per-joint axis-angle limits, for one body model.

    Poses are local axis-angles (B, J-1, 3) of joints 1.. of `joint_names` (the root excluded).
    """

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor, lower: Tensor, upper: Tensor,
                 joint_names: list[str], shape_std: Tensor) -> None:  # fmt: skip
        super().__init__()
        K, D = means.shape
        if covariances.shape != (K, D, D) or weights.shape != (K,) or lower.shape != upper.shape or lower.numel() != D:
            raise ValueError("pose prior arrays do not fit together")
        self.joint_names = list(joint_names)
        chol = torch.linalg.cholesky(covariances.double())
        # Mahalanobis distance by a triangular solve with the covariance's Cholesky factor L.
        precision_chol = torch.linalg.inv(chol).transpose(-1, -2)  # P = inv(L)^T: (x-mu) @ P has identity covariance
        log_norm = weights.double().log() - 0.5 * D * math.log(2 * math.pi) - chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        f32 = dict(dtype=torch.float32)
        self.register_buffer("means", means.to(**f32), persistent=False)
        self.register_buffer("precision_chol", precision_chol.to(**f32), persistent=False)
        self.register_buffer("log_norm", log_norm.to(**f32), persistent=False)
        self.register_buffer("lower", lower.reshape(-1, 3).to(**f32), persistent=False)
        self.register_buffer("upper", upper.reshape(-1, 3).to(**f32), persistent=False)
        self.register_buffer("shape_std", shape_std.to(**f32), persistent=False)

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def log_prob(self, body_aa: Tensor) -> Tensor:
        """Log density of the mixture, (B, J-1, 3) -> (B,)."""
        x = body_aa.reshape(body_aa.shape[0], 1, -1) - self.means  # (B, K, D)
        z = torch.einsum("bkd,kde->bke", x, self.precision_chol)
        return torch.logsumexp(self.log_norm - 0.5 * (z**2).sum(-1), dim=-1)

    def penalty(self, body_aa: Tensor) -> Tensor:
        """The prior as a loss, (B, J-1, 3) -> (B,): minus the log density, offset so that the
        densest mode's centre scores about 0 (a constant: it changes no gradient)."""
        return self.log_norm.max() - self.log_prob(body_aa)

    def limit_excess(self, body_aa: Tensor) -> Tensor:
        """(B, J-1, 3) -> (B, J-1, 3) radians outside each joint's box (0 inside)."""
        return (self.lower - body_aa).clamp_min(0) + (body_aa - self.upper).clamp_min(0)

    def limit_penalty(self, body_aa: Tensor) -> Tensor:
        """(B, J-1, 3) -> (B,) sum of squared excess: 0 inside the limits, growing outside."""
        return (self.limit_excess(body_aa) ** 2).sum((-1, -2))

    def project(self, body_aa: Tensor) -> Tensor:
        """The nearest pose inside the limits (per component), (B, J-1, 3)."""
        return torch.maximum(torch.minimum(body_aa, self.upper), self.lower)

    def within_limits(self, rotmat: Tensor, tol_deg: float = 1.0) -> Tensor:
        """(B, J, 3, 3) local rotations (root first) -> (B,) True where every joint is within
        its limits (to `tol_deg` degrees)."""
        aa = rotmat_to_axis_angle(rotmat[:, 1:].float())
        return (self.limit_excess(aa) <= math.radians(tol_deg)).all(-1).all(-1)

    def shape_penalty(self, betas: Tensor) -> Tensor:
        """(B, S) -> (B,) squared betas in units of the adult spread (a Gaussian's -log density)."""
        return ((betas / self.shape_std) ** 2).sum(-1)


def save_prior_file(path: str | Path, weights, means, covariances, lower, upper, joint_names, shape_std, **info) -> None:
    """Write the prior as plain arrays (no pickles); `info` adds scalar/array metadata."""
    from ..atomic import write_npz_atomic

    arrays = {
        "format": np.array(PRIOR_FORMAT), "weights": weights, "means": means, "covariances": covariances,
        "lower": lower, "upper": upper, "shape_std": shape_std, "joint_names": np.array(joint_names, dtype=str),
    }  # fmt: skip
    arrays.update({k: np.asarray(v) for k, v in info.items()})
    write_npz_atomic(path, {k: np.asarray(v) for k, v in arrays.items()}, compressed=True)


def read_prior_file(path: str | Path = PRIOR_FILE) -> PosePrior:
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"pose prior not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != PRIOR_FORMAT:
                raise ValueError(f"format {int(z['format'])}, expected {PRIOR_FORMAT}")
            t = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float64)) for k in
                 ("weights", "means", "covariances", "lower", "upper", "shape_std")}  # fmt: skip
            names = [str(n) for n in z["joint_names"]]
        return PosePrior(t["weights"], t["means"], t["covariances"], t["lower"], t["upper"], names, t["shape_std"])
    except (KeyError, ValueError, OSError, RuntimeError) as e:
        raise CliffError(f"{path}: not a pose prior file ({type(e).__name__}: {e})") from None


@functools.lru_cache(maxsize=4)
def _cached(path: str, mtime: int) -> PosePrior:
    return read_prior_file(path)


def load_pose_prior(joint_names: list[str], path: str | Path = PRIOR_FILE) -> PosePrior | None:
    """The prior for a body with these joints, or None where none exists (e.g. SMPL) or the
    default file is absent. A prior made for other joints is never applied."""
    path = Path(path)
    if not path.is_file():
        return None
    prior = _cached(str(path.resolve()), path.stat().st_mtime_ns)
    return prior if prior.joint_names == list(joint_names) else None
