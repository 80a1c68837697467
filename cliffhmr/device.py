"""The torch device a user names (--device, train.device, PredictorConfig.device), checked once,
and how many CPU threads torch uses for a piece of work."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

from .errors import CliffError


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu; anything else must name a device this
    machine has. CliffError for a misspelt name or a GPU that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise CliffError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CliffError(f"device {name!r}: no CUDA GPU is visible to this torch build ({torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CliffError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (AVX-512 BF16 or AMX, as oneDNN sees it).
    Without it torch emulates bf16: ResNet-50 ran about 40x slower than in fp32 on an AVX2 EPYC."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe: say no rather than guess
        return False


@contextmanager
def single_threaded():
    """Run torch on one thread inside the block. The fit and the renderer work on small tensors:
    a second thread gains little on an idle 2-core machine and costs 5-20x when the cores are
    busy (measured: fit 1.0 s vs 6.0 s, render 0.22 s vs 4.9 s on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ThreadTuner:
    """torch's CPU thread count for a repeated piece of work, chosen by timing it as it runs.

    Which count is fastest depends on what else the machine is doing (measured on 2 cores: the
    network on 2 threads is 1.6x faster idle and up to 5x slower with the other core busy), so
    each candidate is timed on real calls, the fastest per unit of work is used, and the others
    are timed again every `every` calls. A call: `with tuner(work): ...` (work: e.g. people).
    """

    def __init__(self, candidates: tuple[int, ...] | None = None, every: int = 16):
        cores = os.cpu_count() or 1
        self.candidates = candidates or tuple(sorted({1, max(1, min(cores, torch.get_num_threads()))}))
        self.every = every
        self.rate: dict[int, float] = {}  # work per second, the latest timing of each count
        self.calls = 0

    def choose(self) -> int:
        untried = [n for n in self.candidates if n not in self.rate]
        if untried:  # the most threads first: what wins on a machine with nothing else to do
            return untried[-1]
        best = max(self.rate, key=self.rate.get)
        if self.calls % self.every == 0:  # look again at the others: the load may have changed
            others = [n for n in self.candidates if n != best]
            return others[(self.calls // self.every) % len(others)] if others else best
        return best

    @contextmanager
    def __call__(self, work: int = 1):
        threads = self.choose()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        start = time.perf_counter()
        try:
            yield threads
        finally:
            seconds = time.perf_counter() - start
            torch.set_num_threads(before)
            self.calls += 1
            self.rate[threads] = max(work, 1) / max(seconds, 1e-9)
