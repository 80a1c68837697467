"""Full-frame vs crop-only fitting on synthetic people: CLIFF's central claim on data we control.

Each person: the default body model (Anny) in a pose from the held-out motion-capture clips
(`data/mocap/`, clips no part of the fit learned from) and an adult shape (drawn from the
shape prior's spread), anywhere in a 1920x1080
frame at 3-9 m, seen by a camera with a 45-90 degree horizontal field of view. Its COCO-17
keypoints are projected with that camera, perturbed by Gaussian noise (1% of the person's
size) and 10% dropouts. Both fits start from the same kind of initial estimate and differ
only in the camera model:

- full: perspective camera of the whole image (CLIFF / CLIFF+),
- crop: weak-perspective camera per crop, then read back into the full frame (HMR-style).

Reported: MPJPE and PA-MPJPE of the 17 3D keypoints (mid-hip aligned, mm) and the root
orientation error (degrees), by how far the person is from the optical axis.

    .venv/bin/python benchmarks/fit_synthetic.py --n 96
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from cliffhmr.body import load_body_model
from cliffhmr.body.prior import load_pose_prior
from cliffhmr.evaluation.metrics import mpjpe, pa_mpjpe
from cliffhmr.fitting.fit import FitConfig, fit_people
from cliffhmr.geometry.rotation import geodesic_angle
from cliffhmr.models.initial import initial_estimate
from cliffhmr.perception.crop import box_to_center_scale
from cliffhmr.synthetic.scenes import load_mocap_poses, make_scenes

BUCKETS = ((0, 10), (10, 20), (20, 90))


def run(n: int, iterations: int | None, seed: int, chunk: int) -> dict:
    torch.manual_seed(seed)
    body = load_body_model(None)
    adults = load_pose_prior(body.joint_names).shape_std
    scenes = make_scenes(body, n, seed=seed, poses=load_mocap_poses("test"), betas_std=adults)
    limit = {} if iterations is None else {"iterations": iterations}
    off = scenes.off_center_deg()
    f = scenes.focal[:, None].expand(n, 2)
    c = scenes.principal
    center, scale = box_to_center_scale(scenes.boxes)
    results = {}
    for mode in ("full", "crop"):
        rot, kp3d, seconds = [], [], 0.0
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            init = initial_estimate(body, scenes.keypoints_2d[sl], center[sl], scale[sl], f[sl], c[sl], full_frame=mode == "full")
            start = time.perf_counter()
            fit = fit_people(
                body, scenes.keypoints_2d[sl], f[sl], c[sl], init,
                config=FitConfig(camera=mode, **limit), boxes=scenes.boxes[sl],
            )  # fmt: skip
            seconds += time.perf_counter() - start
            rot.append(fit.rotmat[:, 0])
            kp3d.append(fit.body.keypoints)
        rot, kp3d = torch.cat(rot), torch.cat(kp3d)
        gt = scenes.keypoints_3d
        root_rel = lambda x: x - x[:, 11:13].mean(1, keepdim=True)  # noqa: E731
        per = {
            "mpjpe": mpjpe(root_rel(kp3d), root_rel(gt)) * 1000,
            "pa_mpjpe": pa_mpjpe(kp3d, gt) * 1000,
            "root_deg": torch.rad2deg(geodesic_angle(rot, scenes.rotmat[:, 0])),
        }
        table = {}
        for lo, hi in BUCKETS:
            m = (off >= lo) & (off < hi)
            table[f"{lo}-{hi} deg"] = {k: float(v[m].mean()) for k, v in per.items()} | {"n": int(m.sum())}
        table["all"] = {k: float(v.mean()) for k, v in per.items()} | {"n": n}
        table["seconds_per_person"] = seconds / n
        results[mode] = table
    return results


def markdown(results: dict) -> str:
    rows = ["| people off the optical axis by | n | MPJPE full / crop (mm) | PA-MPJPE full / crop (mm) | root orientation error full / crop (deg) |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for key in [f"{lo}-{hi} deg" for lo, hi in BUCKETS] + ["all"]:
        a, b = results["full"][key], results["crop"][key]
        rows.append(
            f"| {key} | {a['n']} | {a['mpjpe']:.1f} / {b['mpjpe']:.1f} | {a['pa_mpjpe']:.1f} / {b['pa_mpjpe']:.1f} "
            f"| {a['root_deg']:.1f} / {b['root_deg']:.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=96)
    p.add_argument("--iterations", type=int, help="at most (default: FitConfig's, with its stopping rule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=16, help="people fitted together")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    results = run(args.n, args.iterations, args.seed, args.chunk)
    print(markdown(results))
    print(f"\nfit time per person (2-core CPU, batches of {args.chunk}): "
          f"full {results['full']['seconds_per_person'] * 1000:.0f} ms, crop {results['crop']['seconds_per_person'] * 1000:.0f} ms")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
