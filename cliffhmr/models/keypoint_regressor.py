"""The keypoint regressor: a small network in the CLIFF spirit that reads a person's 2D keypoints,
normalised in their crop, plus `bbox_info` (where the crop is and how big, relative to the focal
length), and predicts body pose, shape and the crop camera, with the root orientation directly in
the full camera frame. `models.initial` uses it for the fit's starting point; it is trained on
synthetic people in real captured poses by `python -m cliffhmr.train.keypoint_regressor`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from ..body import FACE_CAMERA
from ..errors import CliffError
from ..geometry.boxes import box_around, grow_box
from ..geometry.camera import bbox_info
from ..geometry.rotation import rot6d_to_rotmat, rotmat_to_rot6d
from ..perception.crop import box_to_center_scale
from ..perception.keypoints import sanitize_keypoints

DEFAULT_WEIGHTS = Path(__file__).parents[1] / "assets" / "keypoint_regressor.pt"
WEIGHTS_FORMAT = 1


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


def save_keypoint_regressor(model: KeypointRegressor, path: str | Path) -> None:
    """Write `model` as {"config": plain dict, "state_dict": tensors}, readable with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save({"config": model.config, "state_dict": model.state_dict()}, tmp)


def load_keypoint_regressor(path: str | Path = DEFAULT_WEIGHTS) -> KeypointRegressor:
    """The regressor saved at `path` by `train.keypoint_regressor`, in eval mode (cached per file version)."""
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
