"""Whole-body left/right mirror errors of the keypoint stage on real video, before and after
`cliffhmr.leftright.consistent_left_right`.

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

from cliffhmr.detect import PersonDetector
from cliffhmr.keypoints import PoseEstimator
from cliffhmr.leftright import consistent_left_right, swap_left_right

FACING = {"cam01": +1, "cam02": +1, "cam03": -1, "cam04": -1}  # +1 facing the camera, -1 back to it


def read_track(video: Path, detector: PersonDetector, pose: PoseEstimator) -> np.ndarray:
    """(T, 17, 3) keypoints of the largest person in every frame (zeros where nobody is found)."""
    import av

    rows = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            boxes = detector(image)
            if not len(boxes):
                rows.append(np.zeros((17, 3), np.float32))
                continue
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            rows.append(pose(image, boxes[[int(area.argmax())]]).coco[0])
    return np.stack(rows)


def mirrored(track: np.ndarray, facing: int) -> np.ndarray:
    """(T,) bool: the labels say the body faces the other way (frames without a person: False)."""
    side = (track[:, 5, 0] - track[:, 6, 0]) + (track[:, 11, 0] - track[:, 12, 0])
    seen = (track[:, [5, 6, 11, 12], 2] >= 0.5).all(-1)
    return seen & (np.sign(side) == -facing)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=Path, required=True, help="folder with cam01.mp4 ... cam04.mp4")
    p.add_argument("--md", type=Path, help="write the table here too")
    p.add_argument("--save-track", nargs=2, metavar=("CAM", "NPZ"), help="save the raw track of camera CAM (1-4)")
    a = p.parse_args(argv)
    detector, pose = PersonDetector(), PoseEstimator()
    lines = ["| view | facing | frames | person found | mirrored before | mirrored after |", "| --- | --- | --- | --- | --- | --- |"]
    total = np.zeros(3, int)
    start = time.perf_counter()
    for cam, facing in FACING.items():
        track = read_track(a.videos / f"{cam}.mp4", detector, pose)
        if a.save_track and f"cam0{a.save_track[0]}" == cam:
            np.savez_compressed(a.save_track[1], keypoints=track.astype(np.float32))
        swap = consistent_left_right(track)
        fixed = np.where(swap[:, None, None], swap_left_right(track), track)
        found = int((track[..., 2] >= 0.5).any(-1).sum())
        before, after = int(mirrored(track, facing).sum()), int(mirrored(fixed, facing).sum())
        total += (found, before, after)
        lines.append(f"| {cam} | {'camera' if facing > 0 else 'away'} | {len(track)} | {found} | {before} | {after} |")
    lines.append(f"| all | | | {total[0]} | {total[1]} ({100 * total[1] / total[0]:.1f}%) | {total[2]} ({100 * total[2] / total[0]:.1f}%) |")
    table = "\n".join(lines)
    print(table)
    print(f"{time.perf_counter() - start:.0f} s")
    if a.md:
        a.md.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
