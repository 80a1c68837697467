"""Peak memory of loading a CLIFF checkpoint and running one crop, each way in a fresh process,
side by side: the plain way (torch.load, build the network, load_state_dict: two copies of the
weights at once) and `cliffhmr.models.load_checkpoint` (memory-mapped file, network built on
the meta device, tensors assigned: one copy). Random weights saved as the official release
saves them.

    .venv/bin/python benchmarks/checkpoint_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys
import torch
sys.path.insert(0, sys.argv[3])
from cliffhmr.models import CLIFF, load_checkpoint
if sys.argv[2] == "plain":
    state = torch.load(sys.argv[1], weights_only=True, map_location="cpu")["model"]
    model = CLIFF(sys.argv[4]).eval()
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    del state
else:
    model = load_checkpoint(sys.argv[1]).model
with torch.no_grad():
    model(torch.zeros(1, 3, 256, 192), torch.zeros(1, 3))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> int:
    import torch

    sys.path.insert(0, str(ROOT))
    from cliffhmr.models import CLIFF

    print("| network | plain load (MiB) | load_checkpoint (MiB) |\n| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in ("res50", "hr48"):
            path = Path(tmp) / f"{backbone}.pt"
            torch.manual_seed(0)
            torch.save({"model": {"module." + k: v for k, v in CLIFF(backbone).state_dict().items()}}, path)
            peaks = [float(subprocess.run([sys.executable, "-c", CHILD, str(path), way, str(ROOT), backbone], check=True,
                                          capture_output=True, text=True).stdout)  # fmt: skip
                     for way in ("plain", "ours")]
            print(f"| {backbone} | {peaks[0]:.0f} | {peaks[1]:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
