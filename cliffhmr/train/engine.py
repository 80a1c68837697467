"""`cliffhmr train --config CONFIG.yaml [key=value ...]`: the training engine.

One process per device, launched directly (one device) or with `torchrun` (DDP; gloo on CPU,
nccl on GPUs; multi-node with torchrun's usual rendezvous flags). Each process draws its own
slice of one deterministic sample stream (`data.datasets.MixSampler`), so a run is a pure function of
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
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

from ..arguments import ArgumentParser
from ..atomic import check_output_dir, write_errors, write_text_atomic
from ..body import load_joint_regressor, load_smpl
from ..data.datasets import MixedDataset, MixSampler, NpzDataset
from ..errors import CliffError
from ..geometry.camera import bbox_info
from ..models import CLIFF, save_checkpoint
from .checkpoint import build_model, restore_training_state, save_training_state
from .config import Config, OptimConfig, RunConfig, load_config
from .distributed import DistInfo, all_reduce_sum, setup_distributed, sync_buffers
from .losses import compute_losses

EXIT_PREEMPTED = 143  # 128 + SIGTERM: stopped early, with a checkpoint to resume from


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
        step = restore_training_state(resume, model, optimizer, scheduler, info)

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
            stats = all_reduce_sum(torch.stack([loss.detach(), (~torch.isfinite(loss)).float()]), info)
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

            stop = all_reduce_sum(torch.tensor([float(preempt.requested)], device=info.device), info).item() > 0
            if stop or step % run.checkpoint_every == 0 or step == run.steps:
                save_training_state(out / "last.pt", model, optimizer, scheduler, step, cfg, info)
            if stop:
                if info.main:
                    print(f"cliffhmr train: SIGTERM: stopped at step {step}, checkpoint {out / 'last.pt'}; run again to resume",
                          file=sys.stderr)
                return TrainResult(model, step, preempted=True)
        sync_buffers(model, info)
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
    if cfg.loss.mode == "hmr":
        return torch.zeros(batch["b"].shape[0], 3, device=batch["b"].device)
    return bbox_info(batch["center"], batch["b"], batch["focal"], batch["principal"], style=cfg.model.bbox_info)


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
