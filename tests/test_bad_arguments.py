"""Arguments that make no sense, on every command: numbers out of range or not finite, configs that
are folders or not text, a log cut off by a killed run. Each is one line, exit code 2, no
traceback, and nothing written; a cut-off log line is what a kill leaves, so resuming drops it."""

from __future__ import annotations

import json
import sys
import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, run


def expect_one_line(args, capsys, *fragments):
    code, io = run(args, capsys)
    assert_one_line_error(code, io.err, *fragments)


@pytest.fixture
def image(tmp_path):
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(tmp_path / "p.png")
    return tmp_path / "p.png"


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--focal", "inf"], "focal length must be a number of pixels between 1 and 1e+07, got inf"),
        (["--focal", "nan"], "focal length must be a number of pixels between 1 and 1e+07, got nan"),
        (["--focal", "-5"], "focal length must be a number of pixels between 1 and 1e+07"),
        (["--focal", "0"], "focal length must be a number of pixels between 1 and 1e+07"),
        (["--focal", "abc"], "focal length must be a number of pixels between 1 and 1e+07, got 'abc'"),
        (["--intrinsics", "nan,100,40,30"], "finite"),
        (["--intrinsics", "100,-100,40,30"], "positive focal lengths"),
        (["--intrinsics", "100,100,40"], "fx,fy,cx,cy"),
        (["--fit-iterations", "-1"], "fit iterations must be a whole number >= 0, got -1"),
        (["--fit-iterations", "1.5"], "invalid int value"),
        (["--focal", "500", "--intrinsics", "500,500,40,30"], "not allowed with argument"),
    ],
)
def test_predict_numbers(flags, fragment, image, tmp_path, capsys):
    expect_one_line(["predict", image, "--out", tmp_path / "out", *flags], capsys, fragment)
    assert not (tmp_path / "out").exists()


def test_missing_or_misspelt_arguments_are_one_line_too(image, tmp_path, capsys):
    expect_one_line(["predict", image], capsys, "required: --out", "cliffhmr predict --help")
    expect_one_line(["predict", image, "--out", tmp_path / "out", "--focus", "5"], capsys, "unrecognized arguments: --focus")
    expect_one_line([], capsys, "required: command")
    expect_one_line(["convert", "3dpw"], capsys, "required: --root, --smpl, --out")
    expect_one_line(["eval", "--dataset", "nope"], capsys, "invalid choice: 'nope'")
    expect_one_line(["train"], capsys, "required: --config")


@pytest.mark.parametrize("value", ["nan", "-0.1", "1.5"])
def test_annotate_min_quality_outside_0_to_1(value, image, tmp_path, capsys):
    expect_one_line(["annotate", image, "--out", tmp_path / "a.npz", "--min-quality", value], capsys, "--min-quality must be between 0 and 1")
    assert not (tmp_path / "a.npz").exists()


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--shard-size", "0"], "--shard-size must be at least 1 image, got 0"),
        (["--refine-steps", "-1"], "--refine-steps must be >= 0, got -1"),
        (["--ray", "local", "--ray-workers", "0"], "--ray-workers must be at least 1, got 0"),
        (["--refine", "fine"], "invalid choice"),
    ],
)
def test_annotate_work_settings_out_of_range(flags, fragment, image, tmp_path, capsys):
    expect_one_line(["annotate", image, "--out", tmp_path / "a.npz", *flags], capsys, fragment)
    assert not list(tmp_path.glob("a.npz*"))  # neither the file nor a work folder


def test_annotate_on_ray_without_ray(image, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    expect_one_line(["annotate", image, "--out", tmp_path / "a.npz", "--ray", "local"], capsys, "--ray needs Ray", "cliff-hmr[ray]")
    assert not list(tmp_path.glob("a.npz*"))


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--batch-size", "0"], "batch size must be a whole number >= 1, got 0"),
        (["--batch-size", "-3"], "batch size must be a whole number >= 1"),
        (["--workers", "-1"], "workers must be a whole number >= 0, got -1"),
        (["--batch-size", "1e3"], "invalid int value"),
    ],
)
def test_eval_numbers(flags, fragment, tmp_path, capsys):
    args = ["eval", "--checkpoint", tmp_path / "c.pt", "--dataset", "synthetic", "--root", tmp_path, "--smpl", tmp_path / "s.npz"]
    expect_one_line([*args, *flags], capsys, fragment)


GOOD = ["data.datasets=[{npz: a.npz, root: r}]", "body.smpl=s.pkl"]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.lr=-1", "optim.lr must be > 0, got -1"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("optim.lr=.nan", "optim.lr must be a finite number, got nan"),
        ("optim.lr=.inf", "optim.lr must be a finite number, got inf"),
        ("optim.weight_decay=-1e-3", "optim.weight_decay must be >= 0"),  # YAML 1.1 reads -1e-3 as text
        ("optim.lr=fast", "optim.lr must be float, got 'fast'"),
        ("optim.grad_clip=-1", "optim.grad_clip must be >= 0"),
        ("optim.warmup_steps=-5", "optim.warmup_steps must be >= 0"),
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("data.num_workers=-1", "data.num_workers must be >= 0"),
        ("data.augment.flip_prob=2", "data.augment.flip_prob must be <= 1"),
        ("data.augment.scale_factor=1.5", "data.augment.scale_factor must be < 1"),
        ("data.augment.rot_factor=-30", "data.augment.rot_factor must be >= 0"),
        ("data.datasets=[{npz: a.npz, root: r, ratio: -1}]", "data.datasets[0].ratio must be >= 0"),
        ("loss.keypoint_2d=-5", "loss.keypoint_2d must be >= 0"),
        ("loss.hmr_focal=0", "loss.hmr_focal must be > 0"),
        ("model.n_iter=0", "model.n_iter must be >= 1"),
        ("train.steps=0", "train.steps must be >= 1"),
        ("train.log_every=0", "train.log_every must be >= 1"),
        ("train.checkpoint_every=-1", "train.checkpoint_every must be >= 1"),
    ],
)
def test_train_config_numbers(override, fragment, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("{}")
    expect_one_line(["train", "--config", config, *GOOD, override], capsys, "config: " + fragment)


def test_train_config_files_that_are_not_configs(tmp_path, capsys):
    cases = {
        "folder": (tmp_path, "is a folder, not a config file"),
        "missing": (tmp_path / "none.yaml", "no such config file"),
        "latin-1": (tmp_path / "latin.yaml", "config file is not UTF-8 text"),
        "deep": (tmp_path / "deep.yaml", "nested too deeply to be a config"),
        "a list": (tmp_path / "list.yaml", "a config is a mapping of sections"),
        "broken": (tmp_path / "broken.yaml", "not valid YAML"),
    }
    (tmp_path / "latin.yaml").write_bytes("optim:\n  lr: 1e-4  # r\xe9glage\n".encode("latin-1"))
    (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "list.yaml").write_text("[data, model]")
    (tmp_path / "broken.yaml").write_text("optim: {lr: [\n")
    for name, (path, fragment) in cases.items():
        expect_one_line(["train", "--config", path, *GOOD], capsys, str(path), fragment)


def test_resume_drops_a_log_line_cut_off_by_a_kill_and_refuses_a_damaged_one(tmp_path):
    """What a resume keeps of log.jsonl (train calls this with the checkpoint's step)."""
    from cliffhmr.errors import CliffError
    from cliffhmr.train.engine import _truncate_log

    log = tmp_path / "log.jsonl"
    records = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3)]
    log.write_text("\n".join(records) + '\n{"step": 4, "lo')  # a kill in the middle of appending step 4
    _truncate_log(log, 3)
    assert log.read_text() == "\n".join(records) + "\n"
    log.write_text('{"step": 1, "lo\n' + records[1] + "\n")  # damaged, not cut off: no step 1 to keep
    with pytest.raises(CliffError, match="log.jsonl: line 1 is not a log record"):
        _truncate_log(log, 2)
    log.write_text(records[0] + "\n" + records[2] + "\n" + "garbage\n")  # past the resumed step: dropped unread
    _truncate_log(log, 1)
    assert log.read_text() == records[0] + "\n"
