"""The annotator's inputs, image by image: what can be annotated, and a reason for what cannot.

A bad item never stops a run: an unreadable image, a person whose keypoints are NaN or all outside
the image, an empty box, an image the keypoint file does not list (or a listed image that is not
in the input) becomes one `Skip` in the log, and the rest is annotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..perception.image import boxes_for
from ..perception.keypoint_files import keypoints_for_image
from ..perception.keypoints import outside_missing

MIN_BOX_SIDE = 2.0  # pixels; what `crop.validate_boxes` calls an empty box


@dataclass
class Skip:
    item: str  # the image's name, or "name#k" for its k-th person (0-based, as in the input file)
    reason: str


@dataclass
class People:
    """The people of one image to annotate; None: the pipeline finds them (detector, BlazePose)."""

    boxes: np.ndarray | None  # (P, 5)
    keypoints: np.ndarray | None  # (P, 17, 3)


def select_people(name: str, width: int, height: int, boxes, keypoints) -> tuple[People | None, list[Skip]]:
    """The given boxes (P, 5) / keypoints (P, 17, 3) of an image (either None: not given) less the
    people that cannot be annotated -> (People, or None when no one is left; the skips)."""
    if keypoints is not None and len(keypoints) == 0:
        return None, [Skip(name, "no keypoints for this image in the keypoint file")]
    if boxes is not None and keypoints is not None and len(boxes) != len(keypoints):
        return None, [Skip(name, f"{len(boxes)} boxes but {len(keypoints)} people's keypoints")]
    count = len(boxes) if boxes is not None else len(keypoints) if keypoints is not None else None
    if count is None:
        return People(None, None), []
    skips, keep = [], []
    for k in range(count):
        reason = _person_problem(boxes[k] if boxes is not None else None, keypoints[k] if keypoints is not None else None, width, height)
        if reason:
            skips.append(Skip(f"{name}#{k}", reason))
        else:
            keep.append(k)
    if not keep:
        return None, skips
    return People(None if boxes is None else boxes[keep], None if keypoints is None else keypoints[keep]), skips


def _person_problem(box, kp, width: int, height: int) -> str | None:
    if box is not None and (box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE):
        return f"zero-area box [{', '.join(f'{v:g}' for v in box[:4])}]"
    if kp is None:
        return None
    if np.isnan(kp[:, 2]).any():
        return "NaN keypoint confidence"
    seen = kp[:, 2] > 0
    if not seen.any():
        return "no keypoint with positive confidence"
    if not np.isfinite(kp[seen, :2]).all():
        return "NaN or infinite keypoint coordinates"
    inside = outside_missing(kp, width, height)[:, 2] > 0
    if inside.sum() < 0.5 * seen.sum():  # the pipeline's test of a whole file, person by person
        return f"keypoints outside the {width}x{height} image ({int(seen.sum() - inside.sum())} of {int(seen.sum())})"
    return None


def given_boxes(table: dict | None, path: Path) -> np.ndarray | None:
    return None if table is None else boxes_for(table, path)


def given_keypoints(table: dict | None, path: Path) -> np.ndarray | None:
    return None if table is None else keypoints_for_image(table, path.name)


def unlisted_images(table: dict[str, np.ndarray], images: list[Path]) -> list[Skip]:
    """The keypoint file's images that the input does not hold. A table is keyed by file name
    and by image_id; an id is reported only when the file names no image at all (an entry with
    both answers to its name)."""
    claimed = set()
    for path in images:
        stem = path.stem
        claimed |= {path.name, stem, *([str(int(stem))] if stem.isdigit() else [])}
    named = {k for k in table if "." in k}
    unclaimed = (named or set(table)) - claimed
    return [Skip(key, "in the keypoint file but not among the input images") for key in sorted(unclaimed)]
