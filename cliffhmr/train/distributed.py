"""One training process per device: joining torchrun's group (DDP; gloo on CPU, nccl on GPUs)
and the few collective operations the engine needs, which are no-ops for a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import CliffError


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


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(t)
    return t


def gather(obj, info: DistInfo) -> list:
    if info.world == 1:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """BatchNorm statistics drift per rank after DDP's last broadcast; make every rank hold rank 0's."""
    if info.world > 1:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if info.world > 1:
        dist.barrier()
