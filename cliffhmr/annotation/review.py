"""`cliffhmr review`: a static HTML contact sheet of an annotator's output, worst rows first.

One table row per person: the body drawn over the photo (cropped around the person), the same
body from the side, and the row's numbers (quality, has_smpl, how many keypoints, their mean
distance from the body's in pixels). A person opens OUT/index.html in any browser and sees what
the annotator got wrong first.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import check_output_dir, write_bytes_atomic, write_text_atomic
from ..body import load_body_model
from ..data.joints import COCO17_TO_J24
from ..data.npz_format import load_annotations
from ..errors import CliffError
from ..geometry.camera import perspective_project
from ..geometry.rotation import axis_angle_to_rotmat
from ..inference.render import render_overlay, render_side_view
from ..npzio import read_npz
from ..perception.image import load_image

THUMB = 256  # pixels, the longer side of each picture


@dataclass
class ReviewConfig:
    annotations: Path
    images: Path  # the folder image names are relative to
    out: Path
    smpl: str  # the SMPL file the annotations were made with
    limit: int = 200  # rows on the page: the worst ones


@dataclass
class Row:
    index: int
    imgname: str
    quality: float
    has_smpl: bool
    keypoints: int  # seen
    error_px: float  # mean distance of the body's COCO keypoints from the seen ones


def review(cfg: ReviewConfig) -> list[Row]:
    """Write OUT/index.html and its pictures; -> the rows on the page, in page order."""
    if cfg.limit < 1:
        raise CliffError(f"--limit must be at least 1 row, got {cfg.limit}")
    ann = load_annotations(cfg.annotations)
    raw = read_npz(cfg.annotations, "dataset file")
    if "pose" not in raw or ann.transl is None or ann.focal is None:
        raise CliffError(f"{cfg.annotations}: no SMPL bodies with a camera (pose, transl, focal_l): nothing to draw")
    check_output_dir(cfg.out)
    body = load_body_model(cfg.smpl)
    quality = raw.get("quality", np.full(len(ann), np.nan)).astype(np.float64)
    order = sorted(range(len(ann)), key=lambda i: (not np.isnan(quality[i]), quality[i] if not np.isnan(quality[i]) else 0.0, i))
    rows = []
    for i in order[: cfg.limit]:
        rows.append(_draw(ann, i, float(quality[i]), body, cfg))
    write_text_atomic(cfg.out / "index.html", page(rows, cfg.annotations, len(ann)))
    return rows


def _draw(ann, i: int, quality: float, body, cfg: ReviewConfig) -> Row:
    image = load_image(cfg.images / str(ann.imgname[i])).pixels
    rotmat = axis_angle_to_rotmat(torch.as_tensor(ann.pose[i : i + 1]).reshape(1, -1, 3))
    with torch.no_grad():
        posed = body(rotmat, torch.as_tensor(ann.shape[i : i + 1]), torch.as_tensor(ann.transl[i : i + 1]))
    f = float(ann.focal[i])
    cx, cy = ann.principal[i] if ann.principal is not None else (image.shape[1] / 2, image.shape[0] / 2)
    verts, faces = posed.vertices[0].numpy(), body.faces.cpu().numpy()
    overlay = render_overlay(image, [verts], faces, f, f, cx, cy)
    side = render_side_view(image.shape, [verts], faces, f, f, cx, cy)
    _save(_around_person(overlay, ann.center[i], ann.scale[i]), cfg.out / "rows" / f"{i:07d}_overlay.jpg")
    _save(side, cfg.out / "rows" / f"{i:07d}_side.jpg")
    seen = ann.part[i, COCO17_TO_J24, 2] > 0
    projected = perspective_project(posed.keypoints, torch.tensor([[f, f]]), torch.tensor([[cx, cy]], dtype=torch.float32))[0].numpy()
    error = np.linalg.norm(projected[seen] - ann.part[i, COCO17_TO_J24, :2][seen], axis=1).mean() if seen.any() else np.nan
    return Row(i, str(ann.imgname[i]), quality, bool(ann.has_smpl[i]), int(seen.sum()), float(error))


def _around_person(image: np.ndarray, center, scale: float) -> np.ndarray:
    """The person's box (grown by half), clipped to the image."""
    half = 0.75 * 200 * float(scale)
    h, w = image.shape[:2]
    x0, y0 = max(0, int(center[0] - half)), max(0, int(center[1] - half))
    x1, y1 = min(w, int(center[0] + half) + 1), min(h, int(center[1] + half) + 1)
    return image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image


def _save(pixels: np.ndarray, path: Path) -> None:
    im = Image.fromarray(pixels)
    im.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=85)
    write_bytes_atomic(path, buffer.getvalue())


def page(rows: list[Row], source: Path, total: int) -> str:
    def cell(value: float, digits: int) -> str:
        return "-" if np.isnan(value) else f"{value:.{digits}f}"

    body = "\n".join(
        f'<tr class="row"><td><img src="rows/{r.index:07d}_overlay.jpg" alt="overlay"></td>'
        f'<td><img src="rows/{r.index:07d}_side.jpg" alt="side view"></td>'
        f"<td>{html.escape(r.imgname)}<br>row {r.index}<br>quality {cell(r.quality, 3)}<br>has_smpl {int(r.has_smpl)}"
        f"<br>{r.keypoints} keypoints, {cell(r.error_px, 1)} px from the body's</td></tr>"
        for r in rows
    )
    title = html.escape(f"{source.name}: {len(rows)} of {total} rows, worst quality first")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:4px}} img{{max-width:{THUMB}px}}</style></head>
<body><h1>{title}</h1>
<table>
<tr><th>body over the photo</th><th>side view</th><th>numbers</th></tr>
{body}
</table></body></html>
"""
