"""The default path's fit, before (the fit at `--baseline`) and after (this tree's), timed side by
side in one process: per image on the bundled photos and per person on `real_motion.py`'s
people, with the accuracy of both on the latter.

Both sides fit the same inputs from the same start (each side's own keypoint regressor estimate,
which is the same network). Photos: detection and keypoints once (this tree's), then each side's
fit `--repeats` times, the two sides alternating and the order swapped every repeat; medians.
real_motion: for every chunk of 32 people, both sides fit it in turn (the order swapped every
chunk); seconds summed; the accuracy columns are `real_motion.py`'s metrics (17 COCO
keypoints, mid-hip aligned). One torch thread, as the pipeline runs the fit.

    .venv/bin/python benchmarks/fit_speed.py --baseline 599604e --json benchmarks/results/fit_speed.json \\
        --md benchmarks/results/fit_speed.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_motion as rm  # noqa: E402

from cliffhmr.geometry.camera import choose_intrinsics  # noqa: E402
from cliffhmr.inference.pipeline import Predictor  # noqa: E402
from cliffhmr.perception import crop  # noqa: E402
from cliffhmr.perception.image import load_image  # noqa: E402

PHOTOS = ("astronaut.jpg", "grace_hopper.jpg", "two_people.jpg")


def photo_inputs(predictor: Predictor, path: Path) -> dict:
    """What `Predictor.fit` is given for one photo: boxes, keypoints, world landmarks, camera."""
    image = load_image(path)
    K = choose_intrinsics(image.width, image.height, None, None, image.focal_35mm)
    boxes = predictor.detector(image.pixels)
    kp = predictor.keypoints(image.pixels, boxes)
    n = len(boxes)
    center, scale = crop.box_to_center_scale(torch.as_tensor(boxes[:, :4], dtype=torch.float32))
    f, c = K.as_tensors(n)
    return {"keypoints": torch.as_tensor(kp.coco, dtype=torch.float32), "world": torch.as_tensor(kp.world, dtype=torch.float32),
            "center": center, "scale": scale, "f": f, "c": c, "min_conf": predictor.pose_estimator.min_confidence}  # fmt: skip


def time_fit(side, body, x: dict, init, overrides: dict) -> tuple[float, object]:
    config = side.fit.FitConfig(**overrides, min_confidence=x["min_conf"])
    start = time.perf_counter()
    fit = side.fit.fit_people(body, x["keypoints"], x["f"], x["c"], init, world=x["world"], config=config)
    return time.perf_counter() - start, fit


def photos(sides: dict, bodies: dict, repeats: int, overrides: dict) -> list[dict]:
    predictor = Predictor()
    rows = []
    for name in PHOTOS:
        x = photo_inputs(predictor, rm.REPO / "examples" / name)
        inits = {s: sides[s].regressor.initial_estimate(bodies[s], x["keypoints"], x["center"], x["scale"], x["f"], x["c"],
                                                        min_conf=x["min_conf"]) for s in rm.SIDES}  # fmt: skip
        seconds = {s: [] for s in rm.SIDES}
        fits = {}
        for r in range(repeats + 1):  # the first round warms both sides up, untimed
            for s in rm.SIDES if r % 2 else reversed(rm.SIDES):
                dt, fits[s] = time_fit(sides[s], bodies[s], x, inits[s], overrides[s])
                if r:
                    seconds[s].append(dt)
        row = {"image": name, "people": len(x["keypoints"])}
        for s in rm.SIDES:
            row[f"{s}_ms"] = 1000 * statistics.median(seconds[s])
            row[f"{s}_steps"] = int(fits[s].iterations)
            row[f"{s}_quality"] = float(fits[s].quality.mean())
        rows.append(row)
        print(f"{name}: {row['before_ms']:.0f} -> {row['after_ms']:.0f} ms", file=sys.stderr, flush=True)
    return rows


def people(sides: dict, bodies: dict, poses: Path, n: int, seed: int, chunk: int, overrides: dict) -> list[dict]:
    body = bodies["after"]  # ground truth: this tree's geometry, as real_motion.py
    group = rm.make_people(body, poses, n, seed)
    limits = rm.within_limits_or_none()
    f2 = group["focal"][:, None].expand(-1, 2)
    rows = []
    for ci, case in enumerate(rm.CASES):
        transl, relaxed = rm.place(group, case)
        obs = rm.observe(group, transl, torch.Generator().manual_seed(seed * 1000 + ci))
        center_all, scale_all = crop.box_to_center_scale(obs["boxes"])
        seconds = {s: 0.0 for s in rm.SIDES}
        parts = {s: [] for s in rm.SIDES}
        for k, start in enumerate(range(0, n, chunk)):
            sl = slice(start, start + chunk)
            kp, c = obs["keypoints"][sl], obs["principal"][sl]
            for s in rm.SIDES if k % 2 else reversed(rm.SIDES):
                init = sides[s].regressor.initial_estimate(bodies[s], kp, center_all[sl], scale_all[sl], f2[sl], c)
                config = sides[s].fit.FitConfig(**overrides[s])
                t0 = time.perf_counter()
                fit = sides[s].fit.fit_people(bodies[s], kp, f2[sl], c, init, boxes=obs["boxes"][sl], config=config)
                seconds[s] += time.perf_counter() - t0
                parts[s].append(fit)
        gt = {"keypoints": obs["kp3d"], "rotmat": group["rotmat"], "height": group["gt_height"]}
        with torch.no_grad():
            gt["joints"] = body(group["rotmat"], group["betas"], transl).joints
        row = {"case": case, "n": int((~relaxed).sum())}
        for s in rm.SIDES:
            pred = {"rotmat": torch.cat([p.rotmat for p in parts[s]]), "keypoints": torch.cat([p.body.keypoints for p in parts[s]]),
                    "joints": torch.cat([p.body.joints for p in parts[s]])}  # fmt: skip
            pred["height"] = rm.rest_height(body, torch.cat([p.betas for p in parts[s]]))
            per = rm.per_sample({k: v.detach() for k, v in pred.items()}, gt, obs["inside"], limits)
            summary = rm.summarise({k: v[~relaxed] for k, v in per.items()}, seconds[s] / n)
            row |= {f"{s}_ms": 1000 * seconds[s] / n, f"{s}_mpjpe": summary["mpjpe"], f"{s}_pa": summary["pa_mpjpe"],
                    f"{s}_steps": max(int(p.iterations) for p in parts[s])}  # fmt: skip
        rows.append(row)
        print(f"{case}: {row['before_ms']:.1f} -> {row['after_ms']:.1f} ms/person, MPJPE {row['before_mpjpe']:.1f} -> "
              f"{row['after_mpjpe']:.1f}", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    lines = ["| photo | people | fit per image before / after (ms) | speed-up | per person after (ms) | steps before / after | keypoint agreement before / after |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in result["photos"]:
        lines.append(f"| {r['image']} | {r['people']} | {r['before_ms']:.0f} / **{r['after_ms']:.0f}** | {r['before_ms'] / r['after_ms']:.2f}x | "
                     f"{r['after_ms'] / r['people']:.0f} | {r['before_steps']} / {r['after_steps']} | "
                     f"{r['before_quality']:.3f} / {r['after_quality']:.3f} |")  # fmt: skip
    lines += ["", "| real_motion case | n | fit per person before / after (ms) | speed-up | MPJPE before / after (mm) | "
                  "PA-MPJPE before / after (mm) | steps (most) before / after |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in result["people"]:
        lines.append(f"| {r['case']} | {r['n']} | {r['before_ms']:.1f} / **{r['after_ms']:.1f}** | {r['before_ms'] / r['after_ms']:.2f}x | "
                     f"{r['before_mpjpe']:.1f} / {r['after_mpjpe']:.1f} | {r['before_pa']:.1f} / {r['after_pa']:.1f} | "
                     f"{r['before_steps']} / {r['after_steps']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default="599604e", help="git revision of the BEFORE side")
    p.add_argument("--poses", type=Path, default=rm.REPO / "data" / "mocap" / "anny_poses.npz")
    p.add_argument("--n", type=int, default=96, help="real_motion people per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=32, help="people fitted together")
    p.add_argument("--repeats", type=int, default=5, help="timed fits per photo and side")
    p.add_argument("--config", type=json.loads, default={}, help='FitConfig fields for the AFTER side, as JSON, e.g. \'{"lr": 0.04}\'')
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sides = rm.load_sides(args.baseline, Path(tmp))
        bodies = {"before": sides["before"].body.load_body_model(None), "after": sides["after"].body.load_body_model(None)}
        overrides = {"before": {}, "after": args.config}
        result = {"meta": {"baseline": args.baseline, "n": args.n, "seed": args.seed, "chunk": args.chunk, "repeats": args.repeats,
                           "after_config": args.config, "before_module": sides["before"].fit.__file__},
                  "photos": photos(sides, bodies, args.repeats, overrides),
                  "people": people(sides, bodies, args.poses, args.n, args.seed, args.chunk, overrides)}  # fmt: skip
    result["meta"]["wall_seconds"] = time.perf_counter() - start
    table = markdown(result)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    if args.md:
        args.md.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
