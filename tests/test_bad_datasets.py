"""Broken dataset npz files for `train` and `eval`: one line, exit code 2, nothing written."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from cliffhmr.models import CLIFF, save_checkpoint
from cliffhmr.synthetic.toy_smpl import write_toy_smpl
from conftest import assert_one_line_error, run

ROWS = {
    "imgname": np.array(["a.png", "b.png"]),
    "center": np.zeros((2, 2), np.float32),
    "scale": np.ones(2, np.float32),
    "part": np.zeros((2, 24, 3), np.float32),
}


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _declaring_rows(n: int) -> bytes:
    """An npz whose 'center' header declares n rows and holds none: numpy would allocate them first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for key, value in ROWS.items():
            member = io.BytesIO()
            if key == "center":
                np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (n, 2)})
            else:
                np.lib.format.write_array(member, value)
            z.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, ROWS["center"])
    return buffer.getvalue()


BROKEN = {
    "zero bytes": (b"", "not an .npz archive"),
    "truncated": (_npz_bytes(**ROWS)[:300], "not an .npz archive"),
    "a .npy renamed": (_npy_bytes(), "not an .npz archive"),
    "a pickle": (pickle.dumps(ROWS), "not an .npz archive"),
    "object array": (_npz_bytes(**{**ROWS, "scale": np.array([1.0, {}], dtype=object)}), "'scale' has dtype object"),
    "record array": (_npz_bytes(**{**ROWS, "scale": np.zeros(2, "f4,f4")}), "'scale' has dtype"),
    "a trillion rows declared": (_declaring_rows(10**12), "'center' declares shape (1000000000000, 2)"),
    "missing key": (_npz_bytes(**{k: v for k, v in ROWS.items() if k != "scale"}), "missing key(s) scale"),
    "wrong shape": (_npz_bytes(**{**ROWS, "center": np.zeros((2, 3))}), "'center' must have shape (N, 2)"),
    "a single value": (_npz_bytes(**{**ROWS, "scale": np.float32(1)}), "'scale' must hold one row per sample"),
    "strings for numbers": (_npz_bytes(**{**ROWS, "scale": np.array(["x", "y"])}), "'scale' is not numeric"),
    "NaN centre": (_npz_bytes(**{**ROWS, "center": np.full((2, 2), np.nan)}), "NaN or infinite value in 'center'"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A toy SMPL file, a small random CLIFF checkpoint (eval loads it first) and an empty config."""
    d = tmp_path_factory.mktemp("bad_datasets")
    (d / "none.yaml").write_text("{}\n")
    write_toy_smpl(d / "toy_smpl.npz")
    torch.manual_seed(0)
    save_checkpoint(d / "ckpt.pt", CLIFF("res50", crop_height=64), "official")
    return d


def _train_args(npz, data, out) -> list:
    settings = {
        "data.datasets": f"[{{npz: '{npz}', root: '{data}'}}]", "data.num_workers": 0,
        "body.smpl": f"'{data / 'toy_smpl.npz'}'", "model.crop_height": 64, "train.out_dir": f"'{out}'",
        "train.steps": 1, "train.progress": "false", "train.device": "cpu",
    }  # fmt: skip
    return ["train", "--config", data / "none.yaml", *(f"{k}={v}" for k, v in settings.items())]


def _eval_args(npz, data, out) -> list:
    return ["eval", "--checkpoint", data / "ckpt.pt", "--dataset", "synthetic", "--root", data, "--npz", npz,
            "--smpl", data / "toy_smpl.npz", "--out", out, "--workers", 0]  # fmt: skip


# Every kind through train; eval reads datasets with the same code, and loading its checkpoint
# first costs seconds per case, so it gets one case per way of failing.
CASES = [("train", case) for case in BROKEN] + [("eval", case) for case in ("truncated", "object array", "wrong shape")]


@pytest.mark.parametrize("command, case", CASES)
def test_broken_dataset_is_one_line(files, tmp_path, capsys, command, case):
    content, expected = BROKEN[case]
    npz, out = tmp_path / "ann.npz", tmp_path / "out"
    npz.write_bytes(content)
    code, captured = run((_train_args if command == "train" else _eval_args)(npz, files, out), capsys)
    assert_one_line_error(code, captured.err, "ann.npz", expected)
    assert not out.exists()


def test_a_folder_named_as_the_dataset(files, tmp_path, capsys):
    (tmp_path / "ann.npz").mkdir()
    code, captured = run(_train_args(tmp_path / "ann.npz", files, tmp_path / "out"), capsys)
    assert_one_line_error(code, captured.err, "ann.npz: is a folder, not a dataset file")
