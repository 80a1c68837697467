"""What a training run writes to resume from and reads back: `last.pt` with the model in the
official layout plus optimizer, scheduler, step and random state, each checked before use (torch
accepts most damage silently and fails steps later); and the weights a run starts from."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import torch

from ..errors import CliffError
from ..models import CLIFF, load_checkpoint, save_checkpoint
from ..models.checkpoint import check_state_dict, state_dict_problem, strip_wrapper_prefixes
from .config import Config, ModelConfig
from .distributed import DistInfo, barrier, gather


def build_model(cfg: ModelConfig, device: torch.device) -> CLIFF:
    if cfg.init_checkpoint:
        model = load_checkpoint(cfg.init_checkpoint, backbone=cfg.backbone).model
        model.crop_height = cfg.crop_height  # the weights don't depend on it
    else:
        model = CLIFF(cfg.backbone, mean_params=cfg.mean_params, crop_height=cfg.crop_height)
        if cfg.pretrained_backbone:
            load_pretrained_backbone(model, cfg.pretrained_backbone)
    return model.to(device).train()


def load_pretrained_backbone(model: CLIFF, path: str) -> None:
    """ImageNet weights (a torchvision-style state_dict, optionally under 'state_dict'/'model') -> model.encoder.

    Classifier weights and other extra keys are skipped; the encoder's own keys must all be found.
    """
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CliffError(f"pretrained backbone not found: {path}") from None
    except Exception as e:  # unpickling errors of many kinds: "not a safe state_dict"
        raise CliffError(f"{path}: not a state_dict loadable with weights_only=True ({type(e).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    problem = state_dict_problem(sd)
    if problem:
        raise CliffError(f"{path}: not a usable backbone state_dict: {problem}")
    sd = {k.removeprefix("encoder."): v for k, v in strip_wrapper_prefixes(sd).items()}
    own = model.encoder.state_dict()
    missing = [k for k in own if k not in sd or sd[k].shape != own[k].shape]
    if missing:
        raise CliffError(
            f"{path}: does not fit the {model.backbone} encoder: {len(missing)} of {len(own)} tensors missing or "
            f"of another shape (first: {missing[0]})"
        )
    model.encoder.load_state_dict({k: sd[k] for k in own})


def save_training_state(path: Path, model, optimizer, scheduler, step: int, cfg: Config, info: DistInfo) -> None:
    """Rank 0 writes `path` with every rank's random state; all ranks return once it is written."""
    rng = {"cpu": torch.get_rng_state()}
    if info.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(info.device)
    rngs = gather(rng, info)
    if info.main:
        extra = {
            "mode": cfg.loss.mode,
            "step": step,
            "world_size": info.world,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rngs,
            "train_config": dataclasses.asdict(cfg),
        }
        save_checkpoint(path, model, cfg.model.bbox_info, extra=extra)
    barrier(info)


def restore_training_state(path: Path, model, optimizer, scheduler, info: DistInfo) -> int:
    """Load a `last.pt`; returns the step to continue from."""
    if not path.is_file():
        raise CliffError(f"resume checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file
        raise CliffError(f"{path}: cannot load for resuming ({type(e).__name__})") from None
    needed = {"model", "optimizer", "scheduler", "step", "rng"}
    if not isinstance(ckpt, dict) or not needed <= set(ckpt):
        raise CliffError(f"{path}: not a training checkpoint (needs {', '.join(sorted(needed))}); use model.init_checkpoint for weights only")
    problem = state_dict_problem(ckpt["model"])
    if problem:
        raise CliffError(f"{path}: cannot resume from it: {problem}")
    check_state_dict(model, ckpt["model"], path)  # e.g. another backbone: one line, not torch's key listing
    model.load_state_dict(ckpt["model"])
    problem = training_state_problem(ckpt, optimizer, scheduler)
    if problem:
        raise CliffError(f"{path}: cannot resume from it: {problem}")
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rngs = ckpt["rng"]
    if len(rngs) == info.world:
        torch.set_rng_state(rngs[info.rank]["cpu"])
        if info.device.type == "cuda" and "cuda" in rngs[info.rank]:
            torch.cuda.set_rng_state(rngs[info.rank]["cuda"], info.device)
    elif info.main:
        print(f"cliffhmr train: resuming on {info.world} processes from a {len(rngs)}-process run: "
              "data order is kept, dropout noise is not", file=sys.stderr)
    if info.main:
        print(f"cliffhmr train: resumed from {path} at step {ckpt['step']}", file=sys.stderr)
    return int(ckpt["step"])


def training_state_problem(ckpt: dict, optimizer: torch.optim.Optimizer, scheduler) -> str | None:
    """Why the optimizer, scheduler or RNG state of a checkpoint cannot continue this run, or None.
    torch accepts most damage silently and fails steps later (a moment estimate of the wrong shape
    at the first update, a string learning rate in the scheduler), so it is checked here."""
    saved, own = ckpt["optimizer"], optimizer.state_dict()
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(saved.get("param_groups"), list):
        return "damaged optimizer state (needs 'state' and 'param_groups')"
    groups = [g.get("params") if isinstance(g, dict) else None for g in saved["param_groups"]]
    if groups != [g["params"] for g in own["param_groups"]]:
        return "its optimizer state is for other parameters"
    if not all(type(g.get("lr")) is float and 0 <= g["lr"] < math.inf for g in saved["param_groups"]):
        return "its optimizer's learning rate is not a finite number"
    shapes = {i: p.shape for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    for index, state in saved["state"].items():
        if index not in shapes or not isinstance(state, dict):
            return f"damaged optimizer state for parameter {index!r}"
        for name, value in state.items():
            if not isinstance(value, torch.Tensor) or not torch.isfinite(value).all():
                return f"optimizer state {name!r} of parameter {index} is not a finite tensor"
            if value.ndim and value.shape != shapes[index]:
                return f"optimizer state {name!r} of parameter {index} has shape {tuple(value.shape)}, not {tuple(shapes[index])}"
    sched, own_sched = ckpt["scheduler"], scheduler.state_dict()
    if (not isinstance(sched, dict) or any(type(sched.get(k)) is not type(v) for k, v in own_sched.items())
            or not all(isinstance(lr, float) and math.isfinite(lr) for lr in sched["base_lrs"])):  # fmt: skip
        return "damaged learning-rate scheduler state"
    if type(ckpt["step"]) is not int or ckpt["step"] < 0:
        return f"its step is {ckpt['step']!r}, not a count"
    rngs = ckpt["rng"]
    if not isinstance(rngs, list) or any(not isinstance(r, dict) or not isinstance(r.get("cpu"), torch.Tensor)
                                         or r["cpu"].dtype != torch.uint8 for r in rngs):  # fmt: skip
        return "damaged random-number state"
    return None
