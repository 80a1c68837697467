"""Person detection: the first detector (SSDLite), NanoDet from the whole image alone (the
previous default) and NanoDet with every pass (the default) side by side.

Detectors are named ``kind`` (every pass of ``cliffhmr.perception.detect.PASSES``) or
``kind:passes`` (``none``, or passes joined by ``+``: ``nanodet:flip+tiles``). Two sets of
images, every detector run on every image in one run:

* real: the frames and photos of ``benchmarks/fixtures/detection/boxes.json`` (portrait frames
  of a four-camera lab clip with bystanders, a landscape outdoor clip, the bundled photos), with
  every person's box drawn by eye. Sources and licences: that folder's README.
* composites: the default body model (Anny) posed from the held-out motion-capture clips,
  rendered into real CC0 / public-domain backgrounds (``fixtures/detection/backgrounds/``), in
  landscape (640x360) and portrait (360x640) frames, its long side 5%-100% of the frame height
  (log-uniform), anywhere in the frame, in four kinds: ``upright`` (any heading),
  ``behind`` (back to the camera), ``lying`` (body across the image) and ``sitting``
  (hips and knees bent), dressed by colour (skin, shirt, trousers or shorts, shoes; the mesh
  split by skinning weights). One person per image; the true box is the rendered silhouette's
  extent.

A detection is a hit when its IoU with a still unmatched true box is at least 0.5 (greedy, best
score first); a detection over an ``ignore`` region (tiny far figures) counts as nothing; every
other detection is a false positive. Reported per detector: recall, false positives per image
(real set; and on the composites, whose backgrounds hold no people), recall by size and kind,
and the time per image of detection, and of detection + keypoints on everyone found
(``--keypoints``: BlazePose with and without MoveNet's left/right check), the detectors interleaved. Goal (issue 10): recall >= 95% on the real set with at
most 0.1 false positives per image, and >= 90% on composites taller than 10% of the frame.

    .venv/bin/python benchmarks/detection.py --composites 160 --keypoints --out benchmarks/results

Writes ``detection.json`` and ``detection.md`` in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this tree's cliffhmr, also when another checkout is pip-installed
    sys.path.insert(0, str(ROOT))
from cliffhmr.geometry.boxes import box_iou  # noqa: E402  (after the path above)

FIXTURE = ROOT / "benchmarks" / "fixtures" / "detection"
KINDS = ("upright", "behind", "lying", "sitting")
SIZE_BINS = ((0.05, 0.10), (0.10, 0.25), (0.25, 0.50), (0.50, 1.01))
IOU_HIT = 0.5


def match(dets: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Greedy matching, best detection score first. Returns (hit per true box, false positives)."""
    truth = np.asarray(truth, float).reshape(-1, 4)
    ignore = np.zeros((0, 4)) if ignore is None else np.asarray(ignore, float).reshape(-1, 4)
    hit = np.zeros(len(truth), bool)
    fp = 0
    order = np.argsort(-dets[:, 4], kind="stable") if len(dets) else []
    for i in order:
        d = dets[i : i + 1, :4].astype(float)
        ious = box_iou(d, truth)[0]
        ious[hit] = -1
        if len(ious) and ious.max() >= IOU_HIT:
            hit[int(ious.argmax())] = True
        elif len(ignore) and box_iou(d, ignore).max() >= 0.3:
            continue
        else:
            fp += 1
    return hit, fp


def load_real() -> list[dict]:
    from PIL import Image

    spec = json.loads((FIXTURE / "boxes.json").read_text())
    out = []
    for e in spec["images"]:
        image = np.asarray(Image.open(ROOT / e["file"]).convert("RGB"))
        out.append({"name": e["file"], "image": image, "truth": np.array(e["people"], float).reshape(-1, 4),
                    "ignore": np.array(e["ignore"], float).reshape(-1, 4)})
    return out


def backgrounds() -> list[np.ndarray]:
    from PIL import Image

    files = sorted((FIXTURE / "backgrounds").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no backgrounds in {FIXTURE / 'backgrounds'}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def cover(bg: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of `bg` with the frame's aspect ratio, resized to (height, width)."""
    from PIL import Image

    h, w = bg.shape[:2]
    s = max(width / w, height / h) * rng.uniform(1.0, 1.4)
    cw, ch = min(w, round(width / s)), min(h, round(height / s))
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    crop = Image.fromarray(bg[y0 : y0 + ch, x0 : x0 + cw])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((width, height), Image.BILINEAR))


def _pose(body, poses, kind: str, rng: np.random.Generator):
    """(1, J, 3, 3) local rotations for one person of `kind`, root in the camera frame."""
    import torch

    from cliffhmr.geometry.rotation import axis_angle_to_rotmat
    from cliffhmr.body import FACE_CAMERA

    aa = poses[int(rng.integers(len(poses)))].clone()[None]
    names = body.joint_names
    aa[0, 0] = 0  # the capture's own root tilt is replaced: the kind decides the orientation
    if kind == "sitting":
        for side in ("L", "R"):
            bend = math.pi / 2 * rng.uniform(0.8, 1.05)
            aa[0, names.index(f"upperleg01.{side}")] = torch.tensor([-bend, 0.0, 0.0])
            aa[0, names.index(f"lowerleg01.{side}")] = torch.tensor([bend * rng.uniform(0.85, 1.1), 0.0, 0.0])
    R = axis_angle_to_rotmat(aa)
    heading = rng.uniform(150, 210) if kind == "behind" else rng.uniform(-180, 180)
    yaw = axis_angle_to_rotmat(torch.tensor([[0.0, math.radians(heading), 0.0]]))[0]
    root = FACE_CAMERA @ yaw
    if kind == "lying":  # turned about the optical axis: the body lies across the image
        roll = math.radians(rng.choice([-1, 1]) * rng.uniform(70, 110))
        root = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, roll]]))[0] @ root
    pitch = axis_angle_to_rotmat(torch.tensor([[math.radians(rng.uniform(-15, 15)), 0.0, 0.0]]))[0]
    R[0, 0] = pitch @ root
    return R


SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30))
_SKIN_JOINTS = ("head", "neck01", "lowerarm01", "wrist")
_SHIRT_JOINTS = ("spine04", "spine02", "spine01", "clavicle", "upperarm01")
_SHOE_JOINTS = ("foot",)


def clothing_parts(body) -> dict[str, np.ndarray]:
    """Faces of the body mesh split into skin / shirt / trousers / shoes / shins by the joint
    that moves each face's first vertex most (the skinning weights), so a rendered person wears
    clothes rather than being one flat colour."""
    owner = body.weights.argmax(1).cpu().numpy()
    names = [n.split(".")[0] for n in body.joint_names]
    group = np.array(["trousers"] * len(names), dtype=object)
    for j, n in enumerate(names):
        if n in _SKIN_JOINTS:
            group[j] = "skin"
        elif n in _SHIRT_JOINTS:
            group[j] = "shirt"
        elif n in _SHOE_JOINTS:
            group[j] = "shoes"
        elif n == "lowerleg01":
            group[j] = "shins"
    faces = body.faces.cpu().numpy()
    face_group = group[owner[faces[:, 0]]]
    return {g: faces[face_group == g] for g in ("skin", "shirt", "trousers", "shoes", "shins")}


def make_composites(n: int, seed: int = 0) -> list[dict]:
    """`n` images of one rendered person each (see the module docstring)."""
    import torch

    from cliffhmr.body import load_body_model
    from cliffhmr.inference.render import render_overlay
    from cliffhmr.synthetic.scenes import load_mocap_poses

    rng = np.random.default_rng(seed)
    body = load_body_model(None)
    poses = load_mocap_poses("test")
    scenery = backgrounds()
    parts = clothing_parts(body)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        portrait = (i // len(KINDS)) % 2 == 1
        width, height = (360, 640) if portrait else (640, 360)
        bg = cover(scenery[int(rng.integers(len(scenery)))], width, height, rng)
        with torch.no_grad():
            posed = body(_pose(body, poses, kind, rng), torch.from_numpy(rng.standard_normal((1, body.num_betas)) * 0.5).float())
        verts, keypoints = posed.vertices[0].double(), posed.keypoints[0].double()
        centre = verts.mean(0)
        verts, keypoints = verts - centre, keypoints - centre
        f = width / 2 / math.tan(math.radians(rng.uniform(50, 70)) / 2)
        # Depth so that the long side of the person's box is the drawn fraction of the frame height
        # (at most what the frame can hold), then a random position that keeps the box inside.
        target = math.exp(rng.uniform(math.log(0.05), math.log(1.0))) * height
        z = 10.0
        for _ in range(3):  # perspective: a few fixed-point steps
            p = verts[:, :2] / (verts[:, 2:] + z) * f
            ext = (p.max(0).values - p.min(0).values).numpy()
            fit = min(target / ext.max(), 0.98 * width / ext[0], 0.98 * height / ext[1])
            z = (z + float(verts[:, 2].mean())) * (1 / fit) - float(verts[:, 2].mean())
        p = (verts[:, :2] / (verts[:, 2:] + z) * f).numpy()
        lo, hi = p.min(0), p.max(0)
        ox = rng.uniform(-lo[0], width - hi[0]) if hi[0] - lo[0] < width else (width - hi[0] - lo[0]) / 2
        oy = rng.uniform(-lo[1], height - hi[1]) if hi[1] - lo[1] < height else (height - hi[1] - lo[1]) / 2
        cam = verts.clone()
        cam[:, 2] += z
        skin = SKIN[int(rng.integers(len(SKIN)))]
        shirt = tuple(int(c) for c in rng.integers(20, 235, 3))
        trousers = tuple(int(c) for c in rng.integers(15, 150, 3))
        shoes = tuple(int(c) for c in rng.integers(10, 80, 3))
        colours = {"skin": skin, "shirt": shirt, "trousers": trousers, "shoes": shoes,
                   "shins": skin if rng.random() < 0.3 else trousers}  # shorts or long trousers
        v = cam.numpy()
        img = render_overlay(bg, [v] * len(parts), list(parts.values()), f, f, ox, oy,
                             colors=[colours[k] for k in parts], alpha=1.0)
        mask = (img != bg).any(-1)
        rows, cols = np.nonzero(mask)
        if not len(rows):
            continue
        box = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], float)
        size = max(box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]) / height
        kp = keypoints.numpy()
        kp2d = kp[:, :2] / (kp[:, 2:] + z) * f + np.array([ox, oy])  # COCO-17 where the renderer put them
        out.append({"name": f"composite_{i:03d}", "image": img, "truth": box, "ignore": np.zeros((0, 4)), "keypoints": kp2d,
                    "kind": kind, "frame": "portrait" if portrait else "landscape", "size": float(size),
                    "height_frac": float((box[0, 3] - box[0, 1]) / height)})
    return out


def evaluate(detector, items: list[dict]) -> dict:
    """Run `detector` on every item: per-image rows and totals."""
    rows = []
    for it in items:
        dets = detector(it["image"])
        hit, fp = match(dets, it["truth"], it["ignore"])
        rows.append({"name": it["name"], "people": len(hit), "found": int(hit.sum()), "false_positives": fp,
                     "hits": hit.tolist(), **{k: it[k] for k in ("kind", "frame", "size", "height_frac") if k in it}})
    people = sum(r["people"] for r in rows)
    found = sum(r["found"] for r in rows)
    fps = sum(r["false_positives"] for r in rows)
    return {"images": len(rows), "people": people, "found": found, "recall": found / max(people, 1),
            "false_positives": fps, "fp_per_image": fps / max(len(rows), 1),
            "rows": rows}


def time_stages(dets: dict, items: list[dict], keypoints: bool, repeats: int = 3) -> dict:
    """Per-image times of each detector (and of the keypoint stage on all the people it found:
    BlazePose with MoveNet's left/right check, the default, and BlazePose alone), the detectors
    and stages interleaved image by image so that load from other work on the machine hits
    them alike. Returns, per detector, the median detection time, the median keypoint times and
    the mean of detection + keypoints per image (ms)."""
    poses = {}
    if keypoints:
        from cliffhmr.perception.blazepose import PoseEstimator

        poses = {"": PoseEstimator(), "_blazepose_alone": PoseEstimator(check_left_right=False)}
    boxes = {k: [d(it["image"]) for it in items] for k, d in dets.items()}  # warm-up, and the boxes
    for pose in poses.values():
        pose(items[0]["image"], np.array([[0, 0, items[0]["image"].shape[1], items[0]["image"].shape[0]]], float))
    det_t = {k: [] for k in dets}
    kp_t = {(k, v): [] for k in dets for v in poses}
    for _ in range(repeats):
        for i, it in enumerate(items):
            for k, d in dets.items():
                t = time.perf_counter()
                d(it["image"])
                det_t[k].append(time.perf_counter() - t)
                for v, pose in poses.items():
                    t = time.perf_counter()
                    if len(boxes[k][i]):
                        pose(it["image"], boxes[k][i][:, :4])
                    kp_t[k, v].append(time.perf_counter() - t)
    out = {}
    for k in dets:
        out[k] = {"detection_median_ms": 1000 * float(np.median(det_t[k])),
                  "people_found": int(sum(len(b) for b in boxes[k]))}
        for v in poses:
            out[k][f"keypoints{v}_median_ms"] = 1000 * float(np.median(kp_t[k, v]))
            out[k][f"detection_plus_keypoints{v}_mean_ms"] = 1000 * float(np.mean(np.add(det_t[k], kp_t[k, v])))
            out[k][f"per_person_found{v}_ms"] = out[k][f"detection_plus_keypoints{v}_mean_ms"] * len(items) / max(out[k]["people_found"], 1)
    return out


def composite_breakdown(res: dict) -> dict:
    rows = res["rows"]

    def rec(sel):
        sel = list(sel)
        return {"n": len(sel), "recall": (sum(r["found"] for r in sel) / len(sel)) if sel else None}

    out = {"taller_than_10pct": rec(r for r in rows if r["size"] >= 0.10)}
    for lo, hi in SIZE_BINS:
        out[f"size_{lo:.2f}-{min(hi, 1.0):.2f}"] = rec(r for r in rows if lo <= r["size"] < hi)
    for k in KINDS:
        out[f"kind_{k}"] = rec(r for r in rows if r["kind"] == k and r["size"] >= 0.10)
    for fr in ("landscape", "portrait"):
        out[f"frame_{fr}"] = rec(r for r in rows if r["frame"] == fr and r["size"] >= 0.10)
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report_md(report: dict) -> str:
    names = list(report["detectors"])
    lines = ["# Person detection: " + " vs ".join(names), "", f"Command: `{report['command']}`", ""]
    lines += ["| set | metric | " + " | ".join(names) + " |", "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    real = {n: report["detectors"][n]["real"] for n in names}
    comp = {n: report["detectors"][n]["composites"] for n in names}
    first = real[names[0]]
    lines.append(f"| real ({first['images']} images, {first['people']} people) | recall | "
                 + " | ".join(f"{_pct(real[n]['recall'])} ({real[n]['found']}/{real[n]['people']})" for n in names) + " |")
    lines.append("| real | false positives per image | "
                 + " | ".join(f"{real[n]['fp_per_image']:.2f} ({real[n]['false_positives']})" for n in names) + " |")
    if comp[names[0]]:
        c0 = comp[names[0]]
        lines.append(f"| composites ({c0['images']}) | recall, all sizes | " + " | ".join(_pct(comp[n]["recall"]) for n in names) + " |")
        for key in c0["breakdown"]:
            lines.append(f"| composites | recall {key.replace('_', ' ')} (n={c0['breakdown'][key]['n']}) | "
                         + " | ".join(_pct(comp[n]["breakdown"][key]["recall"]) for n in names) + " |")
        lines.append("| composites | false positives per image | " + " | ".join(f"{comp[n]['fp_per_image']:.2f}" for n in names) + " |")
    tm = report["timing"]
    lines.append("| real | median detection time per image (ms) | " + " | ".join(f"{tm[n]['detection_median_ms']:.0f}" for n in names) + " |")
    for v, what in (("", "BlazePose + MoveNet check, the default"), ("_blazepose_alone", "BlazePose alone")):
        if f"keypoints{v}_median_ms" not in tm[names[0]]:
            continue
        lines.append(f"| real | median keypoint time per image (ms; {what}, on every person found) | "
                     + " | ".join(f"{tm[n][f'keypoints{v}_median_ms']:.0f}" for n in names) + " |")
        lines.append(f"| real | mean detection + keypoints per image (ms; {what}) | "
                     + " | ".join(f"{tm[n][f'detection_plus_keypoints{v}_mean_ms']:.0f}" for n in names) + " |")
        lines.append(f"| real | detection + keypoints per person found (ms; {what}) | "
                     + " | ".join(f"{tm[n][f'per_person_found{v}_ms']:.0f}" for n in names) + " |")
    lines.append("| real | people found (boxes returned, all images) | " + " | ".join(str(tm[n]["people_found"]) for n in names) + " |")
    lines += ["", "Real images, people found / people (false positives):", "",
              "| image | " + " | ".join(names) + " |", "| --- | " + " | ".join("---" for _ in names) + " |"]
    for i, row in enumerate(real[names[0]]["rows"]):
        cells = [f"{real[n]['rows'][i]['found']}/{row['people']} ({real[n]['rows'][i]['false_positives']})" for n in names]
        lines.append(f"| {Path(row['name']).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--composites", type=int, default=160, help="number of composite images (0: real set only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", default="ssdlite:none,nanodet:none,nanodet",
                    help="comma-separated kind[:passes] (passes: none, or joined by +; default every pass)")
    ap.add_argument("--keypoints", action="store_true", help="also time the keypoint stage on each detector's boxes")
    ap.add_argument("--repeats", type=int, default=3, help="timing passes over the real images")
    ap.add_argument("--out", type=Path, default=None, help="folder for detection.json / detection.md")
    args = ap.parse_args(argv)
    import torch

    from cliffhmr.perception.detect import PASSES, PersonDetector

    torch.set_num_threads(1)
    real = load_real()
    comps = make_composites(args.composites, args.seed) if args.composites else []
    report = {"command": "python benchmarks/detection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "iou_hit": IOU_HIT, "detectors": {}}
    dets = {}
    for name in args.detectors.split(","):
        kind, _, passes = name.partition(":")
        det = PersonDetector(kind=kind, passes=PASSES if not passes else () if passes == "none" else passes.split("+"))
        dets[name] = det
        r = evaluate(det, real)
        c = evaluate(det, comps) if comps else None
        if c:
            c["breakdown"] = composite_breakdown(c)
        report["detectors"][name] = {"threshold": det.score_threshold, "model": det.model_path.name, "passes": list(det.passes),
                                     "real": r, "composites": c}
        print(f"{name}: real recall {_pct(r['recall'])} ({r['found']}/{r['people']}), "
              f"FP/image {r['fp_per_image']:.2f}"
              + (f"; composites >10% recall {_pct(c['breakdown']['taller_than_10pct']['recall'])}, all {_pct(c['recall'])}, "
                 f"FP/image {c['fp_per_image']:.2f}" if c else ""), flush=True)
    report["timing"] = time_stages(dets, real, keypoints=args.keypoints, repeats=args.repeats)
    md = report_md(report)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "detection.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out / "detection.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
