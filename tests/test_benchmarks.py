"""The synthetic ablation script, run at toy size: both models train, evaluate and get compared."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "train_synthetic.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_synthetic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_compares_both_models_on_the_same_images(tmp_path):
    bench = _script()
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
