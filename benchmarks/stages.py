"""The README's stage table, before and after: `cliffhmr predict examples --profile` run by an
earlier commit and by this tree, alternating, in fresh processes (this machine is shared).

    .venv/bin/python benchmarks/stages.py --before 599604e --repeats 3

The earlier commit is checked out into a temporary git worktree and run with this tree's
environment (its own code first on the path). Milliseconds per stage and image, the median of
the repeats; each run writes its files to a temporary folder. Where files are written in a
second thread while the next image is predicted, stages overlap and each one's time includes
waiting for the other thread: the whole command's time is the fair comparison.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<image>\S+): ")
STAGE = re.compile(r"(?P<stage>[a-z][a-z ]*): (?P<ms>\d+) ms")


def profile(tree: Path, out: Path) -> tuple[dict[str, dict[str, float]], float]:
    """(image -> stage -> ms, the whole command's seconds) of one `predict examples --profile` run
    of the code in `tree`."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-m", "cliffhmr", "predict", str(ROOT / "examples"), "--out", str(out), "--profile"],
                         cwd=tree, env=env, capture_output=True, text=True)  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    times, image = {}, None
    for line in run.stdout.splitlines():
        head = LINE.match(line)
        if head and not line.startswith(" "):
            image = head["image"]
        elif image and line.startswith("  "):
            times[image] = {m["stage"]: float(m["ms"]) for m in STAGE.finditer(line)}
    return times, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="the earlier commit")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tmp / "before"), a.before], cwd=ROOT, check=True)
        try:
            runs, walls = {"before": [], "after": []}, {"before": [], "after": []}
            for i in range(a.repeats):
                for name, tree in (("before", tmp / "before"), ("after", ROOT)):
                    times, wall = profile(tree, tmp / f"out_{name}_{i}")
                    runs[name].append(times)
                    walls[name].append(wall)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")], cwd=ROOT, check=True)
    stages = [s for s in ("decode", "detection", "keypoints", "regressor", "fitting", "crop", "network", "body model", "render", "export")
              if any(s in t for r in runs.values() for run in r for t in run.values())]  # fmt: skip
    print(f"| image | {' | '.join(stages)} | total |")
    print(f"| --- | {' | '.join('---' for _ in stages)} | --- |")
    for image in runs["after"][0]:
        for name in ("before", "after"):
            med = {s: float(np.median([run[image].get(s, 0.0) for run in runs[name]])) for s in stages}
            cells = " | ".join(f"{med[s]:.0f}" if any(s in run[image] for run in runs[name]) else "-" for s in stages)
            print(f"| {image} ({name}) | {cells} | {sum(med.values()):.0f} |")
    print("\nThe whole command (loading the models included), seconds, median: "
          + ", ".join(f"{name} {np.median(w):.1f}" for name, w in walls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
