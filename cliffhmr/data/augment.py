"""Augmentation of training samples.

Augmentation moves the *camera*, never just the crop, so that everything stays a valid
full-perspective observation: a horizontal flip mirrors the whole image (and the camera x
axis), a rotation rolls the camera about its optical axis (the image turns about the principal
point), and the box is jittered in size and position. Full-image keypoints, 3D joints, SMPL
pose, box centre/size and hence bbox_info all follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .joints import J24_FLIP_PERM, SMPL_FLIP_PERM


@dataclass
class AugmentConfig:
    """Defaults follow SPIN (noise 0.4, rotation 30 deg, scale 0.25); translation and occlusion are ours."""

    flip_prob: float = 0.5
    rot_factor: float = 30.0  # degrees; N(0, f) clipped to +-2f ...
    rot_prob: float = 0.4  # ... applied to this fraction of samples
    scale_factor: float = 0.25  # box size x clip(N(1, f), 1 - f, 1 + f)
    trans_factor: float = 0.1  # box centre moved by U(-f, f) x box size, per axis
    noise_factor: float = 0.4  # each colour channel x U(1 - f, 1 + f)
    occlusion_prob: float = 0.3  # one random rectangle over the crop


@dataclass
class Augment:
    """One draw of augmentation parameters."""

    flip: bool = False
    roll: float = 0.0  # radians, camera roll about the optical axis
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box size
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    occluder: tuple[float, float, float, float] | None = None  # x, y, w, h as fractions of the crop

    @classmethod
    def sample(cls, cfg: AugmentConfig, rng: np.random.Generator) -> "Augment":
        # Draw every number whatever the outcome, so one sample's draws never shift another's.
        u = rng.random(3)
        rot = float(np.clip(rng.normal() * cfg.rot_factor, -2 * cfg.rot_factor, 2 * cfg.rot_factor))
        sc = float(np.clip(1 + rng.normal() * cfg.scale_factor, 1 - cfg.scale_factor, 1 + cfg.scale_factor))
        shift = rng.uniform(-cfg.trans_factor, cfg.trans_factor, 2)
        colour = rng.uniform(1 - cfg.noise_factor, 1 + cfg.noise_factor, 3)
        occ = rng.random(4)
        return cls(
            flip=bool(u[0] < cfg.flip_prob),
            roll=math.radians(rot) if u[1] < cfg.rot_prob else 0.0,
            scale=sc,
            shift=(float(shift[0]), float(shift[1])),
            colour=tuple(float(c) for c in colour),
            occluder=(occ[0], occ[1], 0.1 + 0.4 * occ[2], 0.1 + 0.4 * occ[3]) if u[2] < cfg.occlusion_prob else None,
        )


def camera_transform(aug: Augment, principal: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera motion of a flip and a roll.

    principal: (2,) pixels; width: image width. Returns (Q (3, 3) old camera frame -> new,
    A (2, 3) affine map old pixels -> new pixels, the new principal point (2,)).
    With u = f X / Z + p (square pixels), A(u) = f (Q X)_xy / Z + p' exactly, since Q keeps Z.
    """
    M = np.diag([-1.0 if aug.flip else 1.0, 1.0, 1.0])
    c, s = math.cos(aug.roll), math.sin(aug.roll)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    Q = Rz @ M
    new_p = np.array([width - principal[0], principal[1]]) if aug.flip else np.asarray(principal, np.float64)  # x -> W - x
    L = Q[:2, :2]
    A = np.concatenate((L, (new_p - L @ principal)[:, None]), axis=1)
    return Q, A, new_p


def flip_smpl_pose(rotmat: torch.Tensor) -> torch.Tensor:
    """Mirror an SMPL pose across the x = 0 plane. rotmat: (24, 3, 3) -> (24, 3, 3).

    Left and right joints swap and each rotation R becomes M R M with M = diag(-1, 1, 1)
    (in axis-angle: negate the y and z components).
    """
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=rotmat.dtype))
    return M @ rotmat[SMPL_FLIP_PERM] @ M


def augment_annotations(
    aug: Augment, Q: np.ndarray, A: np.ndarray, part: np.ndarray, S: np.ndarray | None, rotmat: torch.Tensor
) -> tuple[np.ndarray, np.ndarray | None, torch.Tensor]:
    """Apply the camera motion to the labels.

    part: (24, 3) pixels + conf; S: (24, 4) camera frame + conf or None; rotmat: (24, 3, 3).
    Returns the new (part, S, rotmat); the global orientation becomes Q R0 M.
    """
    part = part.copy()
    part[:, :2] = part[:, :2] @ A[:, :2].T + A[:, 2]
    if S is not None:
        S = S.copy()
        S[:, :3] = S[:, :3] @ Q.T
    if aug.flip:
        part = part[J24_FLIP_PERM]
        S = S[J24_FLIP_PERM] if S is not None else None
        rotmat = flip_smpl_pose(rotmat)
    if aug.roll:
        c, s = math.cos(aug.roll), math.sin(aug.roll)
        Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=rotmat.dtype)
        rotmat = rotmat.clone()
        rotmat[0] = Rz @ rotmat[0]
    return part, S, rotmat


def colour_and_occlude(img: torch.Tensor, aug: Augment, rng: np.random.Generator) -> torch.Tensor:
    """Per-channel gain, then one occluding rectangle of uniform random colour. img: (3, H, W) in [0, 1]."""
    img = (img * torch.tensor(aug.colour, dtype=img.dtype)[:, None, None]).clamp_(0.0, 1.0)
    if aug.occluder is not None:
        _, h, w = img.shape
        x, y, ow, oh = aug.occluder
        x0, y0 = int(x * w), int(y * h)
        x1, y1 = min(w, x0 + max(1, int(ow * w))), min(h, y0 + max(1, int(oh * h)))
        img[:, y0:y1, x0:x1] = torch.from_numpy(rng.random(3).astype(np.float32))[:, None, None]
    return img
