"""Whole-body left/right mirror errors of the keypoint stage on real video: BlazePose alone, with
MoveNet's reading as a check in each frame (`PoseEstimator()`'s default, what the default
path runs on photos), fixed along the track (`cliffhmr.perception.leftright.consistent_left_right`),
and both.

The videos: the pose2sim demo's single-person clip, one man on a force plate filmed by four
portrait cameras (`Pose2Sim/Demo_SinglePerson/videos/cam01-04.mp4` in the PyPI wheel
`pose2sim==0.10.49`, BSD-3-Clause)::

    pip download --no-deps pose2sim==0.10.49 -d /tmp/p2s && unzip -q /tmp/p2s/*.whl -d /tmp/p2s/x
    .venv/bin/python benchmarks/leftright.py --videos /tmp/p2s/x/Pose2Sim/Demo_SinglePerson/videos \\
        --md benchmarks/results/leftright.md

Truth, checked by eye on every view: he faces cameras 1 and 2 and turns his back to cameras 3
and 4 throughout. Facing the camera, a body's left shoulder and hip are image-right of its
right ones; from behind, image-left (he stays upright and never side-on enough for this to
be in doubt). A frame is mirrored when the keypoints say the opposite. The person is the
detector's largest box in each frame, and a view's frames form one track.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from cliffhmr.perception.blazepose import PoseEstimator
from cliffhmr.perception.detect import PersonDetector
from cliffhmr.perception.leftright import consistent_left_right, mirrored_against, swap_left_right

FACING = {"cam01": +1, "cam02": +1, "cam03": -1, "cam04": -1}  # +1 facing the camera, -1 back to it


def read_tracks(video: Path, detector: PersonDetector, poses: list[PoseEstimator]) -> list[np.ndarray]:
    """Per pose estimator, (T, 17, 3) keypoints of the largest person in every frame (zeros where
    nobody is found); all estimators see the same boxes."""
    import av

    rows = [[] for _ in poses]
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            boxes = detector(image)
            if not len(boxes):
                for r in rows:
                    r.append(np.zeros((17, 3), np.float32))
                continue
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            for r, pose in zip(rows, poses):
                r.append(pose(image, boxes[[int(area.argmax())]]).coco[0])
    return [np.stack(r) for r in rows]


def mirrored(track: np.ndarray, facing: int) -> np.ndarray:
    """(T,) bool: the labels say the body faces the other way (frames without a person: False)."""
    side = (track[:, 5, 0] - track[:, 6, 0]) + (track[:, 11, 0] - track[:, 12, 0])
    seen = (track[:, [5, 6, 11, 12], 2] >= 0.5).all(-1)
    return seen & (np.sign(side) == -facing)


def composite_rates(n: int, seed: int, alone: PoseEstimator, checked: PoseEstimator) -> list[str]:
    """Markdown rows: per kind of composite (the detection benchmark's rendered people in held-out
    captured poses, seen from every direction), people read mirrored by each keypoint stage.
    Mirrored: swapping left and right brings the keypoints within half their distance to the
    true projected joints (`mirrored_against` with the truth as reference). The keypoint stage
    gets the true box; people under 10% of the frame height are left out."""
    from detection import KINDS, make_composites

    counts = {k: np.zeros(3, int) for k in (*KINDS, "all")}
    for item in make_composites(n, seed):
        if item["size"] < 0.10:
            continue
        truth = np.concatenate([item["keypoints"], np.ones((17, 1))], 1)[None]
        box = item["truth"]
        row = [1, *(int(mirrored_against(pose(item["image"], box).coco, truth)[0]) for pose in (alone, checked))]
        counts[item["kind"]] += row
        counts["all"] += row
    return [f"| composites, {k} | {c[0]} | {c[1]} ({100 * c[1] / max(c[0], 1):.1f}%) | {c[2]} ({100 * c[2] / max(c[0], 1):.1f}%) |"
            for k, c in counts.items()]


def _along_track(track: np.ndarray) -> np.ndarray:
    swap = consistent_left_right(track)
    return np.where(swap[:, None, None], swap_left_right(track), track)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=Path, required=True, help="folder with cam01.mp4 ... cam04.mp4")
    p.add_argument("--md", type=Path, help="write the table here too")
    p.add_argument("--composites", type=int, default=0, help="also measure on this many rendered people (benchmarks/detection.py's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the composites")
    p.add_argument("--save-track", nargs=2, metavar=("CAM", "NPZ"), help="save the raw track of camera CAM (1-4)")
    a = p.parse_args(argv)
    detector, alone, checked = PersonDetector(passes=()), PoseEstimator(check_left_right=False), PoseEstimator()  # passes=(): as video frames are read
    lines = ["| view | facing | frames | person found | BlazePose alone | + MoveNet check (each frame) | + track | check and track |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    total = np.zeros(5, int)
    start = time.perf_counter()
    for cam, facing in FACING.items():
        raw, single = read_tracks(a.videos / f"{cam}.mp4", detector, [alone, checked])
        if a.save_track and f"cam0{a.save_track[0]}" == cam:
            np.savez_compressed(a.save_track[1], keypoints=raw.astype(np.float32))
        counts = [int((raw[..., 2] >= 0.5).any(-1).sum())]
        for track in (raw, single, *(_along_track(t) for t in (raw, single))):
            counts.append(int(mirrored(track, facing).sum()))
        total += counts
        lines.append(f"| {cam} | {'camera' if facing > 0 else 'away'} | {len(raw)} | " + " | ".join(map(str, counts)) + " |")
    lines.append(f"| all | | | {total[0]} | " + " | ".join(f"{n} ({100 * n / total[0]:.1f}%)" for n in total[1:]) + " |")
    if a.composites:
        lines += ["", "| people | evaluated | BlazePose alone | + MoveNet check |", "| --- | --- | --- | --- |"]
        lines += composite_rates(a.composites, a.seed, alone, checked)
    table = "\n".join(lines)
    print(table)
    print(f"{time.perf_counter() - start:.0f} s")
    if a.md:
        a.md.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
