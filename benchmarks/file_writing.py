"""What writing one image's results costs, before and after the faster writers, side by side
in one run: PNG at PIL's default zlib level 6 (before) and level 1 (now, `export.save_png`),
OBJ text formatted line by line (before) and in one %-format (now, `export.obj_text`; the same
bytes). On the bundled `two_people.jpg` and an Anny-sized mesh (13,718 vertices, 27,420 faces).

    .venv/bin/python benchmarks/file_writing.py
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this tree's cliffhmr, also when another checkout is pip-installed
    sys.path.insert(0, str(ROOT))

from cliffhmr.inference.export import obj_text  # noqa: E402


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
    rows = [("PNG of the 1400x620 photo", lambda: png_bytes(image, 6), lambda: png_bytes(image, 1),
             f"{len(png_bytes(image, 6))} -> {len(png_bytes(image, 1))} B"),
            ("OBJ text of one Anny mesh", lambda: obj_text_per_line(v, f), lambda: obj_text(v, f), "identical text")]  # fmt: skip
    print("| file | before (ms) | now (ms) | speed-up | |\n| --- | --- | --- | --- | --- |")
    for name, before, now, note in rows:
        b, n = median_ms(before), median_ms(now)
        print(f"| {name} | {b:.0f} | {n:.0f} | {b / n:.1f}x | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
