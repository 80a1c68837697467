"""The annotator at scale: shards that a killed run resumes to the same file, bad items logged
one by one while the rest is annotated, a work folder of other arguments refused, and the
network refinement (--refine network) bringing the body onto the keypoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliffhmr.synthetic.toy_smpl import write_toy_smpl

from conftest import ASTRONAUT_KEYPOINTS, assert_one_line_error, child_env, run

SIZE = 200  # pixels, square images


def person(dx: float, dy: float) -> list[list[float]]:
    """The astronaut's keypoints (a 512-pixel photo) at a third of the size, moved by (dx, dy)."""
    return [[x / 3 + dx, y / 3 + dy, c] for x, y, c in ASTRONAUT_KEYPOINTS]


def write_folder(folder: Path, people: dict[str, list], extra: dict[str, list] | None = None) -> Path:
    """Noise images named as `people`'s keys and a COCO results file of their people's keypoints
    (plus `extra` entries for images that are not in the folder) -> the keypoint file."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    results = []
    for name, kps in people.items():
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / name)
    for name, kps in {**people, **(extra or {})}.items():
        results += [{"file_name": name, "keypoints": sum(kp, []), "score": 1.0} for kp in kps]
    path = folder.parent / "keypoints.json"
    path.write_text(json.dumps(results))
    return path


@pytest.fixture(scope="module")
def toy_smpl(tmp_path_factory):
    return write_toy_smpl(tmp_path_factory.mktemp("toy") / "toy_smpl.npz")


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_a_killed_run_resumes_to_the_same_file(toy_smpl, tmp_path):
    names = [f"img{k:02d}.png" for k in range(8)]
    kp_file = write_folder(tmp_path / "images", {n: [person(5 * k, 3 * k)] for k, n in enumerate(names)})
    common = [tmp_path / "images", "--keypoints", kp_file, "--smpl", toy_smpl, "--fit-iterations", "30", "--shard-size", "2"]
    cmd = [sys.executable, "-m", "cliffhmr", "annotate"]

    whole = subprocess.run([*cmd, *map(str, common), "--out", str(tmp_path / "whole.npz")], env=child_env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "resumed.npz"
    shards = tmp_path / "resumed.npz.shards"
    child = subprocess.Popen([*cmd, *map(str, common), "--out", str(out)], env=child_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (shards / "shard-00000.npz").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    done = sorted(p.name for p in shards.glob("shard-*.npz"))
    assert "shard-00000.npz" in done and len(done) < 4 and not out.exists(), done  # killed midway

    again = subprocess.run([*cmd, *map(str, common), "--out", str(out)], env=child_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resumed: {len(done)} shard(s) done before" in again.stdout
    a, b = arrays(tmp_path / "whole.npz"), arrays(out)
    assert sorted(a) == sorted(b) and len(a["imgname"]) == 8
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not shards.exists()  # the work folder goes once merged


def test_bad_items_are_logged_and_the_rest_annotated(toy_smpl, tmp_path, capsys):
    nan_conf = person(10, 10)
    nan_conf[5][2] = float("nan")
    people = {
        "good.png": [person(0, 0), person(60, 5)],
        "nan.png": [nan_conf, person(20, 0)],  # the first person is skipped, the second annotated
        "outside.png": [person(3 * SIZE, 0)],
        "boxed.png": [person(0, 0), person(50, 0)],
        "unlisted.png": [],  # the file names no one in it
    }
    kp_file = write_folder(tmp_path / "images", people, extra={"ghost.png": [person(0, 0)]})
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"boxed.png": [[30, 30, 30, 90], [50, 20, 120, 190]]}))  # the first has no width
    out = tmp_path / "gt.npz"
    code, io = run(["annotate", tmp_path / "images", "--out", out, "--keypoints", kp_file, "--boxes", boxes, "--smpl", toy_smpl,
                    "--fit-iterations", "5", "--shard-size", "2"], capsys)  # fmt: skip
    assert code == 0, io.err
    log = {e["item"]: e["reason"] for e in json.loads((tmp_path / "gt.skipped.json").read_text())}
    assert sorted(log) == ["boxed.png#0", "broken.png", "ghost.png", "nan.png#0", "outside.png#0", "unlisted.png"], log
    assert "zero-area box" in log["boxed.png#0"] and "unreadable image" in log["broken.png"]
    assert "not among the input images" in log["ghost.png"] and "NaN" in log["nan.png#0"]
    assert "outside the 200x200 image" in log["outside.png#0"] and "no keypoints" in log["unlisted.png"]
    assert "6 items skipped" in io.out
    rows = np.load(out)
    assert sorted(rows["imgname"].tolist()) == ["boxed.png", "good.png", "good.png", "nan.png"]
    # The annotated people are the right ones: their keypoints, in the J24 slots of COCO's.
    from cliffhmr.data.joints import COCO17_TO_J24

    nan_row = rows["part"][rows["imgname"].tolist().index("nan.png")]
    np.testing.assert_allclose(nan_row[COCO17_TO_J24, :2][[0, 5]], np.array(person(20, 0))[[0, 5], :2], atol=1e-4)


def test_nothing_to_annotate_is_exit_2(toy_smpl, tmp_path, capsys):
    kp_file = write_folder(tmp_path / "images", {"far.png": [person(5 * SIZE, 5 * SIZE)]})
    code, io = run(["annotate", tmp_path / "images", "--out", tmp_path / "x.npz", "--keypoints", kp_file, "--smpl", toy_smpl], capsys)
    assert code == 2 and "1 item skipped" in io.err and not (tmp_path / "x.npz").exists()


def test_a_work_folder_of_other_arguments_is_refused(toy_smpl, tmp_path, capsys, monkeypatch):
    from cliffhmr.annotation import shards

    kp_file = write_folder(tmp_path / "images", {f"i{k}.png": [person(4 * k, 0)] for k in range(3)})
    common = ["annotate", tmp_path / "images", "--out", tmp_path / "a.npz", "--keypoints", kp_file, "--smpl", toy_smpl,
              "--fit-iterations", "5", "--shard-size", "1"]  # fmt: skip

    def stop(*args):
        raise KeyboardInterrupt  # as Ctrl-C after the last shard: the work folder stays

    with monkeypatch.context() as m:
        m.setattr(shards, "merge", stop)
        assert run(common, capsys)[0] == 130
    assert len(list((tmp_path / "a.npz.shards").glob("shard-*.npz"))) == 3
    code, io = run([*common, "--min-quality", "0.3"], capsys)
    assert_one_line_error(code, io.err, "a.npz.shards", "other arguments", "min_quality")
    code, io = run(common, capsys)
    assert code == 0 and "resumed: 3 shard(s)" in io.out, io.err


def test_refine_without_a_network_is_one_line(tmp_path, capsys):
    (tmp_path / "p.png").write_bytes((Path(__file__).parent.parent / "examples" / "astronaut.jpg").read_bytes())
    for mode in ("none", "network"):
        code, io = run(["annotate", tmp_path / "p.png", "--out", tmp_path / "a.npz", "--refine", mode], capsys)
        assert_one_line_error(code, io.err, f"--refine {mode}", "--checkpoint")
    assert not list(tmp_path.glob("a.npz*"))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A random CLIFF on 16-pixel crops: fine-tuning it costs little."""
    import torch

    from cliffhmr.models import CLIFF, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, CLIFF("res50", crop_height=16), "plain")
    return path


def test_network_refinement_reads_a_tuned_copy_per_shard(toy_smpl, tiny_ckpt, tmp_path, capsys):
    kp_file = write_folder(tmp_path / "images", {"a.png": [person(0, 0)], "b.png": [person(30, 10), person(70, 0)]})
    common = ["--keypoints", kp_file, "--smpl", toy_smpl, "--checkpoint", tiny_ckpt, "--shard-size", "1"]

    def annotate(folder, out, *flags):
        code, io = run(["annotate", folder, "--out", tmp_path / out, *common, *flags], capsys)
        assert code == 0, io.err
        return arrays(tmp_path / out)

    none = annotate(tmp_path / "images", "none.npz", "--refine", "none")
    # No steps: the tuned copy is the network itself, and the rows are --refine none's.
    zero = annotate(tmp_path / "images", "zero.npz", "--refine", "network", "--refine-steps", "0")
    assert all(np.array_equal(none[k], zero[k]) for k in none)
    tuned = annotate(tmp_path / "images", "tuned.npz", "--refine", "network", "--refine-steps", "2")
    assert not np.allclose(tuned["pose"], none["pose"], atol=1e-3) and np.array_equal(tuned["part"], none["part"])
    # A shard's result depends on its own people only: b.png (the second shard, tuned after a.png's)
    # alone gets the same rows, to the last bit.
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "b.png").write_bytes((tmp_path / "images" / "b.png").read_bytes())
    alone = annotate(tmp_path / "alone", "alone.npz", "--refine", "network", "--refine-steps", "2")
    rows = tuned["imgname"] == "b.png"
    for key in ("pose", "shape", "transl", "quality"):
        np.testing.assert_array_equal(alone[key], tuned[key][rows], err_msg=key)


def test_two_ray_workers_write_the_rows_of_one_process(toy_smpl, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'cliff-hmr[ray]'")
    kp_file = write_folder(tmp_path / "images", {f"i{k}.png": [person(6 * k, 2 * k)] for k in range(4)})
    common = ["annotate", tmp_path / "images", "--keypoints", kp_file, "--smpl", toy_smpl, "--fit-iterations", "10", "--shard-size", "1"]
    code, io = run([*common, "--out", tmp_path / "one.npz"], capsys)
    assert code == 0, io.err
    code, io = run([*common, "--out", tmp_path / "ray.npz", "--ray", "local", "--ray-workers", "2"], capsys)
    assert code == 0, io.err
    a, b = arrays(tmp_path / "one.npz"), arrays(tmp_path / "ray.npz")
    assert sorted(a) == sorted(b) and len(a["imgname"]) == 4
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_worker_processes_write_the_rows_of_one_process(toy_smpl, tmp_path, capsys):
    """--workers 2: the shards in two processes of this machine, the same file as one process."""
    kp_file = write_folder(tmp_path / "images", {f"i{k}.png": [person(6 * k, 2 * k)] for k in range(4)})
    common = ["annotate", tmp_path / "images", "--keypoints", kp_file, "--smpl", toy_smpl, "--fit-iterations", "10", "--shard-size", "1"]
    code, io = run([*common, "--out", tmp_path / "one.npz"], capsys)
    assert code == 0, io.err
    code, io = run([*common, "--out", tmp_path / "two.npz", "--workers", "2"], capsys)
    assert code == 0, io.err
    a, b = arrays(tmp_path / "one.npz"), arrays(tmp_path / "two.npz")
    assert sorted(a) == sorted(b) and len(a["imgname"]) == 4
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    code, io = run([*common, "--out", tmp_path / "zero.npz", "--workers", "0"], capsys)
    assert code == 2 and "--workers must be at least 1" in io.err
