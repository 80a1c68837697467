"""`cliffhmr train --config CONFIG.yaml [key=value ...]`: the training engine.

One process per device, launched directly (one device) or with `torchrun` (DDP; gloo on CPU,
nccl on GPUs; multi-node with torchrun's usual rendezvous flags). Each process draws its own
slice of one deterministic sample stream (`data.MixSampler`), so a run is a pure function of
its config and seed: resuming from a checkpoint continues the exact same loss curve.

Files in `train.out_dir`: `config.yaml` (resolved), `log.jsonl` (one line per step),
`last.pt` (everything needed to resume, written every `checkpoint_every` steps and on SIGTERM),
`final.pt` (weights only), `tb/` (TensorBoard, when it is installed). Every checkpoint is in the
official layout `{'model': state_dict, 'config': {...}, ...}` and written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

from ..arguments import ArgumentParser
from ..atomic import check_output_dir, write_errors, write_text_atomic
from ..body import load_joint_regressor, load_smpl
from ..data.augment import AugmentConfig
from ..data.datasets import DatasetSpec, MixedDataset, MixSampler, NpzDataset
from ..device import resolve_device
from ..errors import CliffError
from ..geometry.camera import BBOX_INFO_STYLES
from ..jsonio import read_text_file
from ..models import CLIFF, load_checkpoint, save_checkpoint
from ..models.checkpoint import check_state_dict, state_dict_problem, strip_wrapper_prefixes
from ..perception.crop import MAX_CROP_HEIGHT, valid_crop_height
from .losses import LossConfig, compute_losses

EXIT_PREEMPTED = 143  # 128 + SIGTERM: stopped early, with a checkpoint to resume from

# --------------------------------------------------------------------------- configuration


@dataclass
class DataConfig:
    datasets: list[DatasetSpec] = field(default_factory=list)
    batch_size: int = 64  # per process
    num_workers: int = 4
    check_images: bool = True  # look for every image before training starts
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    backbone: str = "res50"  # "res50" | "hr48"
    bbox_info: str = "official"  # "official" | "plain"; the hmr loss mode feeds zeros instead
    pretrained_backbone: str | None = None  # ImageNet weights of the encoder (a state_dict file)
    init_checkpoint: str | None = None  # start from a CLIFF checkpoint instead
    mean_params: str | None = None  # SPIN's smpl_mean_params.npz: the regressor's starting point
    n_iter: int = 3
    crop_height: int = 256  # network input height (width 3/4 of it); the official models use 256


@dataclass
class BodyConfig:
    smpl: str = ""  # SMPL model file (.pkl / .npz); the network predicts SMPL parameters
    joint_regressor_extra: str | None = None  # SPIN's J_regressor_extra.npy (9, 6890); see data.joints.body_to_j24


@dataclass
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.0
    schedule: str = "constant"  # "constant" | "cosine"
    warmup_steps: int = 0
    grad_clip: float = 5.0  # max global gradient norm; 0 disables


@dataclass
class RunConfig:
    out_dir: str = "runs/cliff"
    steps: int = 100_000
    seed: int = 0
    log_every: int = 20  # TensorBoard / progress bar refresh; log.jsonl gets every step
    checkpoint_every: int = 1000
    precision: str = "auto"  # "auto" (bf16 on GPUs that support it) | "bf16" | "fp32"
    resume: str = "auto"  # "auto" (from out_dir/last.pt if present) | "never" | a checkpoint path
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    tensorboard: bool = True
    progress: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    body: BodyConfig = field(default_factory=BodyConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        if not self.data.datasets:
            raise CliffError("config: data.datasets is empty")
        if not self.body.smpl:
            raise CliffError("config: body.smpl must name an SMPL model file (the network predicts SMPL parameters)")
        checks = [
            (self.model.backbone in ("res50", "hr48"), f"model.backbone must be res50 or hr48, got {self.model.backbone!r}"),
            (self.model.bbox_info in BBOX_INFO_STYLES, f"model.bbox_info must be one of {BBOX_INFO_STYLES}"),
            (self.optim.schedule in ("constant", "cosine"), f"optim.schedule must be constant or cosine, got {self.optim.schedule!r}"),
            (self.train.precision in ("auto", "bf16", "fp32"), f"train.precision must be auto, bf16 or fp32, got {self.train.precision!r}"),
            (valid_crop_height(self.model.crop_height), f"model.crop_height must be a multiple of 4 from 4 to {MAX_CROP_HEIGHT}"),
            (self.model.n_iter >= 1, "model.n_iter must be >= 1"),
            (self.data.batch_size >= 1, "data.batch_size must be >= 1"),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (self.optim.lr > 0, f"optim.lr must be > 0, got {self.optim.lr:g}"),
            (self.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
            (self.optim.warmup_steps >= 0, "optim.warmup_steps must be >= 0"),
            (self.optim.grad_clip >= 0, "optim.grad_clip must be >= 0 (0 disables clipping)"),
            (self.train.steps >= 1, "train.steps must be >= 1"),
            (self.train.log_every >= 1, "train.log_every must be >= 1"),
            (self.train.checkpoint_every >= 1, "train.checkpoint_every must be >= 1"),
        ]
        checks += [(s.ratio >= 0, f"data.datasets[{i}].ratio must be >= 0") for i, s in enumerate(self.data.datasets)]
        loss = dataclasses.asdict(self.loss)
        checks += [(v >= 0, f"loss.{k} must be >= 0") for k, v in loss.items() if k != "mode"]
        checks += [(loss[k] > 0, f"loss.{k} must be > 0") for k in ("hmr_focal", "hmr_crop")]
        aug = dataclasses.asdict(self.data.augment)
        checks += [(v >= 0, f"data.augment.{k} must be >= 0") for k, v in aug.items()]
        checks += [(aug[k] <= 1, f"data.augment.{k} must be <= 1") for k in aug if k.endswith("_prob")]
        checks.append((aug["scale_factor"] < 1, "data.augment.scale_factor must be < 1 (a box would shrink to nothing)"))
        for ok, message in checks:
            if not ok:
                raise CliffError(f"config: {message}")


def _build(cls, data, where: str):
    """A (nested) dataclass from plain YAML data, rejecting unknown keys and wrong types."""
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise CliffError(f"config: {where or 'top level'} must be a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CliffError(f"config: unknown key {where + '.' if where else ''}{unknown[0]} (known: {', '.join(sorted(names))})")
        return cls(**{k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()})
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        return _build(next(a for a in args if a is not type(None)), data, where)
    if origin is list:
        if not isinstance(data, list):
            raise CliffError(f"config: {where} must be a list")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
    if cls is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if cls is float and isinstance(data, str):  # YAML 1.1 reads 1e-4 (no dot) as text
        try:
            data = float(data)
        except ValueError:
            pass
    if not isinstance(data, cls) or (cls is int and isinstance(data, bool)):
        raise CliffError(f"config: {where} must be {cls.__name__}, got {data!r}")
    if cls is float and not math.isfinite(data):  # YAML's .nan and .inf: no setting means them
        raise CliffError(f"config: {where} must be a finite number, got {data!r}")
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """YAML file (sections data/model/body/loss/optim/train) + `a.b.c=value` overrides (values in YAML syntax)."""
    raw: dict = {}
    if path is not None:
        text = read_text_file(path, "config file")
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise CliffError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        except RecursionError:
            raise CliffError(f"{path}: nested too deeply to be a config") from None
        if not isinstance(raw, dict):
            raise CliffError(f"{path}: a config is a mapping of sections (data, model, ...), got {type(raw).__name__}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliffError(f"override {item!r} is not key=value (e.g. train.steps=1000)")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CliffError(f"override {item!r}: {p} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CliffError(f"override {item!r}: value is not valid YAML") from None
    cfg = _build(Config, raw, "")
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistInfo:
    """Join the torchrun group if launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise CliffError("train.device is cuda but no GPU is visible")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = resolve_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, dev)


def _all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(t)
    return t


def _gather(obj, info: DistInfo) -> list:
    if info.world == 1:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------- engine


@dataclass
class TrainResult:
    model: CLIFF
    step: int
    preempted: bool


class _Preemption:
    """SIGTERM sets a flag; the loop checkpoints and stops at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def _ignore_sigterm(_worker_id: int) -> None:
    # Schedulers signal the whole process group: the main process decides when to stop, and must not
    # find its loader workers dead while it finishes the step and writes the checkpoint.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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


def _lr_lambda(cfg: OptimConfig, total: int):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        return 1.0

    return factor


def _autocast(cfg: RunConfig, device: torch.device):
    use = cfg.precision == "bf16" or (
        cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


def _batch_ids(batch: dict, names: list[str]) -> str:
    pairs = zip(batch["dataset"].tolist(), batch["index"].tolist())
    return ", ".join(f"{names[d]}[{i}]" for d, i in pairs)


def _non_finite_report(step: int, loss, parts: dict, batch: dict, names: list[str], last: Path, info: DistInfo) -> str:
    if torch.isfinite(loss):  # this rank is fine: a peer's batch went bad, and that peer reports it
        where = f"on another rank (this is rank {info.rank})"
    else:
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
        where = f"({terms}); batch: {_batch_ids(batch, names)}"
    kept = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint written"
    return f"non-finite loss at step {step} {where}; stopped before the update, {kept}"


def _next_batch(it) -> dict:
    """next(it), with loader errors made safe to propagate.

    A worker's error comes back with the worker's whole traceback in its message: a CliffError
    keeps its one message line. And the exception must not hold the frames that hold the
    iterator: the workers ignore SIGTERM, so only the iterator's shutdown (when `train` drops it)
    stops them, and a live iterator at interpreter exit would block it.
    """
    try:
        return next(it)
    except CliffError as e:
        error = CliffError(str(e).strip().splitlines()[-1].split("CliffError: ", 1)[-1])
    except Exception as e:  # a bug in a worker: keep its type and message (which holds the worker's traceback)
        error = e.with_traceback(None)
        error.__context__ = None
    del it
    raise error


def train(cfg: Config) -> TrainResult:
    """Run (or resume) one training run; every process of a torchrun launch calls this."""
    info = setup_distributed(cfg.train.device)
    run = cfg.train
    out = check_output_dir(run.out_dir) if info.main else Path(run.out_dir)  # before any work: a file in the way, read-only
    torch.manual_seed(run.seed * 1000 + info.rank)

    model = build_model(cfg.model, info.device)
    body = load_smpl(cfg.body.smpl, info.device)
    # SPIN's J_regressor_extra: the exact J24 joints (see data.joints.body_to_j24)
    extra = cfg.body.joint_regressor_extra
    extra = load_joint_regressor(extra, body, rows=9).to(info.device) if extra else None
    ddp = (
        torch.nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
        if info.world > 1
        else model
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.optim, run.steps))

    step = 0
    if run.resume == "auto":
        resume = out / "last.pt" if (out / "last.pt").is_file() else None
    else:
        resume = None if run.resume == "never" else Path(run.resume)
    if resume is not None:
        step = _restore(resume, model, optimizer, scheduler, info)

    datasets = [
        NpzDataset(s, cfg.data.augment, check_images=cfg.data.check_images, crop_height=model.crop_height)
        for s in cfg.data.datasets
    ]
    names = [s.name or Path(s.npz).stem for s in cfg.data.datasets]
    sampler = MixSampler(
        [len(d) for d in datasets], [s.ratio for s in cfg.data.datasets], run.seed, info.rank, info.world,
        start=step * cfg.data.batch_size * info.world,
    )
    loader = DataLoader(
        MixedDataset(datasets), batch_size=cfg.data.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
        pin_memory=info.device.type == "cuda", worker_init_fn=_ignore_sigterm, drop_last=True,
        generator=torch.Generator().manual_seed(run.seed),  # keeps the loader off the global RNG (dropout's)
    )
    if info.main:
        write_text_atomic(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        _truncate_log(out / "log.jsonl", step)
    writer = _tensorboard(out / "tb") if (info.main and run.tensorboard) else None
    bar = _progress(run, step, info)
    preempt = _Preemption()
    it = iter(loader)
    try:
        while step < run.steps:
            batch = _next_batch(it)
            batch = {k: v.to(info.device, non_blocking=True) for k, v in batch.items()}
            with _autocast(run, info.device):
                pred = ddp(batch["img"], _bbox_info(batch, cfg), n_iter=cfg.model.n_iter)
            loss, parts = compute_losses(pred, body, batch, cfg.loss, extra)

            # One all-reduce carries the mean loss and whether any rank went non-finite, so all stop together.
            stats = _all_reduce_sum(torch.stack([loss.detach(), (~torch.isfinite(loss)).float()]), info)
            if stats[1] > 0:
                raise CliffError(_non_finite_report(step + 1, loss, parts, batch, names, out / "last.pt", info))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
            if not torch.isfinite(norm):
                raise CliffError(f"non-finite gradient at step {step + 1}; batch: {_batch_ids(batch, names)}")
            optimizer.step()
            scheduler.step()
            step += 1

            mean_loss = stats[0].item() / info.world
            if info.main:
                _log(out, step, mean_loss, parts, scheduler.get_last_lr()[0], float(norm), writer, run)
            if bar is not None:
                bar.update(1)
                if step % run.log_every == 0 or step == run.steps:
                    bar.set_postfix(loss=f"{mean_loss:.4g}")

            stop = _all_reduce_sum(torch.tensor([float(preempt.requested)], device=info.device), info).item() > 0
            if stop or step % run.checkpoint_every == 0 or step == run.steps:
                _save(out / "last.pt", model, optimizer, scheduler, step, cfg, info)
            if stop:
                if info.main:
                    print(f"cliffhmr train: SIGTERM: stopped at step {step}, checkpoint {out / 'last.pt'}; run again to resume",
                          file=sys.stderr)
                return TrainResult(model, step, preempted=True)
        _sync_buffers(model, info)
        if info.main:
            save_checkpoint(out / "final.pt", model, cfg.model.bbox_info, extra={"mode": cfg.loss.mode, "step": step})
        return TrainResult(model, step, preempted=False)
    finally:
        preempt.restore()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        workers = list(getattr(it, "_workers", ()))  # the loader's processes (torch's own attribute)
        del it  # the iterator's shutdown asks them to stop and joins them for a while
        for w in workers:
            # They ignore SIGTERM (preemption is this process's to handle), so one stuck on a full
            # pipe after an error outlives the shutdown's terminate() and this process could never exit.
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
                w.join()


def _bbox_info(batch: dict, cfg: Config) -> torch.Tensor:
    """CLIFF's (B, 3) box descriptor; zeros for the HMR baseline, which must not see where the box is."""
    from ..geometry.camera import bbox_info

    if cfg.loss.mode == "hmr":
        return torch.zeros(batch["b"].shape[0], 3, device=batch["b"].device)
    return bbox_info(batch["center"], batch["b"], batch["focal"], batch["principal"], style=cfg.model.bbox_info)


def _sync_buffers(model: CLIFF, info: DistInfo) -> None:
    """BatchNorm statistics drift per rank after DDP's last broadcast; make every rank hold rank 0's."""
    if info.world > 1:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


def _save(path: Path, model, optimizer, scheduler, step: int, cfg: Config, info: DistInfo) -> None:
    rng = {"cpu": torch.get_rng_state()}
    if info.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(info.device)
    rngs = _gather(rng, info)
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
    if info.world > 1:
        dist.barrier()


def _restore(path: Path, model, optimizer, scheduler, info: DistInfo) -> int:
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
    problem = _training_state_problem(ckpt, optimizer, scheduler)
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


def _training_state_problem(ckpt: dict, optimizer: torch.optim.Optimizer, scheduler) -> str | None:
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


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the resumed step (they were computed after the checkpoint and are recomputed),
    and a last line cut off by a run killed while appending it."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            if json.loads(line)["step"] > step:
                break  # the lines are in step order
        except (ValueError, TypeError, KeyError):
            if number == len(lines):
                break  # cut off by a kill while it was appended
            raise CliffError(f"{path}: line {number} is not a log record; move the file away to start a new log") from None
        kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def _log(out: Path, step: int, loss: float, parts: dict, lr: float, grad_norm: float, writer, run: RunConfig) -> None:
    record = {"step": step, "loss": loss, **{k: v.item() for k, v in parts.items()}, "lr": lr, "grad_norm": grad_norm,
              "time": time.time()}
    with write_errors(out / "log.jsonl"), open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None and (step % run.log_every == 0 or step == run.steps):
        for k, v in record.items():
            if k not in ("step", "time"):
                writer.add_scalar(f"train/{k}", v, step)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(path))


def _progress(run: RunConfig, step: int, info: DistInfo):
    if not (info.main and run.progress):
        return None
    from tqdm import tqdm

    return tqdm(total=run.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)


def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="cliffhmr train", description="Train CLIFF (or the HMR baseline) from a YAML config; see docs/training.md."
    )
    parser.add_argument("--config", required=True, help="YAML file with sections data, model, body, loss, optim, train")
    parser.add_argument("overrides", nargs="*", help="key=value overrides in YAML syntax, e.g. train.steps=1000")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    try:
        result = train(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return EXIT_PREEMPTED if result.preempted else 0
