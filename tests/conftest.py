"""Fixtures shared by test modules: the Anny body, random files in SMPL's and CLIFF's formats, a photo with boxes."""

import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smpl_files import write_random_smpl_pkl


# BlazePose's keypoints for the astronaut (x, y, confidence), as a ViTPose/mmpose user would bring them.
ASTRONAUT_KEYPOINTS = [
    [217, 133, 1.0], [243, 117, 0.99], [201, 106, 0.99], [262, 124, 0.99], [187, 106, 0.99], [292, 243, 0.98],
    [104, 226, 0.98], [324, 354, 0.59], [66, 365, 0.7], [275, 385, 0.26], [140, 428, 0.38], [227, 505, 0.76],
    [124, 498, 0.78], [255, 633, 0.02], [100, 613, 0.03], [198, 760, 0.0], [42, 744, 0.0],
]  # fmt: skip


@pytest.fixture(scope="session")
def anny_body():
    """The default Anny body, built once per test session (the very first build on a machine
    takes about 90 s while Anny writes its caches). Shared: copy it before changing it."""
    from cliffhmr.body import load_body_model

    return load_body_model("anny")


@pytest.fixture(scope="module")
def smpl_pkl(tmp_path_factory):
    # Few faces: random triangles span the whole body, and the renderer's cost is their area.
    return write_random_smpl_pkl(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl", F=200)


def run(args, capsys):
    """`cliffhmr ARGS` in this process -> (exit code, captured stdout/stderr)."""
    from cliffhmr.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def official_checkpoint(path, backbone, prefix="module."):
    """A randomly initialised CLIFF network saved as the official release saves one."""
    from cliffhmr.models import CLIFF

    torch.manual_seed(0)
    model = CLIFF(backbone)
    torch.save({"model": {prefix + k: v for k, v in model.state_dict().items()}, "epoch": 7}, path)
    return path


@pytest.fixture(scope="module")
def res50_ckpt(tmp_path_factory):
    return official_checkpoint(tmp_path_factory.mktemp("ckpt") / "res50-random.pt", "res50")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 400x300 photo and a boxes file: one person near the centre, one near the right edge."""
    d = tmp_path_factory.mktemp("photo")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(d / "scene.png")
    (d / "boxes.json").write_text(json.dumps({"scene.png": [[170, 60, 230, 280, 0.9], [330, 40, 395, 240]]}))
    return d / "scene.png", d / "boxes.json"


def child_env() -> dict:
    """The environment for a child Python process: it imports this checkout's cliffhmr, not
    whatever copy the environment has installed, on one thread."""
    import os

    import cliffhmr

    root = os.path.dirname(os.path.dirname(cliffhmr.__file__))
    path = os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_in_subprocess(args, cwd):
    """`python -m cliffhmr ARGS` in a child process, so that a crash (SIGSEGV) fails the test
    instead of killing pytest -> CompletedProcess with text stdout/stderr."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cliffhmr", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=120)


def assert_one_line_error(code, stderr, *expected):
    """Exit code 2 and a single `cliffhmr: error:` line holding each of `expected`, no traceback."""
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("cliffhmr: error: "), stderr
    assert all(text in lines[0] for text in expected), stderr


def load_script(path: Path):
    """A script of tools/ or benchmarks/ (not a package) imported as a module named after its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def write_video(path, times, size=(64, 48), codec="libx264", faststart=False, frames=None):
    """A video whose frame i is shown at times[i] seconds, written with PyAV's own API (not the
    package's writer); frame i's pixels are `frames[i]` or noise about brightness 20 + 10 * i."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            if frames is None:
                pixels = np.clip(rng.normal(20 + 10 * i, 6, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            else:
                pixels = frames[i]
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


EXAMPLES = Path(__file__).parent.parent / "examples"


def astronaut_frame(shift: int) -> np.ndarray:
    """The bundled astronaut photo at 256x256, moved `shift` pixels to the right (a real person)."""
    image = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((256, 256)))
    return np.roll(image, shift, axis=1)


def blank_frame(value: int = 128, size=(256, 256)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory):
    """`cliffhmr predict clip.mp4` on frames: nobody, nobody, the astronaut, again, nobody (a frame
    the detector misses), the astronaut twice more, moving right -> (source frames, clip, out folder, stdout)."""
    import contextlib
    import io

    from cliffhmr.cli import main

    tmp = tmp_path_factory.mktemp("astronaut")
    frames = [blank_frame(), blank_frame(), *map(astronaut_frame, (0, 3)), blank_frame(), *map(astronaut_frame, (9, 12))]
    clip = write_video(tmp / "clip.mp4", [i / 10 for i in range(7)], size=(256, 256), frames=frames)
    out = tmp / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["predict", str(clip), "--out", str(out), "--fit-iterations", "60"])
    assert code == 0
    return frames, clip, out, stdout.getvalue()
