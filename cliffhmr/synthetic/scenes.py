"""Synthetic people in full frames, with known cameras, for tests, benchmarks and training.

A person is the body model in a random pose and shape, standing upright with a random heading,
placed so that its pelvis lands anywhere in the image at a random depth, seen by a camera with
a random but realistic field of view. Their COCO-17 keypoints are projected with the
full-perspective camera, then perturbed with pixel noise and dropouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..body import FACE_CAMERA, BodyModel
from ..body.prior import mirror_pose
from ..errors import CliffError
from ..geometry.boxes import box_around, box_size, grow_box
from ..geometry.camera import perspective_project
from ..geometry.rotation import axis_angle_to_rotmat

# Real motion retargeted onto Anny by tools/convert_mocap.py (in the source tree, not the wheel).
MOCAP_FILE = Path(__file__).resolve().parents[2] / "data" / "mocap" / "anny_poses.npz"

# Per-joint spread (radians, per axis) of random poses, by a word in the joint's name. Loose
# enough to vary the silhouette, tight enough to stay human-looking in most samples.
_SPREAD = (
    ("spine", 0.12), ("pelvis", 0.0), ("root", 0.0), ("neck", 0.15), ("head", 0.2),
    ("clavicle", 0.08), ("collar", 0.08), ("shoulder", 0.5), ("upperarm", 0.5), ("arm", 0.5),
    ("elbow", 0.5), ("forearm", 0.5), ("lowerarm", 0.5), ("hand", 0.2), ("wrist", 0.2),
    ("hip", 0.35), ("thigh", 0.35), ("upperleg", 0.35), ("knee", 0.35), ("calf", 0.35), ("shin", 0.35),
    ("lowerleg", 0.35), ("foot", 0.15), ("ankle", 0.15), ("toe", 0.1),
)


def joint_spread(names: list[str]) -> torch.Tensor:
    """(J,) pose spread per joint, from the joint names; 0.2 rad for names not listed."""
    out = []
    for name in names:
        low = name.lower()
        out.append(next((s for word, s in _SPREAD if word in low), 0.2))
    return torch.tensor(out)


def sample_rotmats(body: BodyModel, n: int, gen: torch.Generator, spread: float = 1.0) -> torch.Tensor:
    """(n, J, 3, 3) local rotations: random limbs; the root upright (pitch/roll up to ~15 deg), any heading, facing the camera frame."""
    sigma = joint_spread(body.joint_names) * spread
    aa = torch.randn(n, body.num_joints, 3, generator=gen) * sigma[None, :, None]
    yaw = (torch.rand(n, generator=gen) * 2 - 1) * math.pi
    tilt = torch.randn(n, 2, generator=gen) * 0.12
    root_canonical = axis_angle_to_rotmat(torch.stack((tilt[:, 0], yaw, tilt[:, 1]), -1))
    R = axis_angle_to_rotmat(aa)
    R[:, 0] = FACE_CAMERA @ root_canonical
    return R


def load_mocap_poses(split: str = "train", path: str | Path = MOCAP_FILE, balance: bool = False) -> torch.Tensor:
    """(N, J, 3) axis-angle poses of the clips of `split` ("train", "test" or "all"); joint 0 is
    the capture's own root orientation in the canonical frame (+Y up).

    balance: draw N frames (with replacement, fixed seed) so that every source (CMU walking,
    DeepMimic's varied skills, holosoma climbing) is equally likely; otherwise the one long
    climbing capture makes most of the frames, and everyday poses would be the rare ones.
    """
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"motion capture poses not found: {path} (made by tools/convert_mocap.py)")
    with np.load(path, allow_pickle=False) as z:
        pose, clip, clip_split, source = z["pose"], z["clip"], z["split"], z["source"]
    keep = np.ones(len(pose), bool) if split == "all" else (clip_split == split)[clip]
    pose = pose[keep]
    if balance and len(pose):
        weight = torch.from_numpy(source_weights(source[clip[keep]]))
        pick = torch.multinomial(weight, len(pose), replacement=True, generator=torch.Generator().manual_seed(0))
        pose = pose[pick.numpy()]
    return torch.from_numpy(pose.astype(np.float32))


def source_weights(frame_source: np.ndarray) -> np.ndarray:
    """(N,) source name per frame -> (N,) weights with mean 1 that give every source the same total."""
    _, inverse, counts = np.unique(frame_source, return_inverse=True, return_counts=True)
    weight = 1.0 / counts[inverse]
    return weight * len(weight) / weight.sum()


BODY_PARTS = {"legs": ("upperleg", "lowerleg", "foot"), "arms": ("clavicle", "upperarm", "lowerarm", "wrist")}
"""Joint-name words of the parts `sample_mocap_rotmats(mix_parts=)` takes from other frames."""


def sample_mocap_rotmats(body: BodyModel, poses: torch.Tensor, n: int, gen: torch.Generator,
                         mix_parts: dict[str, float] | None = None) -> torch.Tensor:
    """(n, J, 3, 3) local rotations of random frames of `poses` (N, J, 3), half of them mirrored
    left/right, each turned to a random heading about the vertical and put in the camera frame.
    The capture's tilt (a person bending, lying, crawling) is kept. mix_parts: per part of `BODY_PARTS`
    ("arms", "legs"), the share of people whose part comes from another random frame (each part
    drawn apart): poses the captures hold only in pieces (climbing arms on walking legs)."""
    aa = poses[torch.randint(len(poses), (n,), generator=gen)]
    names = [name.lower() for name in body.joint_names]
    for part, share in (mix_parts or {}).items():
        if share > 0:
            joints = torch.tensor([j for j, name in enumerate(names) if any(w in name for w in BODY_PARTS[part])])
            mixed = torch.rand(n, generator=gen) < share
            other = poses[torch.randint(len(poses), (n,), generator=gen)]
            aa[:, joints] = torch.where(mixed[:, None, None], other[:, joints], aa[:, joints])
    flip = torch.rand(n, generator=gen) < 0.5
    aa = torch.where(flip[:, None, None], mirror_pose(aa, body.joint_names), aa)
    yaw = (torch.rand(n, generator=gen) * 2 - 1) * math.pi
    heading = axis_angle_to_rotmat(torch.stack((torch.zeros(n), yaw, torch.zeros(n)), -1))
    R = axis_angle_to_rotmat(aa)
    R[:, 0] = FACE_CAMERA @ heading @ R[:, 0]
    return R


@dataclass
class Scenes:
    """N synthetic people, each in its own frame of size (width, height)."""

    rotmat: torch.Tensor  # (N, J, 3, 3) ground-truth local rotations, [0] in the camera frame
    betas: torch.Tensor  # (N, S)
    transl: torch.Tensor  # (N, 3)
    focal: torch.Tensor  # (N,) pixels
    width: int
    height: int
    keypoints_3d: torch.Tensor  # (N, 17, 3) camera frame
    keypoints_2d: torch.Tensor  # (N, 17, 3) noisy pixels + confidence (0 = dropped)
    clean_2d: torch.Tensor  # (N, 17, 2)
    boxes: torch.Tensor  # (N, 4) x1, y1, x2, y2 around the clean keypoints, 10% margin

    @property
    def principal(self) -> torch.Tensor:
        return torch.tensor([[self.width / 2, self.height / 2]]).expand(len(self.focal), 2)

    def off_center_deg(self) -> torch.Tensor:
        """(N,) angle between the optical axis and the ray through the pelvis, degrees."""
        pelvis = self.keypoints_3d[:, 11:13].mean(1)
        return torch.rad2deg(torch.atan2(pelvis[:, :2].norm(dim=-1), pelvis[:, 2]))


def make_scenes(
    body: BodyModel,
    n: int,
    seed: int = 0,
    width: int = 1920,
    height: int = 1080,
    hfov_deg: tuple[float, float] = (45.0, 90.0),
    depth_m: tuple[float, float] = (3.0, 9.0),
    noise: float = 0.01,
    dropout: float = 0.1,
    spread: float = 1.0,
    poses: torch.Tensor | None = None,
    betas_std: float | torch.Tensor = 0.5,
    mix_parts: dict[str, float] | None = None,
) -> Scenes:
    """Sample `n` people; pixel noise is `noise` x the person's box height (Gaussian, per coordinate).
    Poses: random joint angles (`sample_rotmats`, `spread`), or frames of real motion `poses`
    (N, J, 3) (`sample_mocap_rotmats`, with `mix_parts`); betas Gaussian with `betas_std` (scalar or (S,))."""
    gen = torch.Generator().manual_seed(seed)
    rot = sample_rotmats(body, n, gen, spread) if poses is None else sample_mocap_rotmats(body, poses, n, gen, mix_parts)
    betas = torch.randn(n, body.num_betas, generator=gen) * betas_std
    hfov = torch.deg2rad(hfov_deg[0] + torch.rand(n, generator=gen) * (hfov_deg[1] - hfov_deg[0]))
    focal = width / 2 / torch.tan(hfov / 2)
    with torch.no_grad():
        rest = body(rot, betas)
    pelvis = rest.keypoints[:, 11:13].mean(1)
    # Pelvis pixel anywhere in the central 80% of the frame, at a random depth.
    uv = torch.rand(n, 2, generator=gen) * 0.8 + 0.1
    u, v = uv[:, 0] * width, uv[:, 1] * height
    z = depth_m[0] + torch.rand(n, generator=gen) * (depth_m[1] - depth_m[0])
    target = torch.stack(((u - width / 2) / focal * z, (v - height / 2) / focal * z, z), -1)
    transl = target - pelvis
    with torch.no_grad():
        kp3d = rest.keypoints + transl[:, None]
    principal = torch.tensor([[width / 2, height / 2]]).expand(n, 2)
    clean = perspective_project(kp3d, focal, principal)
    tight = box_around(clean)
    size, boxes = box_size(tight), grow_box(tight, 0.1)
    noisy = clean + torch.randn(clean.shape, generator=gen) * noise * size[:, None, None]
    keep = (torch.rand(n, 17, generator=gen) >= dropout).float()
    return Scenes(rot, betas, transl, focal, width, height, kp3d, torch.cat((noisy, keep[..., None]), -1), clean, boxes)
