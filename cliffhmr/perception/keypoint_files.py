"""2D keypoints made by other tools, read into COCO-17 (N, 17, 3) float32 arrays: COCO-format
results or annotation files (ViTPose, RTMPose, mmpose, COCO itself) and OpenPose JSON. Every way
a file can be wrong is one CliffError naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..jsonio import read_json_file
from .keypoints import as_float32

# OpenPose layouts -> COCO-17.
# BODY_25: 0 Nose 1 Neck 2 RShoulder 3 RElbow 4 RWrist 5 LShoulder 6 LElbow 7 LWrist 8 MidHip
#          9 RHip 10 RKnee 11 RAnkle 12 LHip 13 LKnee 14 LAnkle 15 REye 16 LEye 17 REar 18 LEar
#          19-24 feet
OPENPOSE_BODY25_TO_COCO17 = np.array([0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11])
# COCO-18: 0 Nose 1 Neck 2 RShoulder 3 RElbow 4 RWrist 5 LShoulder 6 LElbow 7 LWrist 8 RHip
#          9 RKnee 10 RAnkle 11 LHip 12 LKnee 13 LAnkle 14 REye 15 LEye 16 REar 17 LEar
OPENPOSE_COCO18_TO_COCO17 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])


def _as_17x3(kps, path, where: str, scores=None, keep_nonfinite: bool = False) -> np.ndarray:
    """One person's keypoints -> (17, 3).

    Accepts 51 flat numbers (x, y, v/score per joint), 17 ``[x, y(, c)]`` rows (with
    ``keypoint_scores`` for 2-column rows), or the COCO-WholeBody 133-point layout in the same
    forms, whose first 17 points are the COCO body keypoints. keep_nonfinite: NaN and infinite
    values stay (as NaN) for a caller that reports them person by person, instead of refusing the file.
    """
    try:
        a = np.asarray(kps, dtype=np.float64)
    except (TypeError, ValueError):
        raise CliffError(f"{path}: {where}: keypoints must be numbers") from None
    if a.ndim == 1 and a.size in (51, 399):
        a = a.reshape(-1, 3)
    if not (a.ndim == 2 and a.shape[0] in (17, 133) and a.shape[1] in (2, 3)):
        raise CliffError(
            f"{path}: {where}: expected 17 COCO keypoints (51 numbers x, y, v), got shape {a.shape}"
        )
    n = a.shape[0]
    a = a[:17]
    if a.shape[1] == 2:
        if scores is None:
            c = np.ones(17)
        else:
            try:
                c = np.asarray(scores, dtype=np.float64).reshape(n)[:17]
            except (TypeError, ValueError):
                raise CliffError(f"{path}: {where}: keypoint_scores must be {n} numbers") from None
        a = np.concatenate([a, c[:, None]], axis=1)
    a = a.copy()
    if keep_nonfinite:
        a[~np.isfinite(a)] = np.nan
    elif not np.isfinite(a).all():
        raise CliffError(f"{path}: {where}: keypoints contain NaN or infinite values")
    a[:, 2] = np.clip(a[:, 2], 0.0, 1.0)  # COCO visibility 0/1/2 -> 0/1/1; scores clipped
    return a


def _name_matches(entry_name, image_name: str) -> bool:
    if entry_name is None:
        return False
    entry_name = str(entry_name)
    return entry_name == image_name or os.path.basename(entry_name) == os.path.basename(image_name)


def _id_matches(image_id, image_name: str) -> bool:
    if image_id is None:
        return False
    stem = Path(image_name).stem
    if str(image_id) in (image_name, os.path.basename(image_name), stem):
        return True
    try:
        return int(stem) == int(image_id)  # COCO: image_id 397133 <-> 000000397133.jpg
    except (TypeError, ValueError):
        return False


def _guarded(fn, data, p: Path, *args) -> np.ndarray:
    """Turn any leftover structural surprise (unhashable ids, wrong types) into a CliffError."""
    try:
        return fn(data, p, *args)
    except CliffError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise CliffError(f"{p}: malformed keypoint file ({type(exc).__name__}: {exc})") from None


_NAME_KEYS = ("file_name", "image_name", "img_path", "image_path", "image")


def load_coco_keypoints(path, image_name: str | None = None) -> np.ndarray:
    """Read COCO-format person keypoints -> (N, 17, 3) float32 [x, y, confidence in [0, 1]].

    Accepts either
    * a result list ``[{"keypoints": [51 numbers], "image_id": ..., "score": ...}, ...]`` (what
      ViTPose / RTMPose / mmpose write for COCO evaluation; ``file_name``/``image_name``/``img_path``
      may name the image; ``keypoints`` may also be 17 ``[x, y]`` rows with ``keypoint_scores``), or
    * a full annotation file ``{"images": [...], "annotations": [...]}``.

    The third value (COCO visibility 0/1/2, or a score) is clipped to [0, 1]. Annotations with
    ``iscrowd`` set or with no labelled keypoint are skipped. ``image_name`` selects one image
    (matched by file name, base name, or image_id against the file's stem, e.g. 397133 <->
    ``000000397133.jpg``); without it the file must hold a single image.
    """
    return _guarded(_coco_from_data, read_json_file(path, "keypoint file"), Path(path), image_name)


def _coco_annotations(data, p: Path) -> tuple[dict, list[tuple[int, dict]]]:
    """An annotation file -> ({image_id: file_name}, [(index, annotation)] of the non-crowd people with keypoints)."""
    anns, images = data["annotations"], data.get("images", [])
    if not isinstance(anns, list) or not isinstance(images, list):
        raise CliffError(f"{p}: 'annotations' and 'images' must be lists")
    names = {im["id"]: im.get("file_name") for im in images if isinstance(im, dict) and "id" in im}
    kept = [(k, a) for k, a in enumerate(anns) if isinstance(a, dict) and "keypoints" in a and not a.get("iscrowd", 0)]
    return names, kept


def _annotation_keypoints(k: int, a: dict, p: Path, keep_nonfinite: bool = False) -> np.ndarray | None:
    """One annotation's (17, 3) keypoints, or None when it labels none (a NaN counts as a label)."""
    kp = _as_17x3(a["keypoints"], p, f"annotation {k} (id {a.get('id')})", keep_nonfinite=keep_nonfinite)
    if a.get("num_keypoints", 1) == 0 or not ((kp[:, 2] > 0) | np.isnan(kp).any(1)).any():
        return None
    return kp


def _coco_results(data: list, p: Path) -> list[tuple[int, dict]]:
    """A results list -> [(index, entry)] of the person entries; anything but objects with 'keypoints' is an error."""
    entries = []
    for k, e in enumerate(data):
        if not isinstance(e, dict) or "keypoints" not in e:
            raise CliffError(f"{p}: entry {k} is not an object with 'keypoints'")
        if e.get("category_id", 1) == 1:
            entries.append((k, e))
    return entries


def _result_keypoints(k: int, e: dict, p: Path, keep_nonfinite: bool = False) -> np.ndarray:
    return _as_17x3(e["keypoints"], p, f"entry {k}", e.get("keypoint_scores"), keep_nonfinite)


def _not_coco(p: Path) -> CliffError:
    return CliffError(f"{p}: not a COCO keypoint file (expected a list of results with 'keypoints', "
                      "or an object with 'images' and 'annotations')")  # fmt: skip


def _coco_from_data(data, p: Path, image_name: str | None) -> np.ndarray:
    if isinstance(data, dict) and "annotations" in data:
        id_to_name, anns = _coco_annotations(data, p)
        if image_name is not None:
            ids = {i for i, nm in id_to_name.items() if _name_matches(nm, image_name)}
            if not ids:
                ids = {i for i in id_to_name if _id_matches(i, image_name)}
            if not ids:
                raise CliffError(f"{p}: no image named {image_name!r} in 'images'")
            anns = [(k, a) for k, a in anns if a.get("image_id") in ids]
        else:
            ids = {a.get("image_id") for _, a in anns}
            if len(ids) > 1:
                raise CliffError(
                    f"{p}: holds keypoints for {len(ids)} images; say which image they belong to"
                )
        out = [kp for k, a in anns if (kp := _annotation_keypoints(k, a, p)) is not None]
    elif isinstance(data, list):
        entries = _coco_results(data, p)
        if image_name is not None:
            matching = [
                (k, e) for k, e in entries
                if any(_name_matches(e.get(key), image_name) for key in _NAME_KEYS)
                or _id_matches(e.get("image_id"), image_name)
                or all(e.get(key) is None for key in _NAME_KEYS + ("image_id",))
            ]
            named = {next((str(e[key]) for key in ("image_id",) + _NAME_KEYS if e.get(key) is not None), None) for _, e in entries}
            # A results file about one single image (e.g. image_id 1) belongs to the image it is given with.
            if not matching and len(named) > 1:
                raise CliffError(f"{p}: no keypoints for image {image_name!r} among its {len(named)} images")
            entries = matching if matching else entries
        else:
            ids = {next((str(e[key]) for key in ("image_id",) + _NAME_KEYS if e.get(key) is not None), None)
                   for _, e in entries}
            if len(ids) > 1:
                raise CliffError(
                    f"{p}: holds keypoints for {len(ids)} images; say which image they belong to"
                )
        out = [_result_keypoints(k, e, p) for k, e in entries]
    else:
        raise _not_coco(p)
    if not out:
        return np.zeros((0, 17, 3), np.float32)
    return as_float32(np.stack(out))


def coco_keypoints_by_image(path, keep_nonfinite: bool = False) -> dict[str, np.ndarray]:
    """A COCO-format file about many images (e.g. person_keypoints_train2017.json), read once ->
    {key: (N, 17, 3)}, keyed by image file base name and by str(image_id). Look images up with
    :func:`keypoints_for_image`. Same layouts and skipping rules as :func:`load_coco_keypoints`;
    keep_nonfinite: see `_as_17x3` (the annotator skips such people and logs them)."""
    p = Path(path)
    return _guarded(_coco_table, read_json_file(p, "keypoint file"), p, keep_nonfinite)


def _coco_table(data, p: Path, keep_nonfinite: bool = False) -> dict[str, np.ndarray]:
    people = []  # (image_id, file name or None, (17, 3))
    if isinstance(data, dict) and "annotations" in data:
        names, anns = _coco_annotations(data, p)
        for k, a in anns:
            if (kp := _annotation_keypoints(k, a, p, keep_nonfinite)) is not None:
                people.append((a.get("image_id"), names.get(a.get("image_id")), kp))
    elif isinstance(data, list):
        for k, e in _coco_results(data, p):
            named = next((e[key] for key in _NAME_KEYS if e.get(key) is not None), None)
            if e.get("image_id") is None and named is None:
                raise CliffError(f"{p}: entry {k} names no image (image_id or file_name)")
            people.append((e.get("image_id"), named, _result_keypoints(k, e, p, keep_nonfinite)))
    else:
        raise _not_coco(p)
    groups: dict[str, list[np.ndarray]] = {}
    for image_id, name, kp in people:
        keys = {str(image_id), os.path.basename(str(name or ""))} - {"", "None"}
        for key in keys:
            groups.setdefault(key, []).append(kp)
    return {key: as_float32(np.stack(kps)) for key, kps in groups.items()}


def keypoints_for_image(table: dict[str, np.ndarray], image_name: str) -> np.ndarray:
    """The people `table` lists for an image (by base name, stem, or image_id = the stem's number,
    397133 <-> 000000397133.jpg); (0, 17, 3) when it lists none."""
    base = os.path.basename(image_name)
    stem = Path(base).stem
    keys = [base, stem]
    if stem.isdigit():
        keys.append(str(int(stem)))
    for key in keys:
        if key in table:
            return table[key]
    return np.zeros((0, 17, 3), np.float32)


def load_openpose_keypoints(path) -> np.ndarray:
    """Read an OpenPose JSON (``{"people": [{"pose_keypoints_2d": [...]}, ...]}``) -> (N, 17, 3).

    The layout is told by length: 75 numbers = BODY_25, 54 = COCO-18; both are mapped to COCO-17
    (OpenPose's Neck, MidHip and foot points are dropped). Confidences are clipped to [0, 1];
    OpenPose writes undetected joints as (0, 0, 0), which stay at confidence 0.
    """
    return _guarded(_openpose_from_data, read_json_file(path, "keypoint file"), Path(path))


def _openpose_from_data(data, p: Path) -> np.ndarray:
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise CliffError(f"{p}: not an OpenPose keypoint file (expected an object with a 'people' list)")
    out = []
    for k, person in enumerate(data["people"]):
        if not isinstance(person, dict):
            raise CliffError(f"{p}: people[{k}] is not an object")
        kps = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
        if kps is None:
            raise CliffError(f"{p}: people[{k}] has no 'pose_keypoints_2d'")
        try:
            a = np.asarray(kps, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise CliffError(f"{p}: people[{k}]: pose_keypoints_2d must be a list of numbers") from None
        if a.size == 75:
            sel = OPENPOSE_BODY25_TO_COCO17
        elif a.size == 54:
            sel = OPENPOSE_COCO18_TO_COCO17
        else:
            raise CliffError(
                f"{p}: people[{k}]: pose_keypoints_2d has {a.size} numbers; "
                "expected 75 (BODY_25) or 54 (COCO-18)"
            )
        if not np.isfinite(a).all():
            raise CliffError(f"{p}: people[{k}]: keypoints contain NaN or infinite values")
        a = a.reshape(-1, 3)[sel]
        a[:, 2] = np.clip(a[:, 2], 0.0, 1.0)
        out.append(a)
    if not out:
        return np.zeros((0, 17, 3), np.float32)
    return as_float32(np.stack(out))


def load_keypoints_file(path, image_name: str | None = None) -> np.ndarray:
    """Read 2D keypoints from an OpenPose JSON or a COCO-format JSON (told apart by content).

    An object with a ``people`` list is OpenPose (:func:`load_openpose_keypoints`; one file per
    image, so ``image_name`` is not used); anything else is read as COCO
    (:func:`load_coco_keypoints`). Returns (N, 17, 3) float32.
    """
    data = read_json_file(path, "keypoint file")
    if isinstance(data, dict) and "people" in data:
        return _guarded(_openpose_from_data, data, Path(path))
    return _guarded(_coco_from_data, data, Path(path), image_name)
