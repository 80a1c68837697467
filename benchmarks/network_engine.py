"""The CLIFF network alone, torch against its `cliffhmr export`ed ONNX file in onnxruntime, on
the same random weights and crops, interleaved repeat by repeat (this machine is shared).

    .venv/bin/python benchmarks/network_engine.py --backbones res50,hr48 --batches 1,8

Reports people/s per engine (torch on 1 and on 2 threads, onnxruntime on the thread pool
cliffhmr gives it: 2 threads on 2 cores) and the largest output difference relative to the
output's scale. Needs the onnx extra for the export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this tree's cliffhmr, also when another checkout is pip-installed
    sys.path.insert(0, str(ROOT))

from cliffhmr.models import CLIFF, LoadedCheckpoint, export_onnx, load_network  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="res50,hr48")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    lines = ["| network | people per batch | torch, 1 thread | torch, 2 threads | onnxruntime, 2 threads | onnxruntime / torch, 2 threads each | max difference |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for backbone in a.backbones.split(","):
        torch.manual_seed(0)
        model = CLIFF(backbone).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            export_onnx(LoadedCheckpoint(model=model, backbone=backbone, bbox_info="official"), path)
            onnx = load_network(path).model
            for batch in map(int, a.batches.split(",")):
                crops, info = torch.randn(batch, 3, 256, 192), torch.randn(batch, 3)
                times = {"torch1": [], "torch2": [], "onnx": []}
                for _ in range(a.repeats + 1):  # the first round warms up
                    for name in times:
                        torch.set_num_threads(2 if name == "torch2" else 1)
                        t = time.perf_counter()
                        with torch.no_grad():
                            out = onnx(crops, info) if name == "onnx" else model(crops, info)
                        times[name].append(time.perf_counter() - t)
                        if name == "torch1":
                            ref = out
                diff = max(float((getattr(out, k) - getattr(ref, k)).abs().max() / max(1.0, float(getattr(ref, k).abs().max())))
                           for k in ("rotmat", "betas", "cam"))  # fmt: skip
                rate = {k: batch / float(np.median(v[1:])) for k, v in times.items()}
                lines.append(f"| {backbone} | {batch} | {rate['torch1']:.1f} | {rate['torch2']:.1f} | {rate['onnx']:.1f} | "
                             f"{rate['onnx'] / rate['torch2']:.2f}x | {diff:.1e} |")  # fmt: skip
                print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
