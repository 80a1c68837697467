"""The CLIFF network alone, in each way the engine can run it, on the same random weights and
crops, interleaved repeat by repeat (this machine is shared).

    .venv/bin/python benchmarks/network_engine.py --backbones res50,hr48 --batches 1,8

Columns, people/s: torch as loaded before the engine (NCHW, fp32, the default 2 threads), torch in
the engine's layout (channels-last, fp32), channels-last with bf16 autocast (opt-in:
--precision bf16), and the `cliffhmr export`ed file in onnxruntime; then the largest output
difference of channels-last and of bf16 from plain torch, relative to each output's scale
(rotation matrices: absolute). Needs the onnx extra for the export.
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


def difference(out, ref) -> float:
    """Largest difference over the outputs, relative to each one's scale (rotation matrices: absolute)."""
    worst = 0.0
    for k in ("rotmat", "betas", "cam"):
        a, b = getattr(out, k).float(), getattr(ref, k)
        scale = 1.0 if k == "rotmat" else max(1.0, float(b.abs().max()))
        worst = max(worst, float((a - b).abs().max()) / scale)
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="res50,hr48")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    lines = ["| network | people per batch | torch NCHW | torch channels-last | channels-last bf16 | onnxruntime | "
             "channels-last vs NCHW | difference: channels-last | difference: bf16 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for backbone in a.backbones.split(","):
        torch.manual_seed(0)
        model = CLIFF(backbone).eval()
        fast = CLIFF(backbone).eval()
        fast.load_state_dict(model.state_dict())
        fast = fast.to(memory_format=torch.channels_last)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            export_onnx(LoadedCheckpoint(model=model, backbone=backbone, bbox_info="official"), path)
            onnx = load_network(path).model
            for batch in map(int, a.batches.split(",")):
                crops, info = torch.randn(batch, 3, 256, 192), torch.randn(batch, 3)
                last = crops.contiguous(memory_format=torch.channels_last)

                def bf16():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return fast(last, info)

                runs = {"nchw": lambda: model(crops, info), "last": lambda: fast(last, info), "bf16": bf16, "onnx": lambda: onnx(crops, info)}
                times, outs = {k: [] for k in runs}, {}
                for _ in range(a.repeats + 1):  # the first round warms up
                    for name, run in runs.items():
                        t = time.perf_counter()
                        with torch.no_grad():
                            outs[name] = run()
                        times[name].append(time.perf_counter() - t)
                rate = {k: batch / float(np.median(v[1:])) for k, v in times.items()}
                lines.append(f"| {backbone} | {batch} | {rate['nchw']:.1f} | {rate['last']:.1f} | {rate['bf16']:.1f} | {rate['onnx']:.1f} | "
                             f"{rate['last'] / rate['nchw']:.2f}x | {difference(outs['last'], outs['nchw']):.1e} | "
                             f"{difference(outs['bf16'], outs['nchw']):.1e} |")  # fmt: skip
                print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
