"""Checkpoints and weight files that cannot be used: refused up front with one line and exit code
2, before anything is written (never a traceback, a terabyte allocation or NaN results)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cliffhmr.synthetic.toy_smpl import write_toy_smpl
from conftest import assert_one_line_error, run

# The keys that make a state_dict a res50 CLIFF's: load_checkpoint's checks run before the
# network is built, so most cases need no real weights.
RES50 = {"encoder.layer4.0.conv1.weight": torch.zeros(2, 2)}


def _cliff_checkpoint(model: dict, **config) -> dict:
    return {"model": model, "config": {"backbone": "res50", "bbox_info": "official", "crop_height": 256, **config}}


CHECKPOINTS = {
    "crop of a million rows": (_cliff_checkpoint(RES50, crop_height=1_000_000), "invalid crop_height 1000000"),
    "NaN weights": (_cliff_checkpoint({**RES50, "regressor.fc1.weight": torch.full((3, 3), torch.nan)}),
                    "1 NaN or infinite key (regressor.fc1.weight)"),
    "a number among the weights": (_cliff_checkpoint({**RES50, "regressor.fc1.weight": 1.5}), "1 non-tensor key"),
    "a bare tensor": (torch.zeros(3), "expected a dict with a 'model' state_dict"),
}


@pytest.fixture(scope="module")
def smpl(tmp_path_factory):
    return write_toy_smpl(tmp_path_factory.mktemp("toy") / "toy_smpl.npz")


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_eval_refuses_the_checkpoint(case, smpl, tmp_path, capsys):
    content, expected = CHECKPOINTS[case]
    torch.save(content, tmp_path / "ckpt.pt")
    code, captured = run(["eval", "--checkpoint", tmp_path / "ckpt.pt", "--dataset", "synthetic", "--root", tmp_path,
                          "--smpl", smpl, "--out", tmp_path / "out", "--workers", 0], capsys)  # fmt: skip
    assert_one_line_error(code, captured.err, "ckpt.pt", expected)
    assert not (tmp_path / "out").exists()


def test_predict_refuses_an_absurd_crop_before_writing(photo, smpl_pkl, tmp_path, capsys):
    image, boxes = photo
    torch.save(CHECKPOINTS["crop of a million rows"][0], tmp_path / "ckpt.pt")
    code, captured = run(["predict", image, "--out", tmp_path / "out", "--checkpoint", tmp_path / "ckpt.pt", "--smpl", smpl_pkl,
                          "--boxes", boxes], capsys)  # fmt: skip
    assert_one_line_error(code, captured.err, "invalid crop_height 1000000")
    assert not (tmp_path / "out").exists()


def _train(tmp_path, smpl, capsys, **settings):
    """`cliffhmr train` with `settings` on a dataset it never reaches (every case fails before)."""
    (tmp_path / "none.yaml").write_text("{}\n")
    settings = {"data.datasets": f"[{{npz: '{tmp_path / 'never.npz'}', root: '{tmp_path}'}}]", "body.smpl": f"'{smpl}'",
                "train.out_dir": f"'{tmp_path / 'out'}'", "train.device": "cpu", "train.progress": "false", **settings}  # fmt: skip
    code, captured = run(["train", "--config", tmp_path / "none.yaml", *(f"{k}={v}" for k, v in settings.items())], capsys)
    assert not (tmp_path / "out").exists()
    return code, captured.err


@pytest.mark.parametrize("content, expected", [
    (torch.zeros(3, 3), "backbone.pt: not a usable backbone state_dict: a Tensor, not a state_dict"),
    ({"conv1.weight": torch.full((64, 3, 7, 7), torch.inf)}, "backbone.pt: not a usable backbone state_dict: 1 NaN or infinite key"),
    ({"state_dict": {"conv1.weight": [1, 2]}}, "backbone.pt: not a usable backbone state_dict: 1 non-tensor key"),
])  # fmt: skip
def test_train_refuses_the_pretrained_backbone(content, expected, smpl, tmp_path, capsys):
    torch.save(content, tmp_path / "backbone.pt")
    code, err = _train(tmp_path, smpl, capsys, **{"model.pretrained_backbone": f"'{tmp_path / 'backbone.pt'}'"})
    assert_one_line_error(code, err, expected)


@pytest.mark.parametrize("model, expected", [
    ({"encoder.stage4.0.weight": torch.zeros(1)}, "does not fit CLIFF-res50"),  # an hr48 run's, or any other network's
    ({**RES50, "regressor.fc1.weight": torch.full((3, 3), torch.nan)}, "last.pt: cannot resume from it: 1 NaN or infinite key"),
])  # fmt: skip
def test_train_refuses_to_resume_another_network(model, expected, smpl, tmp_path, capsys):
    torch.save({"model": model, "optimizer": {}, "scheduler": {}, "step": 1, "rng": []}, tmp_path / "last.pt")
    code, err = _train(tmp_path, smpl, capsys, **{"train.resume": f"'{tmp_path / 'last.pt'}'"})
    assert_one_line_error(code, err, "last.pt", expected)


@pytest.mark.parametrize("cam, expected", [
    (np.array([0.9, None, 0.0], dtype=object), "mean_params.npz: array 'cam' has dtype object"),
    (np.array([0.9, np.nan, 0.0]), "mean_params.npz: cam must hold finite real numbers"),
])  # fmt: skip
def test_train_refuses_the_mean_parameters(cam, expected, smpl, tmp_path, capsys):
    np.savez(tmp_path / "mean_params.npz", pose=np.zeros(72), shape=np.zeros(10), cam=cam)
    code, err = _train(tmp_path, smpl, capsys, **{"model.mean_params": f"'{tmp_path / 'mean_params.npz'}'"})
    assert_one_line_error(code, err, expected)


def test_train_refuses_an_absurd_crop(smpl, tmp_path, capsys):
    code, err = _train(tmp_path, smpl, capsys, **{"model.crop_height": 1_000_000})
    assert_one_line_error(code, err, "model.crop_height must be a multiple of 4 from 4 to 1024")
