"""Full-frame fitting of captured human motion: the fit at a baseline commit (BEFORE) vs the working tree (AFTER).

Each person: a frame drawn at random from the held-out ("test") clips of a mocap file of Anny
poses, its own root tilt kept (people bend, crawl, lie), turned to a random heading, with a
random adult shape, seen by a virtual camera (1920x1080 or 1080x1920, 45-90 degree horizontal
field of view, pelvis at 2-9 m, anywhere in the frame). Three cases per person set:

- full: the whole body inside the image,
- waist: the image's bottom edge near the hips (knees and ankles outside),
- knees: the bottom edge near the knees (ankles outside).

A person whose face and shoulders cannot stay in the image while the cut keypoints leave it
(a far ankle above a near shoulder: climbing, handstands, seen from below) is no half-body
photo: placed without that rule so that the case can still run, they are left out of that
case's metrics, and counted (`excluded`). Keypoints outside the image are missing; the seen ones get pixel noise (1% of the person's
size) and 10% dropouts. BEFORE and AFTER fit the same inputs in one process: BEFORE is the
package extracted from git at `--baseline` and imported as `cliffhmr_before`.

    .venv/bin/python benchmarks/real_motion.py --poses data/mocap/anny_poses.npz \\
        --json benchmarks/results/real_motion.json --md benchmarks/results/real_motion.md

Until the mocap file exists, `--write-standin PATH` writes random poses in its format.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import cliffhmr.body
import cliffhmr.fitting.fit
import cliffhmr.models.initial
from cliffhmr.body import FACE_CAMERA
from cliffhmr.evaluation.metrics import mpjpe, pa_mpjpe
from cliffhmr.geometry.camera import perspective_project
from cliffhmr.geometry.rotation import axis_angle_to_rotmat, geodesic_angle, rotmat_to_axis_angle
from cliffhmr.perception.crop import box_to_center_scale
from cliffhmr.synthetic.scenes import sample_rotmats

REPO = Path(__file__).resolve().parents[1]
CASES = ("full", "waist", "knees")
SIDES = ("before", "after")
HIPS, KNEES, ANKLES = (11, 12), (13, 14), (15, 16)
# Per cut case: keypoints that must be outside (below the bottom edge), and the pair whose
# mean sits at the bottom edge when the cut fraction is 1 (so < 1 keeps it in, > 1 cuts it).
CUTS = {"waist": (KNEES + ANKLES, HIPS), "knees": (ANKLES, KNEES)}
CUT_FRACTION = (0.6, 1.3)
UPPER = tuple(range(7))  # face and shoulders: kept inside the image in the cut cases
METRICS = ("mpjpe", "pa_mpjpe", "mpjpe_seen", "mpjpe_hidden", "root_deg", "depth_pct", "height_pct", "within_limits")


# --------------------------------------------------------------------------- the two code versions


def load_sides(baseline: str, tmp: Path) -> dict[str, SimpleNamespace]:
    """{"before": modules of `baseline` imported from tmp as cliffhmr_before, "after": this tree's}.

    tmp must outlive the run: the baseline reads its regressor weights from there lazily.
    """
    archive = subprocess.run(["git", "archive", baseline, "cliffhmr"], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / "cliffhmr").rename(tmp / "cliffhmr_before")
    for name in [m for m in sys.modules if m == "cliffhmr_before" or m.startswith("cliffhmr_before.")]:
        del sys.modules[name]  # an earlier run in this process imported another copy
    # Where the fit, the initial estimate and the body live: since 1dbb657, and before it.
    layouts = ({"fit": "fitting.fit", "regressor": "models.initial", "body": "body"},
               {"fit": "fit", "regressor": "regressor", "body": "body"})  # fmt: skip
    layout = next(lay for lay in layouts if (tmp / "cliffhmr_before" / f"{lay['fit'].replace('.', '/')}.py").is_file())
    sys.path.insert(0, str(tmp))
    try:
        before = SimpleNamespace(**{k: importlib.import_module(f"cliffhmr_before.{m}") for k, m in layout.items()})
    finally:
        sys.path.remove(str(tmp))
    after = SimpleNamespace(fit=cliffhmr.fitting.fit, regressor=cliffhmr.models.initial, body=cliffhmr.body)
    return {"before": before, "after": after}


def within_limits_or_none():
    """The joint-limit check of the working tree's prior (`PosePrior.within_limits`), or None without one."""
    from cliffhmr.body.anny import ANNY_JOINT_NAMES
    from cliffhmr.body.prior import load_pose_prior

    prior = load_pose_prior(ANNY_JOINT_NAMES)
    return None if prior is None else prior.within_limits


# --------------------------------------------------------------------------- poses and people


def write_standin(path: Path, n: int = 2000, seed: int = 0) -> None:
    """Random poses (synthetic.sample_rotmats) in the mocap file's format, for until it exists."""
    body = cliffhmr.body.load_body_model(None)
    gen = torch.Generator().manual_seed(seed)
    R = sample_rotmats(body, n, gen)
    R[:, 0] = FACE_CAMERA.T @ R[:, 0]  # back to the canonical frame, as the mocap file stores it
    clips = 10
    clip = np.arange(n) * clips // n
    np.savez(
        path, pose=rotmat_to_axis_angle(R).numpy().astype(np.float32), clip=clip,
        clip_names=np.array([f"standin_{i}" for i in range(clips)]),
        split=np.array(["test" if i % 2 else "train" for i in range(clips)]),
        source=np.array(["synthetic.sample_rotmats"] * clips), fps=np.full(clips, 30.0),
        frame=np.arange(n) - np.searchsorted(clip, clip),
    )  # fmt: skip


def draw_poses(path: Path, n: int, gen: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """n frames of the test clips, drawn at random -> canonical-frame rotmats (n, 20, 3, 3), frame indices (n,)."""
    data = np.load(path)
    test = np.flatnonzero(data["split"] == "test")
    rows = np.flatnonzero(np.isin(data["clip"], test))
    if not len(rows):
        raise SystemExit(f"{path}: no frames in clips with split == 'test'")
    pick = torch.randperm(len(rows), generator=gen)[:n] if len(rows) >= n else torch.randint(len(rows), (n,), generator=gen)
    idx = rows[pick.numpy()]
    return axis_angle_to_rotmat(torch.from_numpy(data["pose"][idx]).float()), idx


def sample_betas(body, n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 6) offsets from body.phenotype_mean: adults of normal build, any gender."""
    betas = (torch.randn(n, body.num_betas, generator=gen) * 0.1).clamp(-0.25, 0.25)
    labels = body.phenotype_labels
    betas[:, labels.index("gender")] = torch.rand(n, generator=gen) - body.phenotype_mean[labels.index("gender")]
    betas[:, labels.index("age")] = torch.rand(n, generator=gen) * 0.15 - 0.05
    return betas


def rest_height(body, betas: torch.Tensor) -> torch.Tensor:
    """(n,) metres: vertical extent of the rest mesh at these betas (n, 6)."""
    eye = torch.eye(3).expand(len(betas), body.num_joints, 3, 3)
    with torch.no_grad():
        y = body(eye, betas).vertices[..., 1]
    return y.amax(1) - y.amin(1)


def make_people(body, poses: Path, n: int, seed: int) -> dict:
    """The person set shared by all cases: pose, shape and camera, with no placement yet."""
    gen = torch.Generator().manual_seed(seed)
    R, rows = draw_poses(poses, n, gen)
    yaw = (torch.rand(n, generator=gen) * 2 - 1) * math.pi
    heading = axis_angle_to_rotmat(torch.stack((torch.zeros(n), yaw, torch.zeros(n)), -1))
    R[:, 0] = FACE_CAMERA @ heading @ R[:, 0]
    betas = sample_betas(body, n, gen)
    portrait = torch.rand(n, generator=gen) < 0.3
    width = torch.where(portrait, 1080.0, 1920.0)
    height = torch.where(portrait, 1920.0, 1080.0)
    # 45-90 degrees across the long side: a portrait frame is the same camera turned upright
    # (across its short side, that would make vertical fields of view of up to 121 degrees).
    fov = torch.deg2rad(45 + torch.rand(n, generator=gen) * 45)
    with torch.no_grad():
        posed = body(R, betas)
    return {
        "rotmat": R, "betas": betas, "rows": rows, "yaw": yaw, "width": width, "height": height,
        "focal": torch.maximum(width, height) / 2 / torch.tan(fov / 2), "depth": 2 + torch.rand(n, generator=gen) * 7,
        "where": torch.rand(n, 2, generator=gen), "cut": torch.rand(n, generator=gen),
        "vertices": posed.vertices, "keypoints": posed.keypoints, "gt_height": rest_height(body, betas),
    }  # fmt: skip


def _interval(points: torch.Tensor, tz: torch.Tensor, f: torch.Tensor, c: torch.Tensor, lo, hi):
    """The exact range of shifts t along one image axis that put every point's pixel in [lo, hi].

    points (n, K, 2): (coordinate along the axis, depth) relative to the pelvis; tz (n,) pelvis
    depth; lo, hi (n,) pixels (+-inf: no bound). u = f (x + t) / (z + tz) + c is linear in t.
    -> lower, upper (n,); empty where lower > upper.
    """
    x, z = points[..., 0], points[..., 1] + tz[:, None]
    need_lo = ((lo - c)[:, None] * z / f[:, None] - x).amax(1)
    need_hi = ((hi - c)[:, None] * z / f[:, None] - x).amin(1)
    return need_lo, need_hi


def place(people: dict, case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3) translations putting each person into their image as the case asks, and (n,) bool:
    placed without keeping face and shoulders in (cut cases only).

    The pelvis depth starts at the sampled one and grows (x1.1) until the placement is possible.
    full: every vertex inside the image. Cut cases: every vertex inside horizontally and below
    the top edge, face and shoulders above the bottom edge, the case's cut keypoints below it
    (by 2 px), the bottom edge at a sampled fraction of the way between them and the reference pair.
    Seen steeply from below the optical axis, a far ankle can project above a near shoulder at
    any depth: such people are placed after 30 tries without the face-and-shoulders rule.
    """
    V, kp = people["vertices"], people["keypoints"]
    f, W, H = people["focal"], people["width"], people["height"]
    n = len(f)
    inf = torch.full((n,), math.inf)
    tz = people["depth"].clone()
    todo = torch.ones(n, dtype=torch.bool)
    tx, ty = torch.zeros(n), torch.zeros(n)
    relaxed = torch.zeros(n, dtype=torch.bool)
    for attempt in range(60):
        x_lo, x_hi = _interval(V[..., [0, 2]], tz, f, W / 2, torch.zeros(n), W)
        if case == "full":
            y_lo, y_hi = _interval(V[..., [1, 2]], tz, f, H / 2, torch.zeros(n), H)
            ty_new = y_lo + people["where"][:, 1] * (y_hi - y_lo)
        else:
            out, ref = CUTS[case]
            top_lo, _ = _interval(V[..., [1, 2]], tz, f, H / 2, torch.zeros(n), inf)
            _, up_hi = _interval(kp[:, UPPER][..., [1, 2]], tz, f, H / 2, -inf, 0.98 * H)
            out_lo, _ = _interval(kp[:, out][..., [1, 2]], tz, f, H / 2, H + 2, inf)
            # The shift that puts the reference pair's mean exactly on the bottom edge.
            ref_pt = kp[:, ref].mean(1, keepdim=True)[..., [1, 2]]
            ref_at, _ = _interval(ref_pt, tz, f, H / 2, H, inf)
            frac = CUT_FRACTION[0] + people["cut"] * (CUT_FRACTION[1] - CUT_FRACTION[0])
            ty_new = torch.maximum(out_lo, out_lo + frac * (ref_at - out_lo))
            y_lo = torch.maximum(top_lo, out_lo)
            if attempt == 30:  # start over from the sampled depth, without the rule
                relaxed = todo.clone()
                tz[relaxed] = people["depth"][relaxed]
                continue
            y_hi = torch.where(relaxed, inf, up_hi)
            ty_new = torch.minimum(torch.maximum(ty_new, y_lo), y_hi)
        ok = (x_lo <= x_hi) & (y_lo <= y_hi)
        fix = todo & ok
        tx[fix] = (x_lo + people["where"][:, 0] * (x_hi - x_lo))[fix]
        ty[fix] = ty_new[fix]
        todo &= ~ok
        if not todo.any():
            break
        tz[todo] *= 1.1
    else:
        raise RuntimeError(f"{case}: {int(todo.sum())} people could not be placed")
    return torch.stack((tx, ty, tz), -1), relaxed


def observe(people: dict, transl: torch.Tensor, gen: torch.Generator, noise: float = 0.01, dropout: float = 0.1) -> dict:
    """What the fit is given: keypoints (n, 17, 3) pixels + confidence, boxes (n, 4); and inside (n, 17) bool."""
    f, W, H = people["focal"], people["width"], people["height"]
    n = len(f)
    kp3d = people["keypoints"] + transl[:, None]
    principal = torch.stack((W / 2, H / 2), -1)
    clean = perspective_project(kp3d, f, principal)
    inside = (clean[..., 0] >= 0) & (clean[..., 0] < W[:, None]) & (clean[..., 1] >= 0) & (clean[..., 1] < H[:, None])
    # Noise scale: the larger side of the whole person's keypoint box, as synthetic.make_scenes,
    # so a person lying down (short box) still gets noise.
    size = (clean.amax(1) - clean.amin(1)).amax(-1)
    noisy = clean + torch.randn(clean.shape, generator=gen) * noise * size[:, None, None]
    conf = 0.3 + 0.7 * torch.rand(n, 17, generator=gen)
    seen = inside & (torch.rand(n, 17, generator=gen) >= dropout)
    conf = torch.where(seen, conf, torch.zeros_like(conf))
    big = torch.finfo(clean.dtype).max
    lo = torch.where(seen[..., None], noisy, torch.full_like(noisy, big)).amin(1)
    hi = torch.where(seen[..., None], noisy, torch.full_like(noisy, -big)).amax(1)
    margin = (hi - lo) * 0.1
    limit = torch.stack((W, H), -1)
    boxes = torch.cat(((lo - margin).clamp_min(0), torch.minimum(hi + margin, limit)), -1)
    return {"keypoints": torch.cat((noisy, conf[..., None]), -1), "boxes": boxes, "inside": inside,
            "principal": principal, "kp3d": kp3d}  # fmt: skip


# --------------------------------------------------------------------------- fitting and metrics


def fit_side(side: SimpleNamespace, body, obs: dict, focal: torch.Tensor, overrides: dict, chunk: int) -> dict:
    """Initial estimate + fit of every person with one side's code, in chunks -> rotmat, betas, transl, keypoints, joints, seconds.

    overrides: FitConfig fields to set, where that side's FitConfig has them (the baseline has no stopping rule)."""
    fields = side.fit.FitConfig.__dataclass_fields__
    config = side.fit.FitConfig(**{k: v for k, v in overrides.items() if k in fields})
    f2 = focal[:, None].expand(-1, 2)
    center, scale = box_to_center_scale(obs["boxes"])
    parts, seconds, steps = [], 0.0, []
    for s in range(0, len(focal), chunk):
        sl = slice(s, s + chunk)
        kp, c = obs["keypoints"][sl], obs["principal"][sl]
        init = side.regressor.initial_estimate(body, kp, center[sl], scale[sl], f2[sl], c)
        start = time.perf_counter()
        fit = side.fit.fit_people(body, kp, f2[sl], c, init, config=config, boxes=obs["boxes"][sl])
        seconds += time.perf_counter() - start
        steps.append(getattr(fit, "iterations", config.iterations))  # the baseline ran every iteration
        parts.append({"rotmat": fit.rotmat, "betas": fit.betas, "transl": fit.transl,
                      "keypoints": fit.body.keypoints, "joints": fit.body.joints})  # fmt: skip
    out = {k: torch.cat([p[k] for p in parts]).detach() for k in parts[0]}
    out["seconds"] = seconds
    out["iterations"] = max(steps)
    return out


def per_sample(pred: dict, gt: dict, inside: torch.Tensor, limits=None) -> dict[str, torch.Tensor]:
    """Per-person metrics of pred vs gt, each (n,); NaN where a metric has nothing to measure.

    pred, gt: keypoints (n, 17, 3), joints (n, 20, 3), rotmat (n, 20, 3, 3), height (n,), camera frame;
    inside (n, 17): the keypoint was inside the image (seen/hidden split).
    """
    mid = lambda x: x - x[:, list(HIPS)].mean(1, keepdim=True)  # noqa: E731
    err = (mid(pred["keypoints"]) - mid(gt["keypoints"])).norm(dim=-1) * 1000
    masked_mean = lambda m: (err * m).sum(1) / m.sum(1).where(m.any(1), torch.tensor(math.nan))  # noqa: E731
    z_fit, z_gt = pred["joints"][:, 0, 2], gt["joints"][:, 0, 2]
    n = len(err)
    # A fit that returned non-finite keypoints counts as failed (NaN metrics, counted in `failed`).
    finite = torch.isfinite(pred["keypoints"]).all(-1).all(-1)
    pa = torch.full((n,), math.nan)
    if finite.any():
        pa[finite] = pa_mpjpe(pred["keypoints"][finite], gt["keypoints"][finite]) * 1000
    return {
        "mpjpe": mpjpe(mid(pred["keypoints"]), mid(gt["keypoints"])) * 1000,
        "pa_mpjpe": pa,
        "failed": (~finite).float(),
        "mpjpe_seen": masked_mean(inside.float()),
        "mpjpe_hidden": masked_mean((~inside).float()),
        "root_deg": torch.rad2deg(geodesic_angle(pred["rotmat"][:, 0], gt["rotmat"][:, 0])),
        "depth_pct": 100 * (z_fit - z_gt) / z_gt,
        "height_pct": 100 * (pred["height"] - gt["height"]) / gt["height"],
        "within_limits": limits(pred["rotmat"]).float() if limits else torch.full((n,), math.nan),
        "n_seen": inside.sum(1).float(),
        "n_hidden": (~inside).sum(1).float(),
    }


def summarise(per: dict[str, torch.Tensor], seconds_per_person: float) -> dict:
    """Means over people (NaN-aware) -> plain floats; None for nothing measured."""
    out = {}
    for k, v in per.items():
        v = v.double()
        m = float(v.nanmean()) if (~v.isnan()).any() else None
        out[k] = m
    d = per["depth_pct"].double()
    out["depth_abs_pct"] = float(d.abs().nanmean())
    out["failed"] = int(per["failed"].sum())
    seen, hidden = out["mpjpe_seen"], out["mpjpe_hidden"]
    out["hidden_over_seen"] = hidden / seen if hidden is not None and seen else None
    out["keypoints_seen"] = int(per["n_seen"].sum())
    out["keypoints_hidden"] = int(per["n_hidden"].sum())
    out["n"] = len(d)
    out["seconds_per_person"] = seconds_per_person
    return out


# --------------------------------------------------------------------------- the run


def run(poses: Path, n: int, seed: int, baseline: str, overrides: dict, chunk: int, render_dir: Path | None = None,
        render_count: int = 3) -> tuple[dict, dict]:  # fmt: skip
    """-> (results for the JSON, per-sample arrays for the npz)."""
    body = cliffhmr.body.load_body_model(None)  # ground truth: the AFTER side's geometry
    people = make_people(body, poses, n, seed)
    limits = within_limits_or_none()
    gt_rot = people["rotmat"]
    results = {"meta": {
        "poses": str(poses), "baseline": baseline, "n": n, "seed": seed, "fit_overrides": overrides, "chunk": chunk,
        "gt_height_m": [float(people["gt_height"].min()), float(people["gt_height"].max())],
        "gt_within_limits": float(limits(gt_rot).float().mean()) if limits else None,
        "portrait_share": float((people["height"] > people["width"]).float().mean()),
    }, "cases": {}}  # fmt: skip
    arrays = {"rows": people["rows"], "betas": people["betas"].numpy(), "rotmat": gt_rot.numpy(),
              "focal": people["focal"].numpy(), "width": people["width"].numpy(), "height": people["height"].numpy(),
              "gt_height": people["gt_height"].numpy()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        sides = load_sides(baseline, Path(tmp))
        bodies = {"before": sides["before"].body.load_body_model(None), "after": body}
        results["meta"]["before_module"] = sides["before"].fit.__file__
        # One small untimed fit per side first, so neither side's timing pays for warm-up.
        warm = observe(people, place(people, "full")[0], torch.Generator().manual_seed(seed))
        warm = {k: v[:4] for k, v in warm.items()}
        for name in SIDES:
            fit_side(sides[name], bodies[name], warm, people["focal"][:4], {"iterations": 2}, chunk)
        for ci, case in enumerate(CASES):
            transl, relaxed = place(people, case)
            obs = observe(people, transl, torch.Generator().manual_seed(seed * 1000 + ci))
            gt = {"keypoints": obs["kp3d"], "joints": None, "rotmat": gt_rot, "height": people["gt_height"]}
            with torch.no_grad():
                gt["joints"] = body(gt_rot, people["betas"], transl).joints
            arrays |= {f"{case}/transl": transl.numpy(), f"{case}/keypoints_2d": obs["keypoints"].numpy(),
                       f"{case}/inside": obs["inside"].numpy(), f"{case}/boxes": obs["boxes"].numpy()}  # fmt: skip
            results["cases"][case] = {"depth_m": [float(transl[:, 2].min()), float(transl[:, 2].max())],
                                      "excluded": int(relaxed.sum())}  # fmt: skip
            arrays[f"{case}/excluded"] = relaxed.numpy()
            fits = {}
            for name in SIDES:
                fit = fit_side(sides[name], bodies[name], obs, people["focal"], overrides, chunk)
                fit["height"] = rest_height(body, fit["betas"])
                per = per_sample(fit, gt, obs["inside"], limits)
                results["cases"][case][name] = summarise({k: v[~relaxed] for k, v in per.items()}, fit["seconds"] / n)
                results["cases"][case][name]["iterations_max"] = fit["iterations"]
                arrays |= {f"{case}/{name}/{k}": v.numpy() for k, v in per.items()}
                arrays |= {f"{case}/{name}/{k}": fit[k].numpy() for k in ("rotmat", "betas", "transl")}
                fits[name] = fit
                print(f"{case} {name}: {results['cases'][case][name]['mpjpe']:.1f} mm, "
                      f"{fit['seconds']:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
            if render_dir is not None:
                render_case(render_dir, case, body, people, transl, obs, fits, render_count)
    return results, arrays


def _fmt(v, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(results: dict) -> str:
    """One row per case, each cell "before / after"."""
    cols = (("MPJPE (mm)", "mpjpe", 1), ("PA-MPJPE (mm)", "pa_mpjpe", 1), ("MPJPE seen (mm)", "mpjpe_seen", 1),
            ("MPJPE hidden (mm)", "mpjpe_hidden", 1), ("hidden / seen", "hidden_over_seen", 2),
            ("root orientation (deg)", "root_deg", 1), ("pelvis depth error (%)", "depth_pct", 1),
            ("abs depth error (%)", "depth_abs_pct", 1), ("height error (%)", "height_pct", 1),
            ("within joint limits", "within_limits", 2), ("fit s / person", "seconds_per_person", 3),
            ("fit steps (most)", "iterations_max", 0))  # fmt: skip
    rows = ["| case | n | " + " | ".join(f"{title} before / after" for title, _, _ in cols) + " |",
            "| --- | --- |" + " --- |" * len(cols)]  # fmt: skip
    for case, r in results["cases"].items():
        b, a = r["before"], r["after"]
        cells = [f"{_fmt(b[k], d)} / {_fmt(a[k], d)}" for _, k, d in cols]
        rows.append(f"| {case} | {a['n']} ({r['excluded']} excluded) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- render check


def render_case(out_dir: Path, case: str, body, people: dict, transl: torch.Tensor, obs: dict, fits: dict, count: int,
                scale: float = 0.35) -> None:  # fmt: skip
    """One PNG per person of the first `count`: per side, GT (blue) and fit (salmon) in the image
    (padded so the parts below a cut stay visible; the real frame is the black rectangle) and seen
    from the camera's right. Red dots: the keypoints the fit was given."""
    from PIL import Image, ImageDraw

    from cliffhmr.inference.render import render_overlay, render_side_view

    out_dir.mkdir(parents=True, exist_ok=True)
    faces = body.faces.numpy()
    colors = [(140, 180, 235), (235, 150, 120)]
    for i in range(min(count, len(transl))):
        f = float(people["focal"][i]) * scale
        W, H = float(people["width"][i]) * scale, float(people["height"][i]) * scale
        pad = int(0.35 * H)
        cw, ch = int(W) + 2 * pad, int(H) + 2 * pad
        cx, cy = W / 2 + pad, H / 2 + pad
        with torch.no_grad():
            gt = body(people["rotmat"][i : i + 1], people["betas"][i : i + 1], transl[i : i + 1]).vertices[0]
        panels = []
        for name in SIDES:
            fit = fits[name]
            with torch.no_grad():
                pred = body(fit["rotmat"][i : i + 1], fit["betas"][i : i + 1], fit["transl"][i : i + 1]).vertices[0]
            canvas = np.full((ch, cw, 3), 235, dtype=np.uint8)
            front = render_overlay(canvas, [gt], faces, f, f, cx, cy, colors=colors[:1])
            front = render_overlay(front, [pred], faces, f, f, cx, cy, colors=colors[1:], alpha=0.5)
            side = render_side_view((ch, cw), [gt, pred], faces, f, f, cx, cy, colors=colors)
            img = Image.fromarray(np.concatenate((front, side), 1))
            draw = ImageDraw.Draw(img)
            draw.rectangle((pad, pad, pad + W, pad + H), outline=(0, 0, 0), width=2)
            for x, y, c in obs["keypoints"][i].tolist():
                if c > 0:
                    u, v = x * scale + pad, y * scale + pad
                    draw.ellipse((u - 3, v - 3, u + 3, v + 3), fill=(220, 30, 30))
            m = fit["transl"][i, 2] / transl[i, 2] - 1
            draw.text((8, 8), f"{case} #{i} {name}: GT blue, fit salmon; pelvis depth {100 * float(m):+.0f}%", fill=(0, 0, 0))
            draw.text((cw + 8, 8), "seen from the camera's right", fill=(0, 0, 0))
            panels.append(np.asarray(img))
        Image.fromarray(np.concatenate(panels, 0)).save(out_dir / f"{case}_{i}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--poses", type=Path, default=REPO / "data" / "mocap" / "anny_poses.npz")
    p.add_argument("--write-standin", type=Path, metavar="PATH", help="write random poses in the mocap format there and stop")
    p.add_argument("--n", type=int, default=256, help="people per case (the same people in every case)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", default="3ca70c3", help="git revision of the BEFORE side")
    p.add_argument("--iterations", type=int, help="fit iterations for both sides (default: each side's FitConfig)")
    p.add_argument("--no-early-stop", action="store_true", help="run every one of the iterations (checks that the stopping rule stops at convergence)")
    p.add_argument("--chunk", type=int, default=32, help="people fitted together")
    p.add_argument("--json", type=Path, help="write the numbers here, and the per-sample arrays next to it (.npz)")
    p.add_argument("--md", type=Path, help="also write the Markdown table here")
    p.add_argument("--render", type=Path, metavar="DIR", help="draw GT vs fitted bodies of a few people per case")
    p.add_argument("--render-count", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the fit is overhead-bound: more threads only contend on a shared CPU
    if args.write_standin:
        write_standin(args.write_standin, seed=args.seed)
        return 0
    if not args.poses.is_file():
        raise SystemExit(f"{args.poses}: no such pose file (make a stand-in with --write-standin PATH)")
    start = time.perf_counter()
    overrides = {} if args.iterations is None else {"iterations": args.iterations}
    if args.no_early_stop:
        overrides["tolerance"] = -math.inf
    results, arrays = run(args.poses, args.n, args.seed, args.baseline, overrides, args.chunk, args.render,
                          args.render_count)  # fmt: skip
    results["meta"]["wall_seconds"] = time.perf_counter() - start
    table = markdown(results)
    print(table)
    meta = results["meta"]
    print(f"\n{args.n} people per case from {args.poses}; GT heights {meta['gt_height_m'][0]:.2f}-{meta['gt_height_m'][1]:.2f} m; "
          f"BEFORE = {args.baseline}; {meta['wall_seconds']:.0f} s in all")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        np.savez_compressed(args.json.with_suffix(".npz"), **arrays)
    if args.md:
        args.md.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
