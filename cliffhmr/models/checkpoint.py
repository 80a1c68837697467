"""CLIFF checkpoint files: reading official and our own, writing ours, checking state_dicts.

Checkpoint files are a dict `{'model': state_dict}` (official; keys may carry the prefixes of a
wrapped model, see `strip_wrapper_prefixes`). Files written here add
`'config': {'backbone': 'res50' | 'hr48', 'bbox_info': 'official' | 'plain', 'crop_height': int}`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import CliffError
from ..geometry.camera import BBOX_INFO_STYLES
from ..perception.crop import CROP_HEIGHT, MAX_CROP_HEIGHT, valid_crop_height
from .cliff import CLIFF

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadedCheckpoint:
    model: CLIFF
    backbone: str  # 'res50' | 'hr48'
    bbox_info: str  # 'official' | 'plain'
    mode: str = "cliff"  # 'hmr' for the paper's baseline, which is fed zeros instead of bbox_info


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state_dict with the key prefixes of wrapped models removed: `module.` (DataParallel,
    DistributedDataParallel) and `_orig_mod.` (torch.compile), in any order and nesting."""

    def strip(key: str) -> str:
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        return key

    return {strip(k): v for k, v in state_dict.items()}


def _guess_backbone(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    keys = strip_wrapper_prefixes(state_dict).keys()
    if any(k.startswith("encoder.stage4.") for k in keys):
        return "hr48"
    if any(k.startswith("encoder.layer4.") for k in keys):
        return "res50"
    return None


def detect_backbone(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'res50' or 'hr48', from the encoder keys of a CLIFF state_dict (wrapper prefixes allowed)."""
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
    path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu", channels_last: bool = False
) -> LoadedCheckpoint:
    """Build CLIFF from an official or our checkpoint; the model comes back in eval mode.

    backbone: None detects it from the file; a given one must agree with the file.
    channels_last: convolution weights in the layout the engine runs fastest in on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"checkpoint not found: {path}")
    ckpt = _load_weights(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise CliffError(f"{path} is not a CLIFF checkpoint: expected a dict with a 'model' state_dict")

    problem = state_dict_problem(ckpt["model"])
    if problem:
        raise CliffError(f"checkpoint {path}: {problem}")
    state_dict = strip_wrapper_prefixes(ckpt["model"])
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
    # One copy of the weights: the network is built without memory (meta device) and takes the
    # loaded tensors as they are (HRNet-W48, loading and one crop: 835 -> 654 MiB peak,
    # benchmarks/checkpoint_memory.py).
    with torch.device("meta"):
        model = CLIFF(backbone, crop_height=crop_height)
    check_state_dict(model, state_dict, path)
    if channels_last:  # copied while re-laid, the rest with them: no tensor keeps the file's mapping alive
        state_dict = {k: v.clone(memory_format=torch.channels_last) if v.dim() == 4 else v.clone() for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    mode = ckpt.get("mode", "cliff")  # written by cliffhmr.train; official files are CLIFF
    return LoadedCheckpoint(model=model.to(device).eval(), backbone=backbone, bbox_info=bbox_info, mode=mode)


def _load_weights(path: Path) -> object:
    """torch.load with weights_only=True, memory-mapped where the file allows (torch's zip
    format): tensors are read from the page cache when used, not copied into a second buffer."""
    for mmap in (True, False):  # files in torch's legacy format cannot be memory-mapped
        try:
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
        except Exception as e:  # any unpickling failure means "not a safe torch checkpoint"
            error = e
    raise CliffError(f"{path} is not a torch checkpoint loadable with weights_only=True ({_root_cause(error)})") from None


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
