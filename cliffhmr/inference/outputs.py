"""An `ImageResult` -> the files a user gets for one image.

DIR/<stem>.npz            arrays, see NPZ_KEYS
DIR/<stem>_overlay.png    meshes drawn over the photo
DIR/<stem>_side.png       the same meshes seen from the side (depth placement)
DIR/<stem>_person<i>.obj / .glb   one mesh per person, camera frame (GLB: glTF's Y-up frame)
DIR/<stem>.json           a readable summary

A rerun replaces an image's whole set: files of the set that this run does not write (a second
person's mesh when one person is found now, images after --no-render) are removed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import all_or_none
from ..device import single_threaded
from .export import Motion, save_animation, save_glb, save_json, save_npz, save_obj, save_png
from .pipeline import ImageResult, Person

NPZ_KEYS = {
    "imgname": "(N,) image path, repeated per person (as in the official demo)",
    "pose": "(N, 3J) axis-angle local joint rotations, joint 0 = global orientation in the camera frame",
    "rotmat": "(N, J, 3, 3) the same as rotation matrices",
    "shape": "(N, S) body-model shape coefficients (SMPL betas, or Anny phenotype offsets)",
    "global_t": "(N, 3) body translation in the camera frame, metres",
    "pred_cam": "(N, 3) crop weak-perspective camera (s, tx, ty)",
    "pred_joints": "(N, K, 3) body-model joints then COCO-17 keypoints, camera frame, global_t applied",
    "pred_keypoints_2d": "(N, K, 2) pred_joints projected into the image, pixels",
    "joint_names": "(K,) names of pred_joints' rows",
    "focal_l": "(N,) focal length in pixels used for each person",
    "intrinsics": "(3, 3) camera matrix of the image",
    "center": "(N, 2) crop centre, pixels",
    "scale": "(N,) crop height / 200 pixels",
    "detection_all": "(N, 6) [image index, x1, y1, x2, y2, score] (as in the official demo)",
    "vertices": "(N, V, 3) mesh vertices, camera frame",
    "faces": "(F, 3) mesh triangles",
    "detected_keypoints": "(N, 17, 3) 2D keypoints the fit used (x, y, confidence); fitting path only",
    "quality": "(N,) fit quality in [0, 1]; fitting path only (NaN for the network path)",
}


def result_arrays(result: ImageResult) -> dict[str, np.ndarray]:
    n = len(result.people)
    return people_arrays(result.people, result.joint_names, result.intrinsics, result.faces,
                         [str(result.image.path or "")] * n, np.zeros(n))  # fmt: skip


def people_arrays(people: list[Person], joint_names: list[str], K, faces: np.ndarray, names: list[str], image_index,
                  vertices: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
    """The NPZ_KEYS arrays of N people (of one image, or of many frames of one camera K): names
    (N,) their image's path, image_index (N,) its number (detection_all's first column);
    without `vertices` that key is left out (video: 170 kB a person and frame)."""
    n = len(people)
    nj = len(joint_names)

    def stack(attr, shape, dtype=np.float32):
        values = [getattr(p, attr) for p in people]
        return np.stack(values).astype(dtype) if n else np.zeros((0, *shape), dtype)

    n_rot = people[0].rotmat.shape[0] if n else 0
    n_betas = people[0].betas.shape[0] if n else 0
    detected = [p.detected_keypoints for p in people]
    arrays = {
        "imgname": np.array(names, dtype=str).reshape(n),
        "pose": stack("pose", (n_rot * 3,)),
        "rotmat": stack("rotmat", (n_rot, 3, 3)),
        "shape": stack("betas", (n_betas,)),
        "global_t": stack("transl", (3,)),
        "pred_cam": stack("pred_cam", (3,)),
        "pred_joints": stack("joints", (nj, 3)),
        "pred_keypoints_2d": stack("keypoints_2d", (nj, 2)),
        "joint_names": np.array(joint_names),
        "focal_l": np.full((n,), K.focal, np.float32),
        "intrinsics": np.array([[K.fx, 0, K.cx], [0, K.fy, K.cy], [0, 0, 1]], np.float32),
        "center": stack("center", (2,)),
        "scale": np.array([p.scale for p in people], np.float32),
        "detection_all": np.array([[i, *p.bbox[:5]] for i, p in zip(image_index, people)], np.float32).reshape(n, 6),
        "vertices": stack("vertices", (faces.max() + 1 if faces.size else 0, 3)) if vertices else None,
        "faces": faces.astype(np.int32),
        "detected_keypoints": (
            np.stack(detected).astype(np.float32) if n and all(d is not None for d in detected) else np.zeros((0, 17, 3), np.float32)
        ),
        "quality": np.array([np.nan if p.quality is None else p.quality for p in people], np.float32),
    }
    return {k: v for k, v in arrays.items() if v is not None}


def summary(result: ImageResult) -> dict:
    K = result.intrinsics
    return {
        "cliff_hmr_version": __version__,
        "image": str(result.image.path or ""),
        "width": result.image.width,
        "height": result.image.height,
        "camera": {"fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy},
        "body_model": result.body_model,
        "method": result.method,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "people": [
            {
                "bbox": [round(float(x), 2) for x in p.bbox[:4]],
                "score": round(float(p.bbox[4]), 4),
                "translation_m": [round(float(x), 4) for x in p.transl],
                "distance_m": round(float(np.linalg.norm(p.transl)), 4),
                "quality": None if p.quality is None else round(float(p.quality), 4),
                "flags": p.flags,
            }
            for p in result.people
        ],
    }


def write_outputs(result: ImageResult, out_dir: str | Path, stem: str, meshes: bool = True, images: bool = True) -> tuple[list[Path], list[Path]]:
    """Write every file for one image -> (paths written, stale paths of an earlier run removed).
    Adds 'render' and 'export' to result.timings."""
    from .render import render_overlay, render_side_view

    out_dir = Path(out_dir)
    K = result.intrinsics
    verts = [p.vertices for p in result.people]
    start = time.perf_counter()
    rendered = {}
    if images:
        with single_threaded():
            pixels = result.image.pixels
            rendered[f"{stem}_overlay.png"] = render_overlay(pixels, verts, result.faces, K.fx, K.fy, K.cx, K.cy)
            rendered[f"{stem}_side.png"] = render_side_view(pixels.shape[:2], verts, result.faces, K.fx, K.fy, K.cx, K.cy)
        result.timings["render"] = time.perf_counter() - start

    start = time.perf_counter()
    written = [out_dir / f"{stem}.npz"]
    with all_or_none():  # a disk that fills up mid-set leaves the earlier run's set whole
        save_npz(written[-1], result_arrays(result))
        for name, image in rendered.items():
            written.append(out_dir / name)
            save_png(written[-1], image)
        if meshes:
            for i, v in enumerate(verts):
                written += [out_dir / f"{stem}_person{i}.obj", out_dir / f"{stem}_person{i}.glb"]
                save_obj(written[-2], v, result.faces)
                save_glb(written[-1], v, result.faces)
        result.timings["export"] = time.perf_counter() - start
        written.append(out_dir / f"{stem}.json")
        save_json(written[-1], summary(result))
    removed = sorted(set(result_set(out_dir, stem)) - set(written))
    for stale in removed:
        stale.unlink()
    return written, removed


IMAGE_FILES = r"(\.npz|\.json|_overlay\.png|_side\.png|_person\d+\.(obj|glb))"


def result_set(out_dir: Path, stem: str, names: str = IMAGE_FILES) -> list[Path]:
    """The files in `out_dir` that belong to the image (or video) named `stem`: `stem` followed by
    one of `names` (a regular expression; not 'photo_person1.jpg' when the stem is 'photo')."""
    own = re.compile(rf"{re.escape(stem)}{names}")
    return [p for p in Path(out_dir).iterdir() if own.fullmatch(p.name)] if Path(out_dir).is_dir() else []


# ----------------------------------------------------------------------------- video

VIDEO_NPZ_KEYS = {
    "frame": "(N,) the person-frame's frame number in the video, from 0 (in a folder of frames: its place in the sorted folder)",
    "time": "(N,) its time, seconds from the first frame",
    "track_id": "(N,) the person's track ID: one per person for as long as they are followed, never reused",
    "processed_frames": "(M,) the frame numbers of every frame processed, people in it or not",
    "processed_times": "(M,) their times, seconds",
    "fps": "() the video's average frame rate",
}
VIDEO_FILES = r"(\.npz|\.json|_overlay\.mp4|_track\d+\.(glb|bvh))"


def video_arrays(result) -> dict[str, np.ndarray]:
    """One row per person and frame: NPZ_KEYS without `vertices`, plus VIDEO_NPZ_KEYS."""
    rows = [(f, track, p) for f, row in zip(result.frames, result.people) for track, p in row]
    people = [p for _, _, p in rows]
    names = [str(f.path or result.video.path) for f, _, _ in rows]
    arrays = people_arrays(people, result.joint_names, result.intrinsics, result.faces, names,
                           [f.index for f, _, _ in rows], vertices=False)  # fmt: skip
    arrays["frame"] = np.array([f.index for f, _, _ in rows], np.int64)
    arrays["time"] = np.array([f.time for f, _, _ in rows], np.float64)
    arrays["track_id"] = np.array([t for _, t, _ in rows], np.int64)
    arrays["processed_frames"] = np.array([f.index for f in result.frames], np.int64)
    arrays["processed_times"] = np.array([f.time for f in result.frames], np.float64)
    arrays["fps"] = np.array(result.video.fps, np.float64)
    return arrays


def video_summary(result, chosen) -> dict:
    """The JSON summary of a video: the file, the frames chosen and read, the camera, per track
    its frames, times, mean fit quality and how often each flag was raised."""
    K = result.intrinsics
    tracks: dict[int, list] = {}
    for f, row in zip(result.frames, result.people):
        for track, p in row:
            tracks.setdefault(track, []).append((f, p))
    return {
        "cliff_hmr_version": __version__,
        "video": str(result.video.path),
        "width": result.video.width,
        "height": result.video.height,
        "fps": result.video.fps,
        "frames_declared": result.video.frame_count,
        "chosen": {"every": chosen.every, "start_s": chosen.start, "end_s": chosen.end},
        "frames_processed": len(result.frames),
        "damage": result.damage,
        "camera": {"fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy},
        "body_model": result.body_model,
        "method": result.method,
        "left_right_exchanged": result.left_right_fixed,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "tracks": [
            {
                "track_id": track,
                "frames": len(seen),
                "first_frame": seen[0][0].index,
                "last_frame": seen[-1][0].index,
                "first_time_s": round(seen[0][0].time, 4),
                "last_time_s": round(seen[-1][0].time, 4),
                "mean_quality": _mean([p.quality for _, p in seen]),
                "flags": {flag: sum(flag in p.flags for _, p in seen) for flag in sorted({f for _, p in seen for f in p.flags})},
            }
            for track, seen in sorted(tracks.items())
        ],
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(values)), 4) if values else None


def render_video(result, body, reader, chosen, path: Path, progress: bool = False) -> None:
    """The overlay video: every processed frame, decoded again, with its people's meshes drawn
    over it, one colour per track (`shading.PALETTE`, by track ID), at the frame's own time."""
    import torch
    from tqdm import tqdm

    from ..atomic import atomic_path
    from .render import render_overlay
    from .shading import PALETTE
    from .video import VideoDamaged, Writer

    K = result.intrinsics
    todo = iter(zip(result.frames, result.people))
    with atomic_path(path) as tmp:
        writer = Writer(tmp, result.video.width, result.video.height, result.video.fps)
        bar = tqdm(total=len(result.frames), desc="render", unit="frame", disable=None if progress else True, leave=False)
        try:
            want = next(todo, None)
            for frame in reader.frames(chosen):
                if want is None:
                    break
                if frame.index != want[0].index:
                    continue
                people = want[1]
                pixels = frame.pixels
                if people:
                    with torch.no_grad(), single_threaded():
                        out = body(*(torch.as_tensor(np.stack([getattr(p, k) for _, p in people])) for k in ("rotmat", "betas", "transl")))
                        colours = [PALETTE[t % len(PALETTE)] for t, _ in people]
                        pixels = render_overlay(pixels, list(out.vertices.numpy()), result.faces, K.fx, K.fy, K.cx, K.cy, colors=colours)
                writer.write(pixels, frame.time)
                bar.update()
                want = next(todo, None)
        except VideoDamaged:
            pass  # the same damage the reading pass stopped at: every frame before it is drawn
        finally:
            bar.close()
            writer.close()


def track_motions(result, body) -> dict[int, Motion]:
    """Each track's motion (`export.Motion`) over the frames it was seen in, at its shape (the
    first frame's, which in tracked results is every frame's)."""
    import torch

    seen: dict[int, list] = {}
    for f, row in zip(result.frames, result.people):
        for track, p in row:
            seen.setdefault(track, []).append((f, p))
    faces = body.faces.cpu().numpy()
    weights = body.weights.detach().cpu().numpy()
    motions = {}
    for track, rows in sorted(seen.items()):
        betas = torch.as_tensor(rows[0][1].betas)[None].float()
        with torch.no_grad():
            rest = body(torch.eye(3).expand(1, body.num_joints, 3, 3), betas)
        motions[track] = Motion(
            rest.vertices[0].numpy(), rest.joints[0].numpy(), faces, weights, list(body.parents), list(body.joint_names),
            np.stack([p.rotmat for _, p in rows]), np.stack([p.transl for _, p in rows]), np.array([f.time for f, _ in rows]),
        )  # fmt: skip
    return motions


def write_video_outputs(result, body, reader, chosen, out_dir: str | Path, stem: str, render: bool = True,
                        animations: bool = True, progress: bool = False) -> tuple[list[Path], list[Path]]:  # fmt: skip
    """Every file for one video -> (paths written, stale paths of an earlier run removed)."""
    out_dir = Path(out_dir)
    written = [out_dir / f"{stem}.npz", out_dir / f"{stem}.json"]
    with all_or_none():
        start = time.perf_counter()
        if render:
            written.append(out_dir / f"{stem}_overlay.mp4")
            render_video(result, body, reader, chosen, written[-1], progress)
            result.timings["render"] = time.perf_counter() - start
        start = time.perf_counter()
        save_npz(written[0], video_arrays(result))
        if animations:
            for track, motion in track_motions(result, body).items():
                written += [out_dir / f"{stem}_track{track}.glb", out_dir / f"{stem}_track{track}.bvh"]
                save_animation(written[-2], written[-1], motion)
        result.timings["export"] = time.perf_counter() - start
        save_json(written[1], video_summary(result, chosen))
    removed = sorted(set(result_set(out_dir, stem, VIDEO_FILES)) - set(written))
    for stale in removed:
        stale.unlink()
    return written, removed
