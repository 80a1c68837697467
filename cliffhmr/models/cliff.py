"""The CLIFF network and its checkpoint files.

CLIFF = an image encoder (ResNet-50 or HRNet-W48, 2048 features) + the HMR iterative
regressor, whose input also carries the 3-vector `bbox_info` that locates the crop in
the full image. The regressor starts from a mean estimate and refines it by adding
predicted corrections, three times by default.

Checkpoint files are a dict `{'model': state_dict}` (official; keys may carry the
`module.` prefix of DataParallel). Files written here add
`'config': {'backbone': 'res50' | 'hr48', 'bbox_info': 'official' | 'plain', 'crop_height': int}`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..geometry.rotation import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from ..npzio import read_npz
from ..perception.crop import CROP_HEIGHT, MAX_CROP_HEIGHT, crop_width, valid_crop_height
from .hrnet import HRNetW48
from .resnet import ResNet50

BACKBONES = {"res50": ResNet50, "hr48": HRNetW48}
BBOX_INFO_STYLES = ("official", "plain")

NPOSE = SMPL_NUM_JOINTS * 6
NCAM = 3
NBBOX = 3
HIDDEN = 1024
INIT_CAM = (0.9, 0.0, 0.0)  # crop weak-perspective (s, tx, ty) of the SPIN mean


@dataclass
class CliffOutput:
    """Regressor output for a batch of B crops."""

    rotmat: torch.Tensor  # (B, 24, 3, 3) SMPL joint rotations, root first
    pose6d: torch.Tensor  # (B, 144) the same in the 6D representation
    betas: torch.Tensor  # (B, 10) SMPL shape
    cam: torch.Tensor  # (B, 3) crop weak-perspective camera (s, tx, ty)


class CLIFF(nn.Module):
    """Crop (B, 3, 256, 192) + bbox_info (B, 3) -> `CliffOutput`.

    backbone: "res50" or "hr48".
    crop_height: the input height the model is trained for (width 3/4 of it). The official models
        use 256; smaller crops of the same box train faster (benchmarks on CPU). Both encoders
        pool globally, so the weights do not depend on it.
    mean_params: optional SPIN/CLIFF `smpl_mean_params.npz` (keys `pose` (144,) in 6D or
        (72,) axis-angle, `shape` (10,), `cam` (3,)) for the regressor's starting point.
        Without it the start is the identity pose, zero shape and cam (0.9, 0, 0); loading a
        checkpoint overwrites these buffers anyway.
    """

    def __init__(
        self, backbone: str = "res50", mean_params: str | os.PathLike | None = None, crop_height: int = CROP_HEIGHT
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise CliffError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        crop_width(crop_height)  # validates
        self.backbone = backbone
        self.crop_height = crop_height
        self.encoder = BACKBONES[backbone]()

        # No nonlinearity between the fc layers: this is the official (SPIN-derived) regressor.
        self.fc1 = nn.Linear(self.encoder.num_features + NBBOX + NPOSE + SMPL_NUM_BETAS + NCAM, HIDDEN)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.drop2 = nn.Dropout(0.5)
        self.decpose = nn.Linear(HIDDEN, NPOSE)
        self.decshape = nn.Linear(HIDDEN, SMPL_NUM_BETAS)
        self.deccam = nn.Linear(HIDDEN, NCAM)

        pose, shape, cam = _initial_estimate(mean_params)
        self.register_buffer("init_pose", pose[None])
        self.register_buffer("init_shape", shape[None])
        self.register_buffer("init_cam", cam[None])
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.encoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Tiny initial corrections, so training starts close to the mean estimate.
        for head in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(head.weight, gain=0.01)

    def forward(self, img: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3) -> CliffOutput:
        """img: (B, 3, H, W) normalised RGB (H = crop_height); bbox_info: (B, 3)."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise CliffError(f"expected images of shape (B, 3, H, W), got {tuple(img.shape)}")
        b = img.shape[0]
        if bbox_info.shape != (b, NBBOX):
            raise CliffError(f"expected bbox_info of shape ({b}, {NBBOX}), got {tuple(bbox_info.shape)}")

        feats = self.encoder(img)
        pose = self.init_pose.expand(b, -1)
        shape = self.init_shape.expand(b, -1)
        cam = self.init_cam.expand(b, -1)
        for _ in range(n_iter):
            h = torch.cat([feats, bbox_info, pose, shape, cam], dim=1)
            h = self.drop2(self.fc2(self.drop1(self.fc1(h))))
            pose = pose + self.decpose(h)
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)

        rotmat = rot6d_to_rotmat(pose.reshape(b, SMPL_NUM_JOINTS, 6))
        return CliffOutput(rotmat=rotmat, pose6d=pose, betas=shape, cam=cam)


def _initial_estimate(path: str | os.PathLike | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The regressor's starting (pose6d (144,), shape (10,), cam (3,)), float32."""
    if path is None:
        pose = rotmat_to_rot6d(torch.eye(3).expand(SMPL_NUM_JOINTS, 3, 3)).reshape(NPOSE)
        return pose, torch.zeros(SMPL_NUM_BETAS), torch.tensor(INIT_CAM)
    data = read_npz(path, "mean parameters file")
    if not {"pose", "shape", "cam"} <= data.keys():
        raise CliffError(f"mean parameters {path} must be an .npz with arrays pose, shape, cam")
    bad = [k for k in ("pose", "shape", "cam") if data[k].dtype.kind not in "iuf" or not np.isfinite(data[k]).all()]
    if bad:
        raise CliffError(f"mean parameters {path}: {', '.join(bad)} must hold finite real numbers")
    arrays = {k: torch.from_numpy(data[k].astype(np.float32)).reshape(-1) for k in ("pose", "shape", "cam")}
    pose = arrays["pose"]
    if pose.numel() == SMPL_NUM_JOINTS * 3:  # axis-angle
        pose = rotmat_to_rot6d(axis_angle_to_rotmat(pose.reshape(SMPL_NUM_JOINTS, 3))).reshape(NPOSE)
    sizes = (pose.numel(), arrays["shape"].numel(), arrays["cam"].numel())
    if sizes != (NPOSE, SMPL_NUM_BETAS, NCAM):
        raise CliffError(f"mean parameters {path} have sizes pose/shape/cam = {sizes}, expected (144 or 72, 10, 3)")
    return pose, arrays["shape"], arrays["cam"]


@dataclass
class LoadedCheckpoint:
    model: CLIFF
    backbone: str  # 'res50' | 'hr48'
    bbox_info: str  # 'official' | 'plain'
    mode: str = "cliff"  # 'hmr' for the paper's baseline, which is fed zeros instead of bbox_info


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix DataParallel adds to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _guess_backbone(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    keys = _strip_module_prefix(state_dict).keys()
    if any(k.startswith("encoder.stage4.") for k in keys):
        return "hr48"
    if any(k.startswith("encoder.layer4.") for k in keys):
        return "res50"
    return None


def detect_backbone(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'res50' or 'hr48', from the encoder keys of a CLIFF state_dict (`module.` prefix allowed)."""
    backbone = _guess_backbone(state_dict)
    if backbone is None:
        raise CliffError("cannot tell the backbone: no encoder.layer4 (res50) or encoder.stage4 (hr48) keys")
    return backbone


def _root_cause(e: BaseException) -> str:
    """First sentence of the innermost exception: torch wraps the useful part in a long preamble."""
    while e.__context__ is not None:
        e = e.__context__
    text = str(e).strip().split("\n")[0].split(". ")[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _describe(keys: list[str], what: str, limit: int = 3) -> str:
    shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
    return f"{len(keys)} {what} key{'s' if len(keys) != 1 else ''} ({shown})"


def state_dict_problem(state_dict: object) -> str | None:
    """What makes `state_dict` unusable whatever the model: not a mapping, entries that are not
    named tensors, or weights holding NaN or infinity (a diverged run's: every body would be NaN)."""
    if not isinstance(state_dict, Mapping):
        return f"a {type(state_dict).__name__}, not a state_dict"
    odd = [str(k) for k, v in state_dict.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if odd:
        return _describe(odd, "non-tensor")
    non_finite = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if non_finite:
        return _describe(non_finite, "NaN or infinite")
    return None


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Strict-load checks, reported as one readable CliffError line."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append(_describe(missing, "missing"))
    if unexpected:
        problems.append(_describe(unexpected, "unexpected"))
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if mismatched:
        problems.append(_describe(mismatched, "shape-mismatched (file vs model)"))
    if problems:
        raise CliffError(f"checkpoint {path} does not fit CLIFF-{model.backbone}: " + "; ".join(problems))


def load_checkpoint(
    path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Build CLIFF from an official or our checkpoint; the model comes back in eval mode.

    backbone: None detects it from the file; a given one must agree with the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # any unpickling failure means "not a safe torch checkpoint"
        raise CliffError(f"{path} is not a torch checkpoint loadable with weights_only=True ({_root_cause(e)})") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise CliffError(f"{path} is not a CLIFF checkpoint: expected a dict with a 'model' state_dict")

    problem = state_dict_problem(ckpt["model"])
    if problem:
        raise CliffError(f"checkpoint {path}: {problem}")
    state_dict = _strip_module_prefix(ckpt["model"])
    config = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else {}
    bbox_info = config.get("bbox_info", "official")
    if bbox_info not in BBOX_INFO_STYLES:
        raise CliffError(f"{path} has unknown bbox_info style {bbox_info!r}; expected one of {BBOX_INFO_STYLES}")

    # The keys are the ground truth; the config only helps when they are too damaged to tell.
    file_backbone = _guess_backbone(state_dict) or config.get("backbone")
    if backbone is None:
        if file_backbone is None:
            raise CliffError(f"cannot tell the backbone of {path}; pass backbone='res50' or 'hr48'")
        backbone = file_backbone
    elif file_backbone is not None and backbone != file_backbone:
        raise CliffError(f"{path} holds a {file_backbone} checkpoint, not {backbone}")

    crop_height = config.get("crop_height", CROP_HEIGHT)
    if not valid_crop_height(crop_height):
        raise CliffError(f"{path} has an invalid crop_height {crop_height!r}; expected a multiple of 4 from 4 to {MAX_CROP_HEIGHT}")
    model = CLIFF(backbone, crop_height=crop_height)
    check_state_dict(model, state_dict, path)
    model.load_state_dict(state_dict, strict=True)
    mode = ckpt.get("mode", "cliff")  # written by cliffhmr.train; official files are CLIFF
    return LoadedCheckpoint(model=model.to(device).eval(), backbone=backbone, bbox_info=bbox_info, mode=mode)


def save_checkpoint(path: str | os.PathLike, model: CLIFF, bbox_info: str, extra: dict | None = None) -> None:
    """Write `{'model': state_dict, 'config': {...}, **extra}` atomically (temp file, then rename).

    extra: further entries (e.g. epoch, metrics); they must be weights_only-loadable.
    """
    if bbox_info not in BBOX_INFO_STYLES:
        raise CliffError(f"unknown bbox_info style {bbox_info!r}; expected one of {BBOX_INFO_STYLES}")
    reserved = {"model", "config"} & set(extra or {})
    if reserved:
        raise CliffError(f"extra may not override {sorted(reserved)}")
    ckpt = {
        **(extra or {}),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": {"backbone": model.backbone, "bbox_info": bbox_info, "crop_height": model.crop_height},
    }
    # Through an open file: torch's own writer reports a full disk as an obscure RuntimeError.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(ckpt, fh)
