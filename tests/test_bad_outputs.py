"""Output places that cannot take the results: a file where a folder should be, a folder where a
file should be, a read-only place, a disk that fills up. Each is one line naming the path and the
OS's reason, exit code 2, and nothing but complete files left behind.

We run as root here, where chmod does not stop writes: a read-only place and a full disk are the
OS errors injected where the project writes (tempfile.mkstemp, a writer's write); the chmod case
runs only for other users."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, run


def expect_one_line(args, capsys, *fragments):
    """exit 2, one stderr line holding `fragments` beside a folder's progress bar, no traceback."""
    code, io = run(args, capsys)
    lines = [line for line in io.err.splitlines() if line.strip() and not line.startswith("predict:")]
    assert "Traceback" not in io.err
    assert_one_line_error(code, "\n".join(lines), *map(str, fragments))


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".partial" in p.name or ".write-test" in p.name]


def os_error(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.fixture
def no_work(monkeypatch):
    """A bad output place is refused before any model loads, not after the work is done."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a run whose output place is bad")

    monkeypatch.setattr("cliffhmr.inference.pipeline.Predictor.__init__", refuse)
    monkeypatch.setattr("cliffhmr.train.engine.build_model", refuse)


def test_predict_out_that_is_a_file_or_inside_one(tmp_path, capsys, photo, no_work):
    image, _ = photo
    (tmp_path / "taken").write_text("keep me")
    expect_one_line(["predict", image, "--out", tmp_path / "taken"], capsys, tmp_path / "taken", "a file, not a folder")
    expect_one_line(["predict", image, "--out", tmp_path / "taken" / "sub"], capsys, f"{tmp_path / 'taken'}: cannot write (it is a file")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_predict_into_a_read_only_place(tmp_path, capsys, photo, monkeypatch, no_work):
    image, _ = photo
    monkeypatch.setattr(tempfile, "mkstemp", os_error(errno.EROFS))
    expect_one_line(["predict", image, "--out", tmp_path / "out"], capsys, tmp_path / "out", "Read-only file system")
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_predict_into_a_folder_without_write_permission(tmp_path, capsys, photo, no_work):
    image, _ = photo
    out = tmp_path / "locked"
    out.mkdir(mode=0o555)
    expect_one_line(["predict", image, "--out", out], capsys, out, "Permission denied")
    assert not any(out.iterdir())


def test_a_full_disk_mid_run_keeps_the_complete_sets_and_no_partial_files(tmp_path, capsys, photo, res50_ckpt, smpl_pkl, monkeypatch):
    """Two images, two people each (the cheap network path, no pictures): the disk fills up while
    the second image's JSON, its set's last file, is half written. The first image's set is
    complete; the second keeps its earlier run's set, whole; no temporary file is left."""
    image, boxes = photo
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(image, folder / name)
    people = json.loads(boxes.read_text())["scene.png"]
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": people, "b.png": people}))
    args = ["predict", folder, "--out", out, "--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--boxes", tmp_path / "boxes.json", "--no-render"]
    out.mkdir()
    earlier = ["b.npz", "b.json", "b_person0.obj", "b_person0.glb", "b_person1.obj", "b_person1.glb"]
    for name in earlier:
        (out / name).write_bytes(f"{name} of an earlier run".encode())

    real_write_text = Path.write_text

    def fills_up(self, text, *a, **k):
        if self.name.startswith(".b.") and self.suffix == ".json":
            real_write_text(self, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_text(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", fills_up)
    expect_one_line(args, capsys, out / "b.json", "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == sorted([*earlier, *(n.replace("b", "a", 1) for n in earlier)])
    assert all((out / name).read_bytes() == f"{name} of an earlier run".encode() for name in earlier) and no_partial_files(out)
    assert np.load(out / "a.npz")["global_t"].shape == (2, 3) and json.loads((out / "a.json").read_text())["people"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic
    from cliffhmr.synthetic.toy_smpl import write_toy_smpl

    root = tmp_path_factory.mktemp("synthetic")
    write_toy_smpl(root / "toy_smpl.npz")
    generate_synthetic(root, root / "toy_smpl.npz", SyntheticConfig(train=4, test=2, width=64, height=48, seed=1))
    return root


def _train_args(data: Path, out: Path) -> list:
    return ["train", f"data.datasets=[{{npz: '{data / 'train.npz'}', root: '{data}'}}]", "data.batch_size=2",
            "data.num_workers=0", f"body.smpl='{data / 'toy_smpl.npz'}'", "model.crop_height=32", f"train.out_dir='{out}'",
            "train.steps=1", "train.progress=false", "train.tensorboard=false", "train.device=cpu", "train.precision=fp32"]  # fmt: skip


def test_train_out_dir_that_is_a_file(synthetic, tmp_path, capsys, no_work):
    (tmp_path / "run").write_text("keep me")
    args = _train_args(synthetic, tmp_path / "run")
    config = tmp_path / "c.yaml"
    config.write_text("{}")
    expect_one_line([args[0], "--config", config, *args[1:]], capsys, tmp_path / "run", "a file, not a folder")
    assert (tmp_path / "run").read_text() == "keep me"


def test_train_on_a_full_disk_stops_at_the_checkpoint_with_one_line(synthetic, tmp_path, capsys, monkeypatch):
    def fills_up(obj, f, *a, **k):
        if isinstance(f, (str, os.PathLike)):  # torch's own writer, as it fails on /dev/full
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    config = tmp_path / "c.yaml"
    config.write_text("{}")
    monkeypatch.setattr(torch, "save", fills_up)
    out = tmp_path / "run"
    args = _train_args(synthetic, out)
    expect_one_line([args[0], "--config", config, *args[1:]], capsys, out / "last.pt", "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl"]


def test_eval_and_convert_and_annotate_refuse_their_out_before_working(tmp_path, capsys, photo, no_work):
    image, _ = photo
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    root = tmp_path / "root"
    root.mkdir()
    eval_args = ["eval", "--checkpoint", tmp_path / "none.pt", "--dataset", "synthetic", "--root", root, "--smpl", tmp_path / "s.npz"]
    expect_one_line([*eval_args, "--out", taken, "--device", "cpu"], capsys, taken, "a file, not a folder")
    convert_args = ["convert", "3dpw", "--root", root, "--smpl", root]
    expect_one_line([*convert_args, "--out", taken / "x.npz"], capsys, taken, "a file, not a folder")
    expect_one_line([*convert_args, "--out", root], capsys, root, "it is a folder")
    expect_one_line(["annotate", image, "--out", taken / "x.npz"], capsys, taken, "a file, not a folder")
    assert taken.read_text() == "keep me" and not any(root.iterdir())


def test_the_python_api_says_the_same(tmp_path, monkeypatch):
    """write_outputs and the atomic writers raise CliffError with the same line."""
    from cliffhmr.atomic import check_output_dir, write_npz_atomic
    from cliffhmr.errors import CliffError

    (tmp_path / "taken").write_text("")
    with pytest.raises(CliffError, match="a file, not a folder"):
        check_output_dir(tmp_path / "taken")
    with pytest.raises(CliffError, match="taken: cannot write \\(it is a file, not a folder\\)"):
        write_npz_atomic(tmp_path / "taken" / "x.npz", {"a": np.zeros(3)})
    monkeypatch.setattr(np, "savez", os_error(errno.ENOSPC))
    with pytest.raises(CliffError, match="y.npz: cannot write \\(No space left on device\\)"):
        write_npz_atomic(tmp_path / "y.npz", {"a": np.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_set_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    """all_or_none (an image's result set, eval's three files): the second write fails, so the first
    is not published either; the earlier files stay and no temporary file is left."""
    from cliffhmr.atomic import all_or_none, write_npz_atomic, write_text_atomic
    from cliffhmr.errors import CliffError

    for name in ("results.json", "results.md"):
        (tmp_path / name).write_text("earlier")
    monkeypatch.setattr(np, "savez", os_error(errno.ENOSPC))
    with pytest.raises(CliffError, match="per_sample.npz: cannot write \\(No space left on device\\)"):
        with all_or_none():
            write_text_atomic(tmp_path / "results.json", "new")
            write_text_atomic(tmp_path / "results.md", "new")
            write_npz_atomic(tmp_path / "per_sample.npz", {"a": np.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]
    assert all((tmp_path / name).read_text() == "earlier" for name in ("results.json", "results.md"))


def test_train_log_that_cannot_be_appended_to(tmp_path):
    from cliffhmr.errors import CliffError
    from cliffhmr.train.config import RunConfig
    from cliffhmr.train.engine import _log

    (tmp_path / "log.jsonl").mkdir()  # what the OS refuses to append to, even for root
    with pytest.raises(CliffError, match="log.jsonl: cannot write \\(Is a directory\\)"):
        _log(tmp_path, 1, 0.5, {}, 1e-4, 1.0, None, RunConfig())
