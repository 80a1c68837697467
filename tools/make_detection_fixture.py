"""One-time: cut the real frames of the detection fixture out of two PyPI wheels.

Frames come from demo videos shipped inside BSD-3-Clause wheels (see
``benchmarks/fixtures/detection/README.md`` for the licences):

* ``pose2sim==0.10.49``: ``Pose2Sim/Demo_SinglePerson/videos/cam0{1..4}.mp4`` (one person, four
  portrait cameras, 1080x1920) and ``Pose2Sim/Demo_MultiPerson/videos/cam0{1..4}.mp4`` (several
  people, portrait);
* ``sports2d==0.8.34``: ``Sports2D/Demo/demo.mp4`` (landscape 1768x994, people at many distances).

Each picked frame is downscaled so its long side is 640 px and written as a JPEG (quality 85):
small enough to commit, large enough that the people stay visible. The boxes in ``boxes.json``
were drawn by hand on these JPEGs (see the README); this script only makes the images.

Decoding uses PyAV, which the package installs (it reads videos too).

    pip download --no-deps -d /tmp/wheels pose2sim==0.10.49 sports2d==0.8.34
    (cd /tmp/wheels && unzip -o -q pose2sim-0.10.49-py3-none-any.whl -d p2s \\
                    && unzip -o -q sports2d-0.8.34-py3-none-any.whl -d s2d)
    python tools/make_detection_fixture.py /tmp/wheels benchmarks/fixtures/detection
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

LONG_SIDE = 640
# (name prefix, video path inside the unpacked wheels folder, frame indices)
CLIPS = [
    *[(f"p2s_single_cam0{c}", f"p2s/Pose2Sim/Demo_SinglePerson/videos/cam0{c}.mp4", (10, 50, 90)) for c in (1, 2, 3, 4)],
    *[(f"p2s_multi_cam0{c}", f"p2s/Pose2Sim/Demo_MultiPerson/videos/cam0{c}.mp4", (20, 70)) for c in (1, 2, 3, 4)],
    ("s2d_demo", "s2d/Sports2D/Demo/demo.mp4", (20, 60, 100, 140, 180, 220)),
]


def frames(path: Path, wanted: tuple[int, ...]):
    import av

    wanted = set(wanted)
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                yield i, frame.to_image()
            if i >= max(wanted):
                break


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheels", type=Path, help="folder holding the unpacked wheels (p2s/, s2d/)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    for prefix, rel, idx in CLIPS:
        src = args.wheels / rel
        print(f"{rel}  sha256 {hashlib.sha256(src.read_bytes()).hexdigest()}")
        for i, im in frames(src, idx):
            s = LONG_SIDE / max(im.size)
            im = im.convert("RGB").resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
            name = f"{prefix}_f{i:03d}.jpg"
            im.save(args.out / name, quality=85)
            print(f"  {name} {im.width}x{im.height}")


if __name__ == "__main__":
    main()
