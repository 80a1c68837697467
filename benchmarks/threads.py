"""torch's thread count for the network, fixed or chosen as it runs (`device.ThreadTuner`, what the
engine uses), with the machine's other cores left alone and with all of them busy.

    .venv/bin/python benchmarks/threads.py --backbone res50 --batch 8 --calls 24

"busy" starts one process per core spinning in a loop (what other work on a shared machine
does to the network's threads), then runs the same calls. People/s, median of `--rounds`
rounds, each round running the three choices one after another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this tree's cliffhmr, also when another checkout is pip-installed
    sys.path.insert(0, str(ROOT))

from cliffhmr.device import ThreadTuner  # noqa: E402
from cliffhmr.models import CLIFF  # noqa: E402


def rate(model, crops, info, calls: int, threads) -> float:
    """people/s over `calls` network calls; threads: an int, or a ThreadTuner."""
    start = time.perf_counter()
    for _ in range(calls):
        if isinstance(threads, ThreadTuner):
            with threads(len(crops)), torch.no_grad():
                model(crops, info)
        else:
            torch.set_num_threads(threads)
            with torch.no_grad():
                model(crops, info)
    return calls * len(crops) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="res50")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--calls", type=int, default=24)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    cores = os.cpu_count() or 1
    torch.manual_seed(0)
    model = CLIFF(a.backbone).eval().to(memory_format=torch.channels_last)
    crops = torch.randn(a.batch, 3, 256, 192).contiguous(memory_format=torch.channels_last)
    info = torch.randn(a.batch, 3)
    rate(model, crops, info, 2, 1)  # warm-up
    print(f"| machine | 1 thread | {cores} threads | chosen as it runs (ThreadTuner) |\n| --- | --- | --- | --- |")
    for load in ("as it is", "all cores busy"):
        spinners = []
        if load == "all cores busy":
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
        try:
            got = {"1": [], "n": [], "tuned": []}
            tuner = ThreadTuner(candidates=tuple(sorted({1, cores})))
            for _ in range(a.rounds):
                got["1"].append(rate(model, crops, info, a.calls, 1))
                got["n"].append(rate(model, crops, info, a.calls, cores))
                got["tuned"].append(rate(model, crops, info, a.calls, tuner))
        finally:
            for s in spinners:
                s.kill()
        med = {k: float(np.median(v)) for k, v in got.items()}
        print(f"| {load} | {med['1']:.1f} | {med['n']:.1f} | {med['tuned']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
