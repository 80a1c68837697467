"""Property tests (Hypothesis) over the boxes and keypoint JSON a user names and the numbers the
commands take: whatever the file or number, the answer is a usable, finite value or a one-line
CliffError; never another exception, never a warning beside it, never NaN passed on.

Example counts are small so the module stays fast; a failure prints the smallest example found."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cliffhmr.errors import CliffError
from cliffhmr.geometry.camera import Intrinsics, check_focal
from cliffhmr.perception.image import box_rows, load_boxes_file
from cliffhmr.perception.crop import box_to_center_scale, validate_boxes
from cliffhmr.perception.keypoint_files import load_keypoints_file
from cliffhmr.inference.pipeline import PredictorConfig, _keypoint_boxes
from cliffhmr.perception.keypoints import check_user_keypoints
from cliffhmr.train.config import load_config

FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
W, H = 400, 300

# Numbers as users and tools write them, and as they go wrong: huge, tiny, negative, not finite.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2 * W, 2 * W),
    st.sampled_from([0, -1, 1e30, -1e30, 1e39, 1e308, 5e-324]),
    st.integers(-(10**20), 10**20),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def one_line_or_value(fn, *args):
    """fn(*args) with warnings as errors -> (value, None) or (None, CliffError message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI would print a warning as a second line
        try:
            return fn(*args), None
        except CliffError as e:
            assert "\n" not in str(e)
            return None, str(e)


def write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, allow_nan=True))  # NaN and Infinity: Python's JSON reads them back
    return str(path)


# The examples are what earlier runs found; Hypothesis tries them first, every run.
@FEW
@example(data={"p.png": [[1, 2, 1e39, 40]]})  # float32 overflow: a warning line before the error
@given(data=st.one_of(JSON_VALUES, st.dictionaries(st.just("p.png"), st.lists(st.lists(NUMBERS, min_size=3, max_size=6), max_size=3))))
def test_boxes_files_give_finite_boxes_in_the_image_or_one_line(tmp_path, data):
    table, error = one_line_or_value(load_boxes_file, write(tmp_path, "boxes.json", data))
    for boxes in (table or {}).values():
        checked, error = one_line_or_value(validate_boxes, boxes, W, H, "p.png")
        if checked is None:
            continue
        assert checked.shape[1] == 5 and np.isfinite(checked).all()
        assert (checked[:, 2] > 0).all() and (checked[:, 0] < W).all() and (checked[:, 0] > -2 * W).all()
        center, scale = box_to_center_scale(torch.from_numpy(checked[:, :4]))
        assert torch.isfinite(center).all() and (scale > 0).all() and torch.isfinite(scale).all()



def test_box_rows_fill_the_score_and_refuse_other_shapes():
    """The one reading of a box list (boxes files, the server's form field)."""
    np.testing.assert_array_equal(box_rows([[1, 2, 3, 4], [5, 6, 7, 8, 0.5]], "b"), [[1, 2, 3, 4, 1], [5, 6, 7, 8, 0.5]])
    assert box_rows([], "b").shape == (0, 5)
    for bad, message in (([[1, 2, 3]], "b must be a list of"), ([[1, 2, 3, 4, 5, 6]], "b must be a list of"),
                         ({"x": 1}, "b must be a list of"), ([[1, 2, 3, "x"]], "b holds non-numeric")):  # fmt: skip
        with pytest.raises(CliffError, match=message):
            box_rows(bad, "b")

PERSON = st.lists(NUMBERS, min_size=51, max_size=51)
KEYPOINT_FILES = st.one_of(
    JSON_VALUES,
    st.lists(st.fixed_dictionaries({"keypoints": PERSON, "image_id": st.just(1)}), max_size=2),  # COCO results
    st.fixed_dictionaries({"people": st.lists(st.fixed_dictionaries({"pose_keypoints_2d": st.lists(NUMBERS, min_size=75, max_size=75)}), max_size=2)}),
)


@FEW
@example(data=[{"keypoints": [100.0, 100.0, 1.0] * 16 + [1e39, 100.0, 1.0], "image_id": 1}])  # float32 overflow
@given(data=KEYPOINT_FILES)
def test_keypoint_files_give_people_inside_the_image_or_one_line(tmp_path, data):
    kp, error = one_line_or_value(load_keypoints_file, write(tmp_path, "kp.json", data), "p.png")
    if kp is None:
        return
    assert kp.dtype == np.float32 and kp.ndim == 3 and kp.shape[1:] == (17, 3)
    kept, error = one_line_or_value(check_user_keypoints, kp, W, H, "kp.json")
    if kept is None or not len(kept):
        return
    seen = kept[..., 2] > 0
    assert seen.any(-1).all()  # everyone keeps a keypoint to fit
    assert np.isfinite(kept[seen]).all() and (kept[seen][:, 0] <= W).all() and (kept[seen][:, 1] <= H).all()
    assert np.isfinite(_keypoint_boxes(kept)).all()


# Keypoints of a plausible person, then a few moved anywhere (1e30, NaN, -5): such people stay usable or are refused.
@FEW
@example(moves=[(0, 2, 3.4028235677973366e38)])  # a confidence that is inf in float32
@given(moves=st.lists(st.tuples(st.integers(0, 16), st.integers(0, 2), NUMBERS), max_size=6))
def test_a_person_with_wild_keypoints_is_fitted_inside_the_image_or_refused(moves):
    rng = np.random.default_rng(0)
    person = np.concatenate([rng.uniform(50, 250, (17, 2)), np.full((17, 1), 0.9)], 1)[None]
    for joint, column, value in moves:
        person[0, joint, column] = value
    given = person.copy()
    kept, error = one_line_or_value(check_user_keypoints, person, W, H, "kp.json")
    np.testing.assert_array_equal(person, given)  # the caller's array is not changed
    if kept is not None:
        seen = kept[..., 2] > 0
        assert np.isfinite(kept[seen]).all() and np.isfinite(_keypoint_boxes(kept)).all()


TEXT_NUMBERS = NUMBERS.map(str) | st.text(max_size=6)


@FEW
@example(value=1.3407807929942597e154)  # finite, but its square (the focal property) is not
@example(value=5e-324)  # 0 in float32
@example(value="\n")  # a line break in the one line
@given(value=st.one_of(NUMBERS, TEXT_NUMBERS))
def test_focal_lengths(value):
    focal, error = one_line_or_value(check_focal, value)
    assert (focal is None) != (error is None)
    if focal is not None:
        assert np.isfinite(np.float32(2 * focal / 1e-3)) and np.float32(focal) > 0  # a crop's depth, and a division
        assert Intrinsics.from_focal(focal, W, H).focal == pytest.approx(focal)
    else:
        assert error.startswith("focal length must be a number of pixels between 1 and 1e+07")


@FEW
@example(values=(1e39, 1e39, 0.0, 0.0))  # inf in float32, as the network path computes
@example(values=(5e-324, 5e-324, 0.0, 0.0))  # 0 in float32
@example(values=("a", 1.0, 2.0, 3.0))
@given(values=st.tuples(NUMBERS | TEXT_NUMBERS, NUMBERS, NUMBERS, NUMBERS))
def test_intrinsics(values):
    K, error = one_line_or_value(Intrinsics, *values)
    if K is not None:
        numbers = (K.fx, K.fy, K.cx, K.cy, K.focal)
        assert all(type(v) is float for v in numbers) and K.fx > 0 and K.fy > 0
        assert np.isfinite(np.float32(numbers)).all() and np.isfinite(np.float32(2 * K.focal / 1e-3))  # a crop's depth
        assert np.float32(K.fx) > 0 and np.float32(K.fy) > 0


@FEW
@example(rescale=1e300, threshold=0.5, iterations=10)  # a crop of inf pixels
@example(rescale=4.7e-107, threshold=0.5, iterations=10)  # a crop of 0 pixels
@given(rescale=NUMBERS, threshold=NUMBERS, iterations=st.one_of(st.integers(-5, 5), NUMBERS))
def test_predictor_settings(rescale, threshold, iterations):
    config, error = one_line_or_value(PredictorConfig, None, None, None, rescale, threshold, iterations)
    if config is not None:
        assert 0 <= config.detection_threshold <= 1 and config.fit_iterations >= 0
        center, scale = box_to_center_scale(torch.tensor([[0.0, 0.0, W, H]]), rescale=config.rescale)
        assert torch.isfinite(scale).all() and (scale > 0).all()


@FEW
@example(lr="1e-4")  # text to YAML 1.1
@given(lr=st.one_of(NUMBERS.map(str), st.sampled_from([".nan", ".inf", "-.inf", "1e-4", "-1e-4", "5.0e-5", "~", "[1]"])))
def test_learning_rates_as_written_in_yaml(lr):
    cfg, error = one_line_or_value(load_config, None, ["data.datasets=[{npz: a.npz, root: r}]", "body.smpl=s.pkl", f"optim.lr={lr}"])
    if cfg is not None:
        assert math.isfinite(cfg.optim.lr) and cfg.optim.lr > 0
    else:
        assert error.startswith(("config: optim.lr", "override")), error
