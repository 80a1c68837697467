"""The synthetic ablation script, run at toy size: both models train, evaluate and get compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "train_synthetic.py"


def test_ablation_compares_both_models_on_the_same_images(tmp_path):
    bench = load_script(SCRIPT)
    args = ["--out", str(tmp_path), "--train", "6", "--test", "5", "--width", "96", "--height", "72", "--steps", "2",
            "--batch-size", "2", "--crop-height", "64", "--workers", "0"]
    assert bench.main(args) == 0
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert set(report["results"]) == {"cliff", "hmr"}
    diff = report["cliff_minus_hmr"]
    assert diff["all"]["mpjpe"]["n"] == 5
    assert sum(row["mpjpe"]["n"] for name, row in diff.items() if name != "all") == 5
    # The paired mean is the difference of the two models' means on the same images.
    for key in ("mpjpe", "root_orient_deg"):
        gap = report["results"]["cliff"]["overall"][key] - report["results"]["hmr"]["overall"][key]
        assert diff["all"][key]["mean"] == pytest.approx(gap)
        assert diff["all"][key]["lo"] <= diff["all"][key]["mean"] <= diff["all"][key]["hi"]
    assert "CLIFF minus HMR" in (tmp_path / "benchmark.md").read_text()
    cliff = np.load(tmp_path / "cliff" / "synthetic_per_sample.npz")
    assert len(cliff["mpjpe"]) == 5

    # Data made with other settings is never silently reused for a different experiment.
    with pytest.raises(SystemExit, match="other settings"):
        bench.main([*args, "--max-yaw", "10", "--generate-only"])


REAL_MOTION = Path(__file__).parents[1] / "benchmarks" / "real_motion.py"


def test_real_motion_compares_the_baseline_and_this_tree_on_the_same_people(tmp_path):
    import tempfile

    import torch

    bench = load_script(REAL_MOTION)
    poses = tmp_path / "poses.npz"
    assert bench.main(["--write-standin", str(poses)]) == 0
    out = tmp_path / "real_motion.json"
    n = 3
    args = ["--poses", poses, "--n", n, "--iterations", 4, "--chunk", 2, "--json", out, "--md", tmp_path / "t.md"]
    assert bench.main([str(a) for a in args]) == 0
    report = json.loads(out.read_text())
    assert set(report["cases"]) == set(bench.CASES)
    for case in bench.CASES:
        for side in bench.SIDES:
            row = report["cases"][case][side]
            assert set(bench.METRICS) | {"depth_abs_pct", "hidden_over_seen", "seconds_per_person"} <= set(row)
            # People who cannot be framed as a half-body photo are left out of a cut case, and counted.
            assert row["n"] + report["cases"][case]["excluded"] == n
            assert row["keypoints_seen"] + row["keypoints_hidden"] == 17 * row["n"]
    # BEFORE ran from the archive of the baseline, not from this tree.
    before = Path(report["meta"]["before_module"])
    assert before.parent.name == "cliffhmr_before" and before.is_relative_to(tempfile.gettempdir())
    assert not before.is_relative_to(REAL_MOTION.parents[1])
    assert "| waist |" in (tmp_path / "t.md").read_text()
    # The stopping rule ends a fit before its 200 steps; without it every step runs (the
    # baseline has no rule and runs them anyway).
    for early_stop in (True, False):
        extra = ["--n", 2, "--iterations", 200] + ([] if early_stop else ["--no-early-stop"])
        assert bench.main([str(a) for a in args + extra]) == 0
        steps = json.loads(out.read_text())["cases"]
        assert all(steps[c]["before"]["iterations_max"] == 200 for c in bench.CASES)
        assert any(steps[c]["after"]["iterations_max"] < 200 for c in bench.CASES) == early_stop

    arrays = np.load(out.with_suffix(".npz"))
    for case, must_hide in (("full", ()), ("waist", (13, 14, 15, 16)), ("knees", (15, 16))):
        inside = arrays[f"{case}/inside"]
        assert not inside[:, list(must_hide)].any()
        assert (arrays[f"{case}/after/n_seen"] + arrays[f"{case}/after/n_hidden"] == 17).all()
        assert (arrays[f"{case}/after/n_hidden"] == (~inside).sum(1)).all()
        assert (arrays[f"{case}/keypoints_2d"][..., 2][~inside] == 0).all()  # outside the image = missing
    assert arrays["full/inside"].all()

    # A fit that returned the ground truth scores zero.
    gen = torch.Generator().manual_seed(0)
    kp = torch.randn(4, 17, 3, generator=gen) + torch.tensor([0.0, 0.0, 5.0])
    joints = torch.randn(4, 20, 3, generator=gen) + torch.tensor([0.0, 0.0, 5.0])
    gt = {"keypoints": kp, "joints": joints, "rotmat": torch.eye(3).expand(4, 20, 3, 3), "height": torch.full((4,), 1.7)}
    inside = torch.rand(4, 17, generator=gen) > 0.3
    per = bench.per_sample(gt, gt, inside)
    for key in ("mpjpe", "pa_mpjpe", "mpjpe_seen", "depth_pct", "height_pct"):
        assert per[key].abs().max() < 1e-3, key
    assert per["root_deg"].abs().max() < 0.1
    # And a pelvis 10% too far reads as +10%.
    far = dict(gt, joints=joints * torch.tensor([1.0, 1.0, 1.1]))
    assert torch.allclose(bench.per_sample(far, gt, inside)["depth_pct"], torch.full((4,), 10.0), atol=1e-3)


def test_fit_speed_times_the_baseline_and_this_tree_on_the_same_inputs(tmp_path):
    import tempfile

    bench = load_script(Path(__file__).parents[1] / "benchmarks" / "fit_speed.py")
    poses = tmp_path / "poses.npz"
    assert load_script(REAL_MOTION).main(["--write-standin", str(poses)]) == 0
    out, md = tmp_path / "fit_speed.json", tmp_path / "fit_speed.md"
    args = ["--poses", poses, "--n", 2, "--chunk", 2, "--repeats", 1, "--config", '{"iterations": 3}', "--json", out, "--md", md]
    assert bench.main([str(a) for a in args]) == 0
    report = json.loads(out.read_text())
    assert [r["image"] for r in report["photos"]] == list(bench.PHOTOS)
    assert [r["case"] for r in report["people"]] == ["full", "waist", "knees"]
    for row in report["photos"] + report["people"]:
        assert row["before_ms"] > 0 and row["after_ms"] > 0
        # --config reaches the AFTER side only: the baseline runs its own schedule (30 torso steps at least).
        assert row["after_steps"] <= 3 < row["before_steps"]
    before = Path(report["meta"]["before_module"])
    assert before.parent.parent.name == "cliffhmr_before" and before.is_relative_to(tempfile.gettempdir())
    assert "| two_people.jpg | 2 |" in md.read_text() and "| waist |" in md.read_text()
