"""Do the tests catch wrong numbers? Deliberate bugs in central places, one at a time.

    python tools/mutate.py                       # every mutant
    python tools/mutate.py --only bbox_info,pelvis_alignment
    python tools/mutate.py --list

Each mutant replaces one piece of one source line (the text must occur exactly once in its
file), runs only the test files about that place (`pytest -x -q`, with this checkout first on the
path and no bytecode written), and puts the file back byte for byte in a `finally`, also on
Ctrl-C and SIGTERM. It prints a table, mutant -> the first test that failed, and exits 1 when a
mutant survived (every test passed) or did not apply.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    old: str  # text found exactly once in the file
    new: str
    tests: tuple[str, ...]
    bug: str  # what goes wrong, in words


MUTANTS = (
    Mutant("crop_to_full", "cliffhmr/geometry/camera.py", "tz = 2 * focal / bs", "tz = focal / bs",
           ("tests/test_camera.py",), "crop camera -> full-frame depth off by 2x"),
    Mutant("bbox_info", "cliffhmr/geometry/camera.py", "loc = (center - principal) / focal[:, None]",
           "loc = (principal - center) / focal[:, None]", ("tests/test_camera.py",), "bbox_info location mirrored"),
    Mutant("rot6d_layout", "cliffhmr/geometry/rotation.py", "m = x.reshape(*x.shape[:-1], 3, 2)",
           "m = x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2)", ("tests/test_rotation.py",),
           "6D read row-wise instead of as the matrix's first two columns"),
    Mutant("view_ray", "cliffhmr/geometry/camera.py", "angle = torch.atan2(axis.norm(dim=-1), (z * d).sum(-1))",
           "angle = -torch.atan2(axis.norm(dim=-1), (z * d).sum(-1))", ("tests/test_camera.py",),
           "viewing-ray rotation turned the wrong way"),
    Mutant("crop_align_corners", "cliffhmr/perception/crop.py", "align_corners=False)", "align_corners=True)",
           ("tests/test_crop_image_export.py", "tests/test_pixel_convention.py"), "crop sampler half a pixel off"),
    Mutant("crop_view_map", "cliffhmr/perception/crop.py", "points = points @ L.T + t[:, 0]", "points = points @ L + t[:, 0]",
           ("tests/test_crop_image_export.py", "tests/test_data.py"),
           "training crops read their flipped/rolled view through the transposed map"),
    Mutant("keypoint_box", "cliffhmr/geometry/boxes.py", "lo = torch.where(seen[..., None], points, big).amin(-2)",
           "lo = points.amin(-2)", ("tests/test_boxes.py",), "boxes around keypoints include unseen ones"),
    Mutant("engine_crop_layout", "cliffhmr/perception/crop.py", "return out.view(3, n, height, width).transpose(0, 1)",
           "return out.view(n, 3, height, width)", ("tests/test_engine.py",), "batched crops mix people's colour planes"),
    Mutant("gl_pixel_centres", "cliffhmr/inference/render_gl.py", "vec2 uv = cam.xy * pos.xy / z + cam.zw;",
           "vec2 uv = cam.xy * pos.xy / z + cam.zw + 0.5;", ("tests/test_render_gl.py",), "OpenGL draws half a pixel off"),
    Mutant("render_pixel_centres", "cliffhmr/inference/render.py", "fx * verts[:, 0] / z + (cx - 0.5)", "fx * verts[:, 0] / z + cx",
           ("tests/test_pixel_convention.py", "tests/test_render.py"), "renderer draws half a pixel right"),
    Mutant("smpl_pose_features", "cliffhmr/body/smpl.py", "pose_feature = (rotmats[:, 1:] - eye).reshape(B, -1)",
           "pose_feature = rotmats[:, 1:].reshape(B, -1)", ("tests/test_body.py",), "pose blend shapes of R, not R - I"),
    Mutant("smpl_joint_regression", "cliffhmr/body/smpl.py", "rest_joints = self.J_regressor @ v_shaped",
           "rest_joints = self.J_regressor @ self.v_template", ("tests/test_body.py",), "joints ignore the body's shape"),
    Mutant("fit_robust_loss", "cliffhmr/fitting/fit.py", "rho = r2 / (r2 + sigma**2)", "rho = r2",
           ("tests/test_fit.py",), "fit's Geman-McClure loss replaced by squares (outliers pull)"),
    Mutant("fit_confidences", "cliffhmr/fitting/fit.py", "((False, conf), (True, conf * ",
           "((False, torch.ones_like(conf)), (True, torch.ones_like(conf) * ",
           ("tests/test_fit.py",), "fit ignores keypoint confidences (missing ones pull too)"),
    Mutant("fit_prior", "cliffhmr/fitting/fit.py", "per_person + cfg.w_prior * prior.penalty(body_aa) + cfg.w_limits",
           "per_person + cfg.w_limits", ("tests/test_fit.py",), "fit without the learned pose prior"),
    Mutant("procrustes_rotation", "cliffhmr/geometry/procrustes.py", "R = Vh.transpose(1, 2) @ D @ U.transpose(1, 2)",
           "R = U @ D @ Vh", ("tests/test_metrics.py",), "PA alignment rotates the wrong way"),
    Mutant("procrustes_reflection", "cliffhmr/geometry/procrustes.py", "scale = (S * D.diagonal(dim1=1, dim2=2)).sum(-1)",
           "scale = S.sum(-1)", ("tests/test_metrics.py",), "Umeyama scale ignores the reflection sign"),
    Mutant("pelvis_alignment", "cliffhmr/evaluation/evaluate.py", "pred_j = pred_j - pred_pelvis[:, None]",
           "pred_j = pred_j", ("tests/test_metrics.py",), "evaluation without pelvis alignment of the prediction"),
    Mutant("flip_pose", "cliffhmr/data/augment.py", "return M @ rotmat[SMPL_FLIP_PERM] @ M", "return M @ rotmat[SMPL_FLIP_PERM]",
           ("tests/test_data.py",), "a flipped sample's pose not mirrored"),
    Mutant("flip_smpl_pairs", "cliffhmr/data/joints.py", "SMPL_FLIP_PERM = [0, 2, 1,", "SMPL_FLIP_PERM = [0, 1, 2,",
           ("tests/test_data.py",), "hips not swapped when an SMPL pose is flipped"),
    Mutant("flip_eyes", "cliffhmr/data/joints.py", "19, 21, 20, 23, 22]", "19, 20, 21, 23, 22]",
           ("tests/test_data.py",), "eye keypoints not swapped on a horizontal flip"),
    Mutant("flip_joints3d", "cliffhmr/data/augment.py", "S = S[J24_FLIP_PERM] if S is not None else None", "S = S",
           ("tests/test_data.py",), "a flipped sample's 3D joints not swapped left/right"),
    Mutant("coco_mirror", "cliffhmr/perception/leftright.py", "COCO17_MIRROR = (0, 2, 1,", "COCO17_MIRROR = (0, 1, 2,",
           ("tests/test_leftright.py",), "left/right swap leaves the eyes"),
    Mutant("checkpoint_prefixes", "cliffhmr/models/checkpoint.py", 'WRAPPER_PREFIXES = ("module.", "_orig_mod.")',
           'WRAPPER_PREFIXES = ("module.",)', ("tests/test_models.py",), "torch.compile's _orig_mod. keys not stripped"),
)  # fmt: skip


def apply(mutant: Mutant) -> tuple[Path, bytes, str]:
    """(file, its original bytes, mutated text); ValueError when the text is not there exactly once."""
    path = ROOT / mutant.path
    original = path.read_bytes()
    text = original.decode()
    if text.count(mutant.old) != 1:
        raise ValueError(f"{mutant.path}: {mutant.old!r} occurs {text.count(mutant.old)} times, not once")
    return path, original, text.replace(mutant.old, mutant.new)


def run_tests(tests: tuple[str, ...]) -> tuple[int, str]:
    """pytest -x -q on `tests` with this checkout first on the path -> (exit code, output)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str | None:
    """The test id on pytest's first FAILED/ERROR summary line, or None."""
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    return m.group(1) if m else None


def try_mutant(mutant: Mutant) -> tuple[str, str]:
    """-> (verdict: caught / SURVIVED / NOT APPLIED / BROKEN, detail: the catching test or why)."""
    try:
        path, original, mutated = apply(mutant)
    except ValueError as e:
        return "NOT APPLIED", str(e)
    try:
        path.write_text(mutated)
        code, output = run_tests(mutant.tests)
    finally:
        path.write_bytes(original)
    if code == 0:
        return "SURVIVED", "all of " + ", ".join(mutant.tests) + " passed"
    test = first_failure(output)
    if code == 1 and test:
        return "caught", test
    return "BROKEN", f"pytest exit {code}: " + (output.strip().splitlines() or ["no output"])[-1]


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: through the finally that restores the file


def place(mutant: Mutant) -> str:
    """path:line of the mutated text in the (restored) file."""
    first = mutant.old.strip().splitlines()[0]
    lines = (ROOT / mutant.path).read_text().splitlines()
    return f"{mutant.path}:" + next((str(i) for i, text in enumerate(lines, 1) if first in text), "?")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Apply deliberate bugs one at a time and see which tests catch them.")
    p.add_argument("--only", help="comma-separated mutant names")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only.split(",")]
    if args.list or not chosen:
        for m in MUTANTS:
            print(f"{m.name:24} {m.path}: {m.bug}")
        return 0 if chosen else 2
    signal.signal(signal.SIGTERM, _interrupt)
    print("| mutant | place | bug | verdict | caught by | s |\n| --- | --- | --- | --- | --- | ---: |")
    bad = 0
    for m in chosen:
        start = time.perf_counter()
        verdict, detail = try_mutant(m)
        bad += verdict != "caught"
        print(f"| {m.name} | {place(m)} | {m.bug} | {verdict} | {detail} | {time.perf_counter() - start:.0f} |", flush=True)
    print(f"\n{len(chosen) - bad} of {len(chosen)} mutants caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
