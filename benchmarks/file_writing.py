"""What writing one image's results costs, before and after the faster writers, side by side
in one run: PNG by PIL at its default zlib level 6 (before) and by `export.png_bytes` (now: the
"up" filter on every row, zlib level 1; PIL at level 1, the previous writer, in the note),
OBJ text formatted line by line (before) and in one %-format (now, `export.obj_text`; the same
bytes). On the bundled `two_people.jpg` and an Anny-sized mesh (13,718 vertices, 27,420 faces).
Then the overlay and side view of 8 SMPL-sized people (throughput.py's stand-in body) in a
1920x1080 photo, drawn by the software rasteriser and by OpenGL (where `render_gl` can), with
the share of pixels that differ by more than 2 of 255 levels.

    .venv/bin/python benchmarks/file_writing.py
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):  # this tree's cliffhmr, also when another checkout is pip-installed
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from cliffhmr.device import single_threaded  # noqa: E402
from cliffhmr.inference import render, render_gl  # noqa: E402
from cliffhmr.inference.export import obj_text, png_bytes as our_png  # noqa: E402
from throughput import stand_in_smpl  # noqa: E402


def obj_text_per_line(vertices: np.ndarray, faces: np.ndarray) -> str:
    """The previous writer, kept here as the reference."""
    v = "\n".join(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64))
    f = "\n".join(f"f {a} {b} {c}" for a, b, c in np.asarray(faces, np.int64) + 1)
    return f"{v}\n{f}\n"


def png_bytes(image: np.ndarray, level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def median_ms(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> int:
    image = np.asarray(Image.open(ROOT / "examples" / "two_people.jpg").convert("RGB"))
    rng = np.random.default_rng(0)
    v, f = rng.normal(size=(13718, 3)).astype(np.float32), rng.integers(0, 13718, (27420, 3))
    assert obj_text(v, f) == obj_text_per_line(v, f)
    overlay = np.asarray(Image.open(ROOT / "examples" / "two_people.jpg").convert("RGB").resize((1920, 1080)))
    rows = [(f"PNG of {what}", lambda im=im: png_bytes(im, 6), lambda im=im: our_png(im),
             f"{len(png_bytes(im, 6))} -> {len(our_png(im))} B; PIL at level 1: {median_ms(lambda im=im: png_bytes(im, 1)):.0f} ms, "
             f"{len(png_bytes(im, 1))} B")
            for what, im in (("the 1400x620 photo", image), ("a 1920x1080 photo", overlay))]  # fmt: skip
    rows.append(("OBJ text of one Anny mesh", lambda: obj_text_per_line(v, f), lambda: obj_text(v, f), "identical text"))
    if render_gl.available():
        rows += render_rows()
    print("| file | before (ms) | now (ms) | speed-up | |\n| --- | --- | --- | --- | --- |")
    with single_threaded():  # as `write_outputs` draws
        for name, before, now, note in rows:
            b, n = median_ms(before), median_ms(now)
            print(f"| {name} | {b:.0f} | {n:.0f} | {b / n:.1f}x | {note} |")
    return 0


def render_rows():
    body = stand_in_smpl()
    rng = np.random.default_rng(0)
    meshes = [body["v_template"] + [rng.uniform(-2, 2), rng.uniform(-0.5, 0.5), rng.uniform(3, 8)] for _ in range(8)]
    photo = np.asarray(Image.open(ROOT / "examples" / "two_people.jpg").convert("RGB").resize((1920, 1080)))
    cam = (2203.0, 2203.0, 960.0, 540.0)

    def draw(backend, view):
        def go():
            os.environ["CLIFFHMR_RENDERER"] = backend
            if view == "overlay":
                return render.render_overlay(photo, meshes, body["f"], *cam)
            return render.render_side_view(photo.shape, meshes, body["f"], *cam)
        return go

    rows = []
    for view in ("overlay", "side view"):
        soft, gl = draw("software", view)(), draw("gl", view)()
        differ = (np.abs(soft.astype(int) - gl.astype(int)).max(-1) > 2).mean()
        rows.append((f"{view}, 8 people, 1920x1080: software -> OpenGL", draw("software", view), draw("gl", view),
                     f"{100 * differ:.4f}% of pixels differ by > 2 levels"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
