"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cliffhmr.evaluation.evaluate import results_markdown, sequence_name
from cliffhmr.evaluation.metrics import mpjpe, pa_mpjpe, paired_difference
from cliffhmr.geometry.procrustes import similarity_align
from cliffhmr.geometry.rotation import axis_angle_to_rotmat


def _joints(n: int = 14, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_pa_mpjpe_is_zero_for_a_similarity_transform():
    gt = _joints()
    R = axis_angle_to_rotmat(torch.tensor([[0.3, -1.1, 2.0]], dtype=torch.float64))
    pred = 2.5 * gt @ R.transpose(1, 2) + torch.tensor([0.4, -3.0, 7.0], dtype=torch.float64)
    assert mpjpe(pred, gt).item() > 1.0
    assert pa_mpjpe(pred, gt).item() == pytest.approx(0.0, abs=1e-9)
    assert torch.allclose(similarity_align(pred, gt), gt, atol=1e-9)


def test_pa_never_uses_a_reflection():
    # A mirrored skeleton cannot be aligned by a proper rotation: the error must stay positive.
    gt = _joints(seed=1)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert pa_mpjpe(mirrored, gt).item() > 0.05


def test_mpjpe_of_a_known_offset():
    gt = _joints(seed=2)
    assert mpjpe(gt + torch.tensor([0.03, 0.04, 0.0], dtype=torch.float64), gt).item() == pytest.approx(0.05)
    # Offsetting half the joints by 10 cm along z and the rest not at all -> 5 cm on average.
    pred = gt.clone()
    pred[:, :7, 2] += 0.1
    assert mpjpe(pred, gt).item() == pytest.approx(0.05)
    # Procrustes removes a pure translation entirely.
    assert pa_mpjpe(gt + 1.0, gt).item() == pytest.approx(0.0, abs=1e-9)


def test_pa_mpjpe_of_a_collapsed_prediction():
    # All predicted joints at one point: the best similarity has scale 0 and puts them on the
    # ground truth's centroid, so PA-MPJPE is the mean distance to the centroid: sqrt(0.5) for a unit square.
    gt = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]], dtype=torch.float64)
    assert pa_mpjpe(torch.zeros_like(gt), gt).item() == pytest.approx(math.sqrt(0.5))
    # A square rotated by 90 degrees about its centre and scaled is still aligned exactly.
    assert pa_mpjpe(3 * gt[:, [1, 3, 0, 2]], gt).item() == pytest.approx(0.0, abs=1e-12)


def test_batched_metrics_are_per_sample():
    gt = torch.cat((_joints(seed=3), _joints(seed=4)))
    pred = gt.clone()
    pred[1] += 0.2
    err = mpjpe(pred, gt)
    assert err.shape == (2,)
    assert err[0].item() == 0.0 and err[1].item() == pytest.approx(0.2 * math.sqrt(3))


def test_sequence_names():
    assert sequence_name("imageFiles/downtown_walking_00/image_00012.jpg") == "downtown_walking_00"
    assert sequence_name("images/S9_Walking_1.54138969_000001.jpg") == "S9_Walking_1"


def test_markdown_table_lists_every_breakdown():
    stats = {"n": 2, "mpjpe": 70.04, "pa_mpjpe": 45.66, "pve": None, "root_orient_deg": 9.0}
    r = {
        "dataset": "3dpw", "checkpoint": "c.pt", "mode": "cliff", "bbox_info": "official",
        "protocol": {"joints": "LSP-14"}, "overall": stats,
        "per_sequence": {"seq_a": stats}, "by_off_center": {"0-10 deg": stats},
    }  # fmt: skip
    text = results_markdown(r)
    assert "| 3dpw | 2 | 70.0 | 45.7 | - | 9.0 |" in text
    assert "seq_a" in text and "0-10 deg" in text
    assert np.isfinite(stats["mpjpe"])


def test_paired_difference_of_a_constant_gap_is_exact():
    a = np.array([10.0, 50.0, 200.0, np.nan])
    r = paired_difference(a, a - 5.0)
    assert r == {"n": 3, "mean": 5.0, "lo": 5.0, "hi": 5.0}  # every resample has the same mean; NaN pair dropped


def test_paired_difference_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    base = rng.uniform(50, 300, 400)  # shared per-image difficulty, much larger than the gap
    noise = rng.normal(0, 4, 400)
    small, large = paired_difference(base[:40] + 3 + noise[:40], base[:40]), paired_difference(base + 3 + noise, base)
    for r in (small, large):
        assert r["lo"] < r["mean"] < r["hi"]
    assert large["hi"] - large["lo"] < small["hi"] - small["lo"]
    assert 0 < large["lo"] and large["hi"] < 6  # the 3 mm gap is found despite the 250 mm spread
    # The standard error of the mean is 4/sqrt(400) = 0.2: a 95% interval is about +-0.39.
    assert large["hi"] - large["lo"] == pytest.approx(2 * 1.96 * noise.std() / 20, rel=0.15)
    assert paired_difference([np.nan], [1.0])["n"] == 0
