"""The training configuration: YAML sections data, model, body, loss, optim, train, plus
`a.b.c=value` overrides, read into typed dataclasses and checked before any work."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data.augment import AugmentConfig
from ..data.datasets import DatasetSpec
from ..errors import CliffError
from ..geometry.camera import BBOX_INFO_STYLES
from ..jsonio import read_text_file
from ..perception.crop import MAX_CROP_HEIGHT, valid_crop_height
from .losses import LossConfig


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
