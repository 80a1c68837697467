"""The CLIFF+ annotator against known truth: --refine none, fit and network side by side.

Synthetic people (the toy SMPL body of `benchmarks/train_synthetic.py`, people anywhere in a
320x240 frame, headings within 45 degrees of the line of sight, as that benchmark trains on) are
rendered with a fixed camera (60 degree field of view: the annotator takes one camera per run).
Their COCO-17 keypoints are projected with that camera, moved by Gaussian noise (`--noise` times
the person's box size) and dropped at random (`--drop`), and written as a COCO results file, as a
user would bring them (the boxes are then the keypoints' extent). Each refinement annotates the same folder starting from
the checkpoint `train_synthetic.py` trained (RUN/cliff/final.pt); the rows are compared with the
truth: MPJPE and PA-MPJPE of the 24 SMPL joints (pelvis-aligned) and PVE (pelvis-aligned
vertices), in mm, and annotations per second on this machine.

    python benchmarks/train_synthetic.py --modes cliff --out runs/synthetic      # the checkpoint
    python benchmarks/annotate.py --run runs/synthetic --n 32
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cliffhmr.annotation.refine import RefineConfig
from cliffhmr.annotation.run import AnnotateConfig, annotate
from cliffhmr.atomic import write_text_atomic
from cliffhmr.body.registry import load_smpl
from cliffhmr.evaluation.metrics import mpjpe, pa_mpjpe, paired_difference
from cliffhmr.geometry.camera import perspective_project
from cliffhmr.geometry.rotation import axis_angle_to_rotmat
from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic

WIDTH, HEIGHT, HFOV_DEG = 320, 240, 60.0
MODES = ("none", "fit", "network")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a train_synthetic.py output folder (its data/toy_smpl.npz and cliff/final.pt)")
    p.add_argument("--out", default=None, help="where scenes and results go (default RUN/annotate)")
    p.add_argument("--n", type=int, default=32, help="people (one per image)")
    p.add_argument("--noise", type=float, default=0.02, help="keypoint noise, standard deviation over the box size")
    p.add_argument("--drop", type=float, default=0.1, help="fraction of keypoints missing")
    p.add_argument("--steps", type=int, default=RefineConfig.steps, help="--refine network: fine-tuning steps")
    p.add_argument("--lr", type=float, default=RefineConfig.lr, help="--refine network: learning rate")
    p.add_argument("--fit-iterations", type=int, default=None, help="--refine fit: most steps (default: the fit's)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--seed", type=int, default=1, help="scenes (the training data used 0)")
    return p.parse_args(argv)


def make_scenes(out: Path, smpl: Path, args) -> dict[str, np.ndarray]:
    """Render the people once; -> the truth (test.npz's arrays)."""
    cfg = SyntheticConfig(train=0, test=args.n, width=WIDTH, height=HEIGHT, hfov_deg=(HFOV_DEG, HFOV_DEG),
                          max_yaw_deg=45.0, heading_from="ray", seed=args.seed)  # fmt: skip
    if not (out / "test.npz").exists():
        generate_synthetic(out, smpl, cfg)
    with np.load(out / "test.npz") as f:
        return {k: f[k] for k in f.files}


def write_inputs(out: Path, truth: dict, body, args) -> None:
    """The truth's keypoints as a user's keypoint detector would give them (boxes: around them)."""
    rng = np.random.default_rng(args.seed)
    rotmat = axis_angle_to_rotmat(torch.as_tensor(truth["pose"]).reshape(-1, 24, 3))
    with torch.no_grad():
        posed = body(rotmat, torch.as_tensor(truth["shape"]), torch.as_tensor(truth["transl"]))
    K = torch.as_tensor(truth["cam_int"])
    kp = perspective_project(posed.keypoints, K[:, [0, 1], [0, 1]], K[:, :2, 2]).numpy()
    size = 200 * truth["scale"][:, None, None]
    kp = kp + rng.normal(0, 1, kp.shape) * args.noise * size
    conf = (rng.random(kp.shape[:2]) >= args.drop).astype(float)
    results = [{"file_name": Path(name).name, "keypoints": np.concatenate((k, c[:, None]), 1).ravel().tolist()}
               for name, k, c in zip(truth["imgname"], kp, conf)]  # fmt: skip
    write_text_atomic(out / "keypoints.json", json.dumps(results))


def errors(rows: dict, truth: dict, body) -> dict[str, np.ndarray]:
    """Per annotated person: MPJPE, PA-MPJPE, PVE (mm) against the truth of the same image."""
    index = {Path(n).name: i for i, n in enumerate(truth["imgname"])}
    t = [index[Path(n).name] for n in rows["imgname"]]

    def posed(pose, shape):
        with torch.no_grad():
            return body(axis_angle_to_rotmat(torch.as_tensor(pose).reshape(-1, 24, 3)), torch.as_tensor(shape), None)

    a, b = posed(rows["pose"], rows["shape"]), posed(truth["pose"][t], truth["shape"][t])
    ja, jb = a.joints - a.joints[:, :1], b.joints - b.joints[:, :1]
    va, vb = a.vertices - a.joints[:, :1], b.vertices - b.joints[:, :1]
    return {"mpjpe": 1000 * mpjpe(ja, jb).numpy(), "pa_mpjpe": 1000 * pa_mpjpe(ja, jb).numpy(), "pve": 1000 * mpjpe(va, vb).numpy()}


def run_mode(mode: str, scenes: Path, run: Path, smpl: Path, args) -> dict:
    focal = WIDTH / 2 / math.tan(math.radians(HFOV_DEG) / 2)
    cfg = AnnotateConfig(
        input=scenes / "images" / "test", out=scenes / f"{mode}.npz", refine=mode, checkpoint=str(run / "cliff" / "final.pt"),
        smpl=str(smpl), keypoints=str(scenes / "keypoints.json"), focal=focal,
        fit_iterations=args.fit_iterations, min_quality=0.0, network=RefineConfig(steps=args.steps, lr=args.lr), progress=False,
    )  # fmt: skip
    start = time.perf_counter()
    summary = annotate(cfg)
    seconds = time.perf_counter() - start
    return {"rows": summary.rows, "seconds": seconds, "skipped": len(summary.skips)}


def main(argv: list[str]) -> int:
    args = parse(argv)
    run = Path(args.run)
    smpl = run / "data" / "toy_smpl.npz"
    out = Path(args.out) if args.out else run / "annotate"
    body = load_smpl(str(smpl))
    truth = make_scenes(out, smpl, args)
    write_inputs(out, truth, body, args)
    results, per_image = {}, {}
    for mode in args.modes:
        r = run_mode(mode, out, run, smpl, args)
        err = errors(r["rows"], truth, body)
        per_image[mode] = {k: dict(zip(r["rows"]["imgname"].tolist(), v)) for k, v in err.items()}
        results[mode] = {**{k: float(np.mean(v)) for k, v in err.items()}, "n": len(r["rows"]["imgname"]),
                         "per_second": len(r["rows"]["imgname"]) / r["seconds"], "seconds": r["seconds"], "skipped": r["skipped"]}  # fmt: skip
        print(mode, results[mode], file=sys.stderr, flush=True)
    if "none" in per_image:
        for mode in set(per_image) - {"none"}:
            results[mode]["minus_none"] = {k: paired(per_image[mode][k], per_image["none"][k]) for k in per_image[mode]}
    table = markdown(results)
    settings = {k: v for k, v in vars(args).items()}
    write_text_atomic(out / "benchmark.json", json.dumps({"settings": settings, "refine": asdict(RefineConfig(steps=args.steps, lr=args.lr)),
                                                          "results": results}, indent=2, default=str) + "\n")  # fmt: skip
    write_text_atomic(out / "benchmark.md", f"# CLIFF+ annotator on synthetic people\n\nsettings: {settings}\n\n{table}")
    print(table)
    return 0


def paired(a: dict, b: dict) -> dict:
    """a - b over the images both annotated: mean and 95% bootstrap interval."""
    common = sorted(set(a) & set(b))
    return paired_difference(np.array([a[k] for k in common]), np.array([b[k] for k in common]))


def markdown(results: dict) -> str:
    def cell(r: dict, key: str) -> str:
        d = r.get("minus_none", {}).get(key)
        gap = "" if d is None or d["mean"] is None else f" ({d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}])"
        return f"{r[key]:.1f}{gap}"

    lines = ["| --refine | N | MPJPE | PA-MPJPE | PVE | annotations/s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['n']} | {cell(r, 'mpjpe')} | {cell(r, 'pa_mpjpe')} | {cell(r, 'pve')} | {r['per_second']:.2f} |")
    return "\n".join(lines) + "\n\nmm; in brackets: minus `none` on the same people, mean and 95% bootstrap interval.\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
