"""Video: every frame fitted alone (the photo path on each frame) vs tracked and fitted from the
previous frames (`cliffhmr.inference.sequence`), side by side on one synthetic clip with known truth.

The clip: two people walk across a 960x540 frame in opposite directions, 5 and 6.5 m from a
camera with a 60 degree horizontal field of view, and cross (the nearer hides the farther).
Their poses are the captured walk cycle of `data/mocap/anny_poses.npz` (`deepmimic/walk`,
looped; one person mirrored and half a cycle later), turned to face the way they walk and 30
degrees towards the camera; their shapes differ. The body model is rendered by the project's
renderer, dressed by colour (`benchmarks/detection.py`'s clothing), over one of its CC0
backgrounds, and encoded by the package's video writer (H.264). Both methods then read that
file and are given the true camera.

Per method: MPJPE (mm, the 17 COCO keypoints, mid-hip aligned, over the person-frames found);
acceleration error (mm/frame^2: the mean length of the difference between the predicted and
the true joints' second differences over three consecutive frames, mid-hip aligned, as
HMMR/VIBE/TCMR report it; where a person is found in all three frames); the pelvis's
acceleration error in the camera frame (depth jitter); people found; ID switches (tracked
only: a true person's matched track ID changing); frames per second from the file to the
results (decoding, detection, keypoints, fitting; no rendering or files). A prediction is a
true person's when their boxes overlap most (Hungarian, IoU >= 0.3).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video.py --frames 90 --json benchmarks/results/video.json \\
        --md benchmarks/results/video.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):  # this tree's cliffhmr, and the detection benchmark's clothing
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from detection import SKIN, backgrounds, clothing_parts, cover  # noqa: E402

from cliffhmr.geometry.camera import Intrinsics  # noqa: E402
from cliffhmr.geometry.boxes import box_iou  # noqa: E402
from cliffhmr.perception.track import linear_assignment  # noqa: E402

WIDTH, HEIGHT, HFOV_DEG, FPS = 960, 540, 60.0, 30.0
CAMERA_HEIGHT = 1.5  # metres above the ground; the camera looks level
METHODS = ("per_frame", "tracked")


# --------------------------------------------------------------------------- the clip


def walk_cycle() -> torch.Tensor:
    """(T, J, 3) axis-angle frames of the captured walk, its mean heading turned to face +Z."""
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat, rotmat_to_axis_angle

    data = np.load(ROOT / "data" / "mocap" / "anny_poses.npz")
    clip = list(data["clip_names"]).index("deepmimic/walk")
    aa = torch.from_numpy(data["pose"][data["clip"] == clip]).float()
    root = axis_angle_to_rotmat(aa[:, 0])
    forward = root[:, :, 2].mean(0)
    yaw = math.atan2(float(forward[0]), float(forward[2]))
    aa[:, 0] = rotmat_to_axis_angle(axis_angle_to_rotmat(torch.tensor([[0.0, -yaw, 0.0]])) @ root)
    return aa[:-1]  # the last frame repeats the first: the loop closes without a stutter


def make_people(body, n_frames: int) -> list[dict]:
    """Two walkers: per frame their local rotations (n, J, 3, 3) in the camera frame, betas, translation (n, 3)."""
    from cliffhmr.body.prior import mirror_pose
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat
    from cliffhmr.body import FACE_CAMERA

    cycle = walk_cycle()
    f = WIDTH / 2 / math.tan(math.radians(HFOV_DEG) / 2)
    people = []
    specs = [  # start x, depth, direction, heading (deg, 90 = walking right), phase, mirrored, shape seed
        (-2.0, 5.0, +1, 60.0, 0, False, 1),
        (2.6, 6.5, -1, -60.0, len(cycle) // 2, True, 2),
    ]
    for x0, z, direction, heading, phase, mirrored, seed in specs:
        frames = cycle[(np.arange(n_frames) + phase) % len(cycle)]
        if mirrored:
            frames = mirror_pose(frames, body.joint_names)
        R = axis_angle_to_rotmat(frames)
        turn = axis_angle_to_rotmat(torch.tensor([[0.0, math.radians(heading), 0.0]]))[0]
        R[:, 0] = FACE_CAMERA @ turn @ R[:, 0]
        gen = torch.Generator().manual_seed(seed)
        betas = (torch.randn(1, body.num_betas, generator=gen) * 0.1).clamp(-0.2, 0.2).expand(n_frames, -1)
        with torch.no_grad():
            rest = body(R[:1], betas[:1])
        feet = float(rest.vertices[0, :, 1].max())  # lowest point (y down)
        t = torch.arange(n_frames) / FPS
        transl = torch.stack((x0 + direction * 1.3 * t, torch.full_like(t, CAMERA_HEIGHT - feet), torch.full_like(t, z)), -1)
        people.append({"rotmat": R, "betas": betas.clone(), "transl": transl})
    return people, f


def render_clip(body, people: list[dict], f: float, path: Path, seed: int = 0) -> list[dict]:
    """Render and encode the clip -> per frame, per person: true COCO joints (17, 3) and box (4,)."""
    from cliffhmr.device import single_threaded
    from cliffhmr.inference.render import render_overlay
    from cliffhmr.inference.video import Writer

    rng = np.random.default_rng(seed)
    bg = cover(backgrounds()[0], WIDTH, HEIGHT, rng)  # brick.jpg, the first by name: a wall behind them
    parts = clothing_parts(body)
    looks = []
    for i in range(len(people)):
        skin = SKIN[(2 * i + 1) % len(SKIN)]
        shirt, trousers = [(200, 60, 50), (40, 110, 190)][i], [(40, 40, 60), (120, 100, 70)][i]
        looks.append({"skin": skin, "shirt": shirt, "trousers": trousers, "shoes": (30, 30, 30), "shins": trousers})
    n = len(people[0]["transl"])
    truth = []
    writer = Writer(path, WIDTH, HEIGHT, FPS)
    for t in range(n):
        meshes, faces, colours, frame_truth = [], [], [], []
        for person, look in zip(people, looks):
            with torch.no_grad():
                out = body(person["rotmat"][t : t + 1], person["betas"][t : t + 1], person["transl"][t : t + 1])
            v = out.vertices[0].double().numpy()
            meshes += [v] * len(parts)
            faces += list(parts.values())
            colours += [look[k] for k in parts]
            uv = v[:, :2] / v[:, 2:] * f + [WIDTH / 2, HEIGHT / 2]
            frame_truth.append({"joints": out.keypoints[0].double().numpy(), "box": np.r_[uv.min(0), uv.max(0)]})
        with single_threaded():
            writer.write(render_overlay(bg, meshes, faces, f, f, WIDTH / 2, HEIGHT / 2, colors=colours, alpha=1.0), t / FPS)
        truth.append(frame_truth)
    writer.close()
    return truth


# --------------------------------------------------------------------------- the two methods


def run_per_frame(predictor, path: Path, K) -> tuple[list[list[tuple[int, object]]], float]:
    """The photo path on every frame -> (per frame [(-1, person)], seconds)."""
    from cliffhmr.inference.video import Reader

    start = time.perf_counter()
    out = [[(-1, p) for p in predictor(frame.pixels, intrinsics=K).people] for frame in Reader(path).frames()]
    return out, time.perf_counter() - start


def run_tracked(predictor, path: Path, K, config=None) -> tuple[list[list[tuple[int, object]]], float]:
    from cliffhmr.inference.sequence import run_sequence

    start = time.perf_counter()
    result = run_sequence(predictor, path, intrinsics=K, config=config)
    return result.people, time.perf_counter() - start


# --------------------------------------------------------------------------- metrics


def match(truth: list[dict], people: list[tuple[int, object]]) -> dict[int, tuple[int, np.ndarray, np.ndarray]]:
    """True person index -> (track ID, predicted COCO joints (17, 3), pelvis (3,)) for the people found."""
    if not people or not truth:
        return {}
    iou = box_iou(np.array([t["box"] for t in truth]), np.array([p.bbox[:4] for _, p in people]))
    out = {}
    for i, j in linear_assignment(-iou):
        if iou[i, j] >= 0.3:
            joints = people[j][1].joints[-17:].astype(np.float64)
            out[int(i)] = (people[j][0], joints, joints[11:13].mean(0))
    return out


def hip_aligned(joints: np.ndarray) -> np.ndarray:
    return joints - joints[..., 11:13, :].mean(-2, keepdims=True)


def metrics(truth: list[list[dict]], predicted: list[list[tuple[int, object]]], seconds: float) -> dict:
    matched = [match(t, p) for t, p in zip(truth, predicted)]
    errors, accel, pelvis_accel, switches = [], [], [], 0
    n_people = len(truth[0])
    for i in range(n_people):
        last_id = None
        for t, m in enumerate(matched):
            if i not in m:
                continue
            track, joints, _ = m[i]
            errors.append(np.linalg.norm(hip_aligned(joints) - hip_aligned(truth[t][i]["joints"]), axis=-1).mean())
            if track >= 0:
                switches += last_id is not None and track != last_id
                last_id = track
            if t >= 2 and i in matched[t - 1] and i in matched[t - 2]:
                trio = [matched[t - k][i] for k in (2, 1, 0)]
                true = [truth[t - k][i]["joints"] for k in (2, 1, 0)]
                a_pred = hip_aligned(trio[0][1]) - 2 * hip_aligned(trio[1][1]) + hip_aligned(trio[2][1])
                a_true = hip_aligned(true[0]) - 2 * hip_aligned(true[1]) + hip_aligned(true[2])
                accel.append(np.linalg.norm(a_pred - a_true, axis=-1).mean())
                p = [x[2] for x in trio]
                g = [x[11:13].mean(0) for x in true]
                pelvis_accel.append(np.linalg.norm((p[0] - 2 * p[1] + p[2]) - (g[0] - 2 * g[1] + g[2])))
    frames = len(truth)
    return {
        "mpjpe_mm": 1000 * float(np.mean(errors)) if errors else None,
        "accel_mm": 1000 * float(np.mean(accel)) if accel else None,
        "pelvis_accel_mm": 1000 * float(np.mean(pelvis_accel)) if pelvis_accel else None,
        "found": int(sum(len(m) for m in matched)),
        "people_frames": frames * n_people,
        "id_switches": int(switches) if any(tr >= 0 for row in predicted for tr, _ in row) else None,
        "fps": frames / seconds,
        "seconds": seconds,
    }


def report_md(report: dict) -> str:
    def fmt(x, spec):
        return "–" if x is None else format(x, spec)

    rows = [("MPJPE (mm)", "mpjpe_mm", ".1f"), ("acceleration error (mm/frame^2)", "accel_mm", ".1f"),
            ("pelvis acceleration error, camera frame (mm/frame^2)", "pelvis_accel_mm", ".1f"),
            ("ID switches", "id_switches", "d"), ("frames/s (decoding to results)", "fps", ".2f")]  # fmt: skip
    a, b = (report["methods"][m] for m in METHODS)
    lines = [f"`{report['command']}`", "", "| | every frame alone | tracked + smoothed | |", "| --- | --- | --- | --- |"]
    for label, key, spec in rows:
        ratio = ""
        if a[key] is not None and b[key] is not None and b[key] > 0 and key != "id_switches":
            ratio = f"{a[key] / b[key]:.2f}x lower" if key != "fps" else f"{b[key] / a[key]:.2f}x"
            if key == "mpjpe_mm":
                ratio = f"{b[key] - a[key]:+.1f} mm"
        lines.append(f"| {label} | {fmt(a[key], spec)} | {fmt(b[key], spec)} | {ratio} |")
    lines.append(f"| people found (of {a['people_frames']} person-frames) | {a['found']} | {b['found']} | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--keep", type=Path, help="also keep the rendered clip here (.mp4)")
    ap.add_argument("--fit-iterations", type=int, default=None, help="the fit's most steps (both methods; default the package's)")
    args = ap.parse_args(argv)
    from cliffhmr.body import load_body_model
    from cliffhmr.inference.pipeline import Predictor, PredictorConfig

    torch.set_num_threads(1)
    body = load_body_model(None)
    people, f = make_people(body, args.frames)
    K = Intrinsics(f, f, WIDTH / 2, HEIGHT / 2)
    iterations = {} if args.fit_iterations is None else {"fit_iterations": args.fit_iterations}
    predictor = Predictor(PredictorConfig(**iterations))
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.keep or Path(tmp) / "walkers.mp4"
        truth = render_clip(body, people, f, clip)
        predictor(np.zeros((64, 64, 3), np.uint8))  # the models load before the clocks start
        report = {"command": "python benchmarks/video.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "frames": args.frames, "methods": {}}  # fmt: skip
        for method, run in zip(METHODS, (run_per_frame, run_tracked)):
            predicted, seconds = run(predictor, clip, K)
            report["methods"][method] = metrics(truth, predicted, seconds)
            print(method, json.dumps(report["methods"][method]), flush=True)
    md = report_md(report)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.md:
        args.md.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
