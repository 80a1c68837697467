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


def test_pa_scale_is_the_least_squares_one_for_its_rotation():
    """Whatever rotation the alignment chose, its scale must be the best one for it: the ground
    truth projected onto the aligned prediction gives a factor of exactly 1. A mirrored skeleton,
    which only a reflection could align, needs the reflection's sign in the scale (Umeyama's D)."""
    gt = _joints(seed=5)
    R = axis_angle_to_rotmat(torch.tensor([[0.2, 0.9, -0.4]], dtype=torch.float64))
    for pred in (0.7 * gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) + 3.0, 1.3 * gt @ R.transpose(1, 2) + _joints(seed=6) * 0.05):
        aligned = similarity_align(pred, gt) - gt.mean(1, keepdim=True)
        y = gt - gt.mean(1, keepdim=True)
        assert ((aligned * y).sum() / (aligned * aligned).sum()).item() == pytest.approx(1.0, abs=1e-9)


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


def test_evaluate_on_hand_computed_cases(tmp_path):
    """The real `evaluate()` on a network that always predicts the rest pose of a toy SMPL body:
    ground truth in the rest pose scores 0; turned by 180 degrees about the vertical it scores the
    turn (2 sqrt(x^2 + z^2) per pelvis-relative point) and 0 after Procrustes; given as 3D joints
    only (S), scaled by 1.1 about the pelvis, 10% of each joint's distance from it."""
    from PIL import Image

    from cliffhmr.body import load_smpl
    from cliffhmr.data.joints import J24_HIPS, J24_TO_J14, body_to_j24
    from cliffhmr.evaluation.evaluate import EvalSettings, evaluate
    from cliffhmr.models import CLIFF, save_checkpoint
    from cliffhmr.synthetic.toy_smpl import write_toy_smpl

    model = CLIFF("res50", crop_height=64)
    for head in (model.decpose, model.decshape, model.deccam):  # no correction: the mean estimate, whatever the image
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    save_checkpoint(tmp_path / "rest.pt", model, "official")
    body = load_smpl(str(write_toy_smpl(tmp_path / "toy.npz")), torch.device("cpu"))
    with torch.no_grad():
        rest = body(torch.eye(3).expand(1, 24, 3, 3), torch.zeros(1, 10))
    j24 = body_to_j24(rest.joints, rest.keypoints)[0].double()
    pelvis = j24[list(J24_HIPS)].mean(0)
    q, v = j24[J24_TO_J14] - pelvis, rest.vertices[0].double() - pelvis

    n, (W, H), f = 3, (80, 60), 100.0
    for i in range(n):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / f"{i}.png")
    pose = np.zeros((n, 72))
    pose[1, :3] = [0.0, math.pi, 0.0]
    S = np.zeros((n, 24, 4))
    S[2, :, :3], S[2, :, 3] = (pelvis + 1.1 * (j24 - pelvis)).numpy() + [0.2, -0.1, 6.0], 1.0
    np.savez(tmp_path / "test.npz", imgname=[f"{i}.png" for i in range(n)], center=np.full((n, 2), [W / 2, H / 2]),
             scale=np.full(n, 0.3), pose=pose, shape=np.zeros((n, 10)), has_smpl=[1, 1, 0], S=S,
             transl=np.tile([0.0, 0.0, 5.0], (n, 1)), cam_int=np.tile([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], (n, 1, 1)))  # fmt: skip
    evaluate(EvalSettings(str(tmp_path / "rest.pt"), "synthetic", str(tmp_path), smpl=str(tmp_path / "toy.npz"),
                          out=str(tmp_path / "out"), batch_size=1, workers=0, device="cpu"))  # fmt: skip
    per = np.load(tmp_path / "out" / "synthetic_per_sample.npz")
    turned = lambda p: 1000 * (2 * p[:, [0, 2]].norm(dim=-1)).mean().item()  # noqa: E731
    np.testing.assert_allclose(per["mpjpe"], [0.0, turned(q), 1000 * 0.1 * q.norm(dim=-1).mean().item()], atol=1e-2)
    np.testing.assert_allclose(per["pa_mpjpe"], [0.0, 0.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(per["pve"][:2], [0.0, turned(v)], atol=1e-2)
    np.testing.assert_allclose(per["root_orient_deg"][:2], [0.0, 180.0], atol=1e-2)
    assert np.isnan(per["pve"][2]) and np.isnan(per["root_orient_deg"][2])
