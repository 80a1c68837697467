"""Rotation representations on batched tensors.

All functions accept any leading batch shape `(...)` and are differentiable.
Conventions: rotation matrices act on column vectors; axis-angle is a 3-vector whose
direction is the axis and norm the angle in radians; the 6D representation is the
first two columns of the matrix, flattened row-major from a (3, 2) view, as in the
CLIFF/SPIN/HMR regressors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D -> rotation matrix by Gram-Schmidt.

    x: (..., 6), read as a (3, 2) matrix whose columns are the first two columns of R.
    Returns (..., 3, 3).
    """
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6), the inverse of `rot6d_to_rotmat`."""
    return R[..., :2].reshape(*R.shape[:-2], 6)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. aa: (..., 3) -> (..., 3, 3).

    Uses a Taylor expansion near zero so the gradient is finite at the identity.
    """
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos(t))/t^2 with their series for tiny angles.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix: skew(v) @ u == cross(v, u). v: (..., 3) -> (..., 3, 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack((o, -z, y, z, o, -x, -y, x, o), dim=-1).reshape(*v.shape[:-1], 3, 3)


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4) as (x, y, z, w), w >= 0.

    Picks the numerically best of the four Shepperd cases per element.
    """
    m = R
    t0 = 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2]
    t1 = 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2]
    t2 = 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]
    t3 = 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    q0 = torch.stack((t0, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]), -1)
    q1 = torch.stack((m[..., 1, 0] + m[..., 0, 1], t1, m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0]), -1)
    q2 = torch.stack((m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], t2, m[..., 1, 0] - m[..., 0, 1]), -1)
    q3 = torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], t3), -1)
    t = torch.stack((t0, t1, t2, t3), -1)
    best = t.argmax(-1, keepdim=True)
    q = torch.stack((q0, q1, q2, q3), -2)  # (..., 4 cases, 4)
    q = torch.gather(q, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., 3:] < 0, -q, q)


def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (..., 4) as (x, y, z, w) -> axis-angle (..., 3) with angle in [0, pi]."""
    q = torch.where(q[..., 3:] < 0, -q, q)
    xyz, w = q[..., :3], q[..., 3]
    s = xyz.norm(dim=-1)
    angle = 2 * torch.atan2(s, w)
    # angle / sin(angle/2) -> 2 as s -> 0.
    scale = torch.where(s > 1e-8, angle / s.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return xyz * scale.unsqueeze(-1)


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi]."""
    return quat_to_axis_angle(rotmat_to_quat(R))


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle in radians of R1^T R2, (..., 3, 3) x 2 -> (...)."""
    rel = R1.transpose(-1, -2) @ R2
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.acos(cos.clamp(-1.0, 1.0))
