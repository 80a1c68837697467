"""benchmarks/video.py's scoring: matching, MPJPE, acceleration error and ID switches on made-up results."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "video.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def _truth(T=6):
    """Two people; person i's 17 joints at x = i + 0.01 t^2 (accelerating), boxes far apart."""
    rng = np.random.default_rng(0)
    shape = rng.normal(0, 0.3, (17, 3))
    out = []
    for t in range(T):
        frame = []
        for i in range(2):
            joints = shape + [i * 3 + 0.01 * t**2, 0, 5]
            frame.append({"joints": joints, "box": np.array([100 + 300 * i, 50, 200 + 300 * i, 300.0])})
        out.append(frame)
    return out


def _person(truth_person, track, offset=0.0):
    joints = np.concatenate((np.zeros((20, 3)), truth_person["joints"] + offset))  # body joints, then COCO-17
    return (track, SimpleNamespace(joints=joints, bbox=np.r_[truth_person["box"], 0.9]))


def test_perfect_results_score_zero_and_a_swap_counts(bench):
    truth = _truth()
    perfect = [[_person(f[1], 1), _person(f[0], 0)] for f in truth]  # in any order
    m = bench.metrics(truth, perfect, seconds=2.0)
    assert m["mpjpe_mm"] == pytest.approx(0, abs=1e-9) and m["accel_mm"] == pytest.approx(0, abs=1e-9)
    assert m["pelvis_accel_mm"] == pytest.approx(0, abs=1e-9)
    assert (m["found"], m["people_frames"], m["id_switches"], m["fps"]) == (12, 12, 0, 3.0)
    # A constant 3 cm shift of every joint: no MPJPE after aligning the hips, no acceleration error.
    shifted = [[_person(f[0], 0, 0.03), _person(f[1], 1)] for f in truth]
    assert bench.metrics(truth, shifted, 1.0)["mpjpe_mm"] == pytest.approx(0, abs=1e-6)
    # Person 0's left wrist 1 cm off in frame 3 only: MPJPE 1/17 cm over that person-frame; its
    # second differences are off by 1, 2 and 1 cm over the three triples that hold frame 3.
    jitter = [[_person(f[0], 0), _person(f[1], 1)] for f in truth]
    jitter[3][0][1].joints[20 + 9, 0] += 0.01
    m = bench.metrics(truth, jitter, 1.0)
    assert m["mpjpe_mm"] == pytest.approx(10 / 17 / 12, rel=1e-6)
    assert m["accel_mm"] == pytest.approx((10 + 20 + 10) / 17 / 8, rel=1e-6)
    # The tracks trade places from frame 4: one switch each; a missed person is not found.
    swapped = [[_person(f[0], 0 if t < 4 else 1), _person(f[1], 1 if t < 4 else 0)] for t, f in enumerate(truth)]
    swapped[5] = swapped[5][:1]
    m = bench.metrics(truth, swapped, 1.0)
    assert (m["id_switches"], m["found"]) == (2, 11)
    assert bench.metrics(truth, [[(-1, p) for _, p in row] for row in perfect], 1.0)["id_switches"] is None
