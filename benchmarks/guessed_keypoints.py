"""Limb keypoints guessed for people the frame cuts: what `keypoints.unconfirmed_missing` marks
missing, and whether those keypoints were wrong.

BlazePose places limbs it cannot see inside the image, at times confidently (Grace Hopper's wrist
on the flag beside her shoulder, at 0.88). For a person whose box reaches the image border, a
limb keypoint that MoveNet neither sees (score < 0.15) nor places within a quarter of the box's
longer side is marked missing. Three sets, BlazePose's confident keypoints (>= 0.5, after the
left/right check) counted:

* real: the detection benchmark's real images (`fixtures/detection/`, people found by the
  default detector) and the bundled photos; no keypoint truth, so the keypoints marked missing
  are listed, to be looked at;
* composites, whole: the detection benchmark's rendered people (held-out captured poses, true
  joints known) taller than 10% of the frame;
* composites, cut: the same images cut just below the hips (lying people left out), so that the
  legs are outside the frame.

For the composites: a keypoint is wrong when it lies more than 0.1 x the box's longer side from
the true joint.

    .venv/bin/python benchmarks/guessed_keypoints.py --composites 160
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):  # this tree's cliffhmr, also when another checkout is pip-installed
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from cliffhmr.perception import blazepose  # noqa: E402
from cliffhmr.perception.detect import PersonDetector  # noqa: E402
from cliffhmr.perception.keypoints import COCO17_NAMES, LIMBS  # noqa: E402

WRONG = 0.1  # share of the box's longer side


def readings(estimator, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose's keypoints before and after the rule (left/right checked in both)."""
    rule = blazepose.unconfirmed_missing
    blazepose.unconfirmed_missing = lambda kp, *args, **kwargs: kp
    try:
        before = estimator(image, boxes).coco
    finally:
        blazepose.unconfirmed_missing = rule
    return before, estimator(image, boxes).coco


def real_rows(estimator) -> tuple[int, list[str]]:
    detector = PersonDetector()
    files = sorted((ROOT / "benchmarks" / "fixtures" / "detection").glob("*.jpg")) + sorted((ROOT / "examples").glob("*.jpg"))
    confident, dropped = 0, []
    for f in files:
        image = np.asarray(Image.open(f).convert("RGB"))
        boxes = detector(image)
        before, after = readings(estimator, image, boxes)
        confident += int((before[..., 2] >= 0.5).sum())
        for i, j in zip(*np.nonzero((before[..., 2] >= 0.5) & (after[..., 2] < 0.5))):
            dropped.append(f"{f.name} person {i}: {COCO17_NAMES[j]} ({before[i, j, 2]:.2f})")
    return confident, dropped


def composite_counts(estimator, n: int, seed: int) -> dict[str, np.ndarray]:
    """Per set: [confident keypoints, of them wrong, marked missing, of those wrong]."""
    from detection import make_composites

    counts = {"whole": np.zeros(4, int), "cut": np.zeros(4, int)}
    for item in make_composites(n, seed):
        if item["size"] < 0.10:
            continue
        for case in counts:
            image, box, truth = item["image"], item["truth"].copy(), item["keypoints"]
            if case == "cut":
                hips, top = truth[11:13, 1].mean(), box[0, 1]
                bottom = int(hips + 0.1 * (hips - top))
                if item["kind"] == "lying" or bottom >= image.shape[0] or hips - top < 40:
                    continue
                image, box[0, 3] = image[:bottom].copy(), min(box[0, 3], bottom)
            before, after = readings(estimator, image, box)
            size = max(box[0, 2] - box[0, 0], box[0, 3] - box[0, 1])
            confident = before[0, :, 2] >= 0.5
            wrong = np.linalg.norm(before[0, :, :2] - truth, axis=1) > WRONG * size
            dropped = confident & (after[0, :, 2] < 0.5)
            counts[case] += [confident.sum(), (confident & wrong).sum(), dropped.sum(), (dropped & wrong).sum()]
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--composites", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    estimator = blazepose.PoseEstimator()
    print(f"limb keypoints: {', '.join(COCO17_NAMES[j] for j in LIMBS)}\n")
    print("| set | confident keypoints | of them wrong | marked missing | of those wrong |\n| --- | --- | --- | --- | --- |")
    confident, dropped = real_rows(estimator)
    print(f"| real images | {confident} | (no truth) | {len(dropped)} | (listed below) |")
    if a.composites:
        for case, (c, w, d, dw) in composite_counts(estimator, a.composites, a.seed).items():
            print(f"| composites, {case} | {c} | {w} | {d} | {dw} |")
    print("\nMarked missing on the real images:\n" + "\n".join(f"- {d}" for d in dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
