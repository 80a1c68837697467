"""The paper's ablation on synthetic data: CLIFF (bbox_info + full-frame 2D loss) vs the HMR baseline.

Renders people anywhere in wide-angle frames, trains both models with the same recipe, seed and
data, and evaluates both on held-out images, with the error broken down by how far the person is
off the optical axis. Expected, as in the paper: CLIFF's root-orientation error and MPJPE are
lower, and the gap grows for off-centre people.

    python benchmarks/train_synthetic.py                 # GPU if present, else CPU settings (~1 h on 2 cores)
    python benchmarks/train_synthetic.py --modes cliff   # one model (after --generate-only: run --modes hmr
                                                         # beside it, then both modes to evaluate and compare)
    python benchmarks/train_synthetic.py --generate-only --out runs/synthetic --train 400 --test 100
                                                         # the data configs/synthetic_tiny.yaml reads

Without --smpl the generator's toy body (boxes on SMPL's skeleton) stands in for SMPL.
Writes OUT/data (images, train.npz, test.npz, toy_smpl.npz, mean_params.npz), OUT/<mode>/ (runs), OUT/benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cliffhmr.atomic import write_text_atomic
from cliffhmr.evaluation.evaluate import OFF_CENTER_BINS, EvalSettings, evaluate
from cliffhmr.evaluation.metrics import paired_difference
from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic, write_upright_mean_params
from cliffhmr.synthetic.toy_smpl import write_toy_smpl
from cliffhmr.train.config import load_config
from cliffhmr.train.engine import train

GPU = torch.cuda.is_available()
METRICS = (("mpjpe", "MPJPE"), ("pa_mpjpe", "PA-MPJPE"), ("pve", "PVE"), ("root_orient_deg", "root orient. (deg)"))


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/synthetic", help="output folder")
    p.add_argument("--smpl", help="an SMPL model file; default: the toy body")
    p.add_argument("--train", type=int, default=20000 if GPU else 5000, help="training images")
    p.add_argument("--test", type=int, default=1000 if GPU else 500, help="held-out images")
    p.add_argument("--max-yaw", type=float, default=180.0 if GPU else 45.0,
                   help="people's heading range (deg) around the camera's axis; narrower is easier to learn from scratch")
    p.add_argument("--heading-from", default="ray", choices=["ray", "axis"],
                   help="headings measured from the line of sight (people facing the photographer look alike "
                        "anywhere in the frame, as in the paper's figure 2) or from the optical axis")
    p.add_argument("--width", type=int, default=640 if GPU else 320)
    p.add_argument("--height", type=int, default=480 if GPU else 240)
    p.add_argument("--steps", type=int, default=20000 if GPU else 1000)
    p.add_argument("--batch-size", type=int, default=64 if GPU else 32)
    p.add_argument("--lr", type=float, default=1e-4 if GPU else 2e-4)
    p.add_argument("--backbone", default="res50", choices=["res50", "hr48"])
    p.add_argument("--crop-height", type=int, default=256 if GPU else 64,
                   help="network input height (width 3/4 of it); the official models use 256")
    p.add_argument("--workers", type=int, default=8 if GPU else 0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", nargs="+", default=["cliff", "hmr"], choices=["cliff", "hmr"])
    p.add_argument("--generate-only", action="store_true")
    return p.parse_args(argv)


def make_data(args) -> tuple[Path, Path]:
    data = Path(args.out) / "data"
    smpl = Path(args.smpl) if args.smpl else data / "toy_smpl.npz"
    if not args.smpl and not smpl.exists():
        write_toy_smpl(smpl)
    if not (data / "mean_params.npz").exists():
        write_upright_mean_params(data / "mean_params.npz")
    cfg = SyntheticConfig(train=args.train, test=args.test, width=args.width, height=args.height,
                          max_yaw_deg=args.max_yaw, heading_from=args.heading_from, seed=args.seed)
    wanted = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
    stamp = data / "synthetic_config.json"
    if (data / "train.npz").exists() and (data / "test.npz").exists() and stamp.exists():
        if stamp.read_text() != wanted:  # a run on other data than asked for would compare the wrong thing
            raise SystemExit(f"{data} holds data made with other settings ({stamp.read_text()}); use another --out")
        return data, smpl
    print(f"rendering {args.train} + {args.test} images -> {data}", file=sys.stderr)
    generate_synthetic(data, smpl, cfg)
    write_text_atomic(stamp, wanted)
    return data, smpl


def run_mode(args, mode: str, data: Path, smpl: Path) -> dict:
    run = Path(args.out) / mode
    overrides = [
        f"data.datasets=[{{name: synthetic, npz: '{data / 'train.npz'}', root: '{data}'}}]",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.workers}",
        f"model.backbone={args.backbone}",
        f"model.crop_height={args.crop_height}",
        f"model.mean_params='{data / 'mean_params.npz'}'",
        f"body.smpl='{smpl}'",
        f"loss.mode={mode}",
        f"optim.lr={args.lr}",
        "optim.schedule=cosine",
        f"optim.warmup_steps={min(500, args.steps // 10)}",
        f"train.out_dir='{run}'",
        f"train.steps={args.steps}",
        f"train.seed={args.seed}",
        f"train.checkpoint_every={max(1, args.steps // 10)}",
    ]
    train(load_config(None, overrides))
    return evaluate(
        EvalSettings(str(run / "final.pt"), "synthetic", str(data), smpl=str(smpl), out=str(run), workers=args.workers)
    )


def report(results: dict[str, dict]) -> str:
    lines = ["| model | subset | N | " + " | ".join(c[1] for c in METRICS) + " |", "| --- | --- | ---: |" + " ---: |" * len(METRICS)]
    for mode, r in results.items():
        for subset, st in [("all", r["overall"]), *r["by_off_center"].items()]:
            vals = " | ".join("-" if st[k] is None else f"{st[k]:.1f}" for k, _ in METRICS)
            lines.append(f"| {mode} | {subset} | {st['n']} | {vals} |")
    return "\n".join(lines) + "\n"


def paired(out: Path) -> dict[str, dict]:
    """CLIFF minus HMR on the same test images, per off-centre bin: mean and 95% bootstrap interval."""
    a, b = (np.load(out / m / "synthetic_per_sample.npz") for m in ("cliff", "hmr"))
    if not np.array_equal(a["imgname"], b["imgname"]):
        raise SystemExit(f"{out}: cliff and hmr were evaluated on different images")
    off = a["off_center_deg"]
    subsets = {"all": np.ones(len(off), bool)}
    for lo, hi in zip(OFF_CENTER_BINS[:-1], OFF_CENTER_BINS[1:]):
        subsets[f"{lo:g}-{hi:g} deg" if hi < 180 else f">={lo:g} deg"] = (off >= lo) & (off < hi)
    return {name: {k: paired_difference(a[k][rows], b[k][rows]) for k, _ in METRICS} for name, rows in subsets.items() if rows.any()}


def paired_report(diff: dict[str, dict]) -> str:
    def cell(r):
        return "-" if r["mean"] is None else f"{r['mean']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}]"

    lines = ["| subset | N | " + " | ".join(c[1] for c in METRICS) + " |", "| --- | ---: |" + " ---: |" * len(METRICS)]
    for name, row in diff.items():
        lines.append(f"| {name} | {row['mpjpe']['n']} | " + " | ".join(cell(row[k]) for k, _ in METRICS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse(argv)
    data, smpl = make_data(args)
    if args.generate_only:
        return 0
    results = {mode: run_mode(args, mode, data, smpl) for mode in args.modes}
    table = report(results)
    settings = {k: v for k, v in vars(args).items()}
    out = Path(args.out)
    diff = paired(out) if set(results) == {"cliff", "hmr"} else None
    if diff is not None:
        table += ("\nCLIFF minus HMR on the same images (negative: CLIFF better), mean and 95% bootstrap "
                  f"interval:\n\n{paired_report(diff)}")
    write_text_atomic(out / "benchmark.json", json.dumps({"settings": settings, "results": results,
                                                          "cliff_minus_hmr": diff}, indent=2) + "\n")
    write_text_atomic(out / "benchmark.md", f"# CLIFF vs HMR on synthetic data\n\nsettings: {settings}\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
