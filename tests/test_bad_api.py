"""The Python API's mistakes raise CliffError, one class to catch, with the CLI's lines: images that
are not pixels, boxes and keypoints that are not numbers or have the wrong shape, cameras and
settings out of range, a device the machine lacks."""

from __future__ import annotations

import numpy as np
import pytest

from cliffhmr.errors import CliffError
from cliffhmr.evaluation.evaluate import EvalSettings
from cliffhmr.geometry.camera import Intrinsics
from cliffhmr.perception.image import load_image
from cliffhmr.inference.pipeline import Predictor, PredictorConfig
from conftest import run

IMAGE = np.zeros((48, 64, 3), np.uint8)


@pytest.fixture(scope="module")
def predictor(res50_ckpt, smpl_pkl):
    return Predictor(PredictorConfig(checkpoint=str(res50_ckpt), body_model=str(smpl_pkl)))


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "source, fragment",
    [
        (np.full((48, 64), "a"), "expected uint8, uint16 or float pixels, got <U1"),
        (np.empty((48, 64, 3), object), "got object"),
        (np.zeros((48, 64, 3), np.int64), "got int64"),
        (np.zeros((48, 64, 3), bool), "got bool"),
        (np.zeros((48, 64, 2), np.uint8), "got shape (48, 64, 2)"),
        (np.zeros(64, np.uint8), "got shape (64,)"),
        (np.full((48, 64, 3), np.nan), "NaN or infinite"),
        (42, "an image is a path or an array, got int"),
        (None, "got NoneType"),
    ],
)
def test_images_that_are_not_pixels(source, fragment):
    with pytest.raises(CliffError) as e:
        load_image(source)
    assert fragment in one_line(e)


@pytest.mark.parametrize(
    "boxes, fragment",
    [
        ([["a", "b", "c", "d"]], "boxes must be numbers"),
        ([[1, 2, 30, 40], [1, 2]], "boxes must be numbers"),  # ragged
        ([[1, 2, 30]], "got shape (1, 3)"),
        ([1, 2, 30, 40], "got shape (4,)"),
        (np.zeros((1, 2, 4)), "got shape (1, 2, 4)"),
        ([[np.nan, 2, 30, 40]], "NaN or infinite"),
        ([[0, 0, 1e30, 40]], "more than twice"),
        ([[30, 2, 1, 40]], "is empty"),
    ],
)
def test_boxes_that_are_not_boxes(predictor, boxes, fragment):
    with pytest.raises(CliffError) as e:
        predictor(IMAGE, boxes=boxes)
    assert fragment in one_line(e)


@pytest.mark.parametrize(
    "keypoints, fragment",
    [
        ([[["x", "y", "c"]] * 17], "keypoints must be numbers"),
        (np.zeros((1, 17, 2)), "shape (N, 17, 3), got (1, 17, 2)"),
        (np.zeros((17, 3)), "got (17, 3)"),
        (np.full((1, 17, 3), 1e30), "outside"),
    ],
)
def test_keypoints_that_are_not_keypoints(predictor, keypoints, fragment):
    with pytest.raises(CliffError) as e:
        predictor(IMAGE, keypoints=keypoints)
    assert fragment in one_line(e)


@pytest.mark.parametrize("focal", [-5, 0, float("nan"), float("inf"), 1e154, "abc", "\n", None])
def test_focal_lengths_that_are_not(predictor, focal):
    if focal is None:  # the camera as a tuple instead of an Intrinsics
        with pytest.raises(CliffError, match="intrinsics must be a camera.Intrinsics"):
            predictor(IMAGE, intrinsics=(100, 100, 32, 24))
        return
    with pytest.raises(CliffError) as e:
        predictor(IMAGE, focal=focal)
    shown = repr(focal) if isinstance(focal, str) else float(focal)
    assert one_line(e) == f"focal length must be a number of pixels between 1 and 1e+07, got {shown}"


def test_the_cli_says_what_the_api_says(predictor, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(IMAGE).save(tmp_path / "p.png")
    for text, value in (("-5", -5), ("inf", float("inf"))):
        code, io = run(["predict", tmp_path / "p.png", "--out", tmp_path / "out", "--focal", text], capsys)
        with pytest.raises(CliffError) as e:
            predictor(IMAGE, focal=value)
        assert code == 2 and io.err == f"cliffhmr: error: {e.value}\n"
    with pytest.raises(CliffError) as e:
        Intrinsics(100.0, 100.0, 32.0, float("nan"))
    code, io = run(["predict", tmp_path / "p.png", "--out", tmp_path / "out", "--intrinsics", "100,100,32,nan"], capsys)
    assert code == 2 and io.err == f"cliffhmr: error: {e.value}\n"


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"rescale": 0}, "must be between 0.1 and 10, got 0"),
        ({"rescale": -1.1}, "must be between 0.1 and 10"),
        ({"rescale": float("nan")}, "must be between 0.1 and 10, got nan"),
        ({"rescale": 1e30}, "must be between 0.1 and 10, got 1e+30"),
        ({"rescale": "1.1"}, "must be between 0.1 and 10, got '1.1'"),
        ({"detection_threshold": 2}, "detection threshold must be between 0 and 1"),
        ({"fit_iterations": -1}, "fit iterations must be a whole number >= 0, got -1"),
        ({"fit_iterations": 2.5}, "fit iterations must be a whole number >= 0, got 2.5"),
        ({"device": "bogus"}, "unknown device 'bogus'"),
        ({"device": "cuda:99"}, "'cuda:99'"),
    ],
)
def test_settings_out_of_range(settings, fragment):
    with pytest.raises(CliffError) as e:
        Predictor(PredictorConfig(**settings))
    assert fragment in one_line(e)


def test_a_config_of_the_wrong_kind_and_eval_settings():
    with pytest.raises(CliffError, match="Predictor takes a PredictorConfig, got dict"):
        Predictor({"device": "cpu"})
    with pytest.raises(CliffError, match="batch size must be a whole number >= 1, got 0"):
        EvalSettings("c.pt", "synthetic", "root", smpl="s.npz", batch_size=0)
    with pytest.raises(CliffError, match="workers must be a whole number >= 0, got -2"):
        EvalSettings("c.pt", "synthetic", "root", smpl="s.npz", workers=-2)
    with pytest.raises(CliffError, match="unknown dataset 'mpii'"):
        EvalSettings("c.pt", "mpii", "root", smpl="s.npz")
