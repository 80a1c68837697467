"""benchmarks/annotate.py on two people: it runs the three refinements from a checkpoint and
scores them against the truth it rendered (the truth itself scores 0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "annotate.py"


def test_benchmark_scores_three_refinements_against_the_truth(tmp_path):
    from cliffhmr.body.registry import load_smpl
    from cliffhmr.models import CLIFF, save_checkpoint
    from cliffhmr.synthetic.toy_smpl import write_toy_smpl

    bench = load_script(SCRIPT)
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    smpl = write_toy_smpl(run / "data" / "toy_smpl.npz")
    torch.manual_seed(0)
    (run / "cliff").mkdir()
    save_checkpoint(run / "cliff" / "final.pt", CLIFF("res50", crop_height=16), "plain")
    args = ["--run", str(run), "--n", "2", "--steps", "1", "--fit-iterations", "3"]
    assert bench.main(args) == 0
    result = json.loads((run / "annotate" / "benchmark.json").read_text())["results"]
    assert sorted(result) == ["fit", "network", "none"]
    assert all(r["n"] == 2 and r["skipped"] == 0 and r["pa_mpjpe"] > 0 and r["per_second"] > 0 for r in result.values())
    assert "minus_none" in result["fit"] and "minus_none" not in result["none"]

    # The scoring: the truth against itself is 0; a bent elbow is not.
    body = load_smpl(str(smpl))
    with np.load(run / "annotate" / "test.npz") as f:
        truth = {k: f[k] for k in f.files}
    same = bench.errors({"imgname": truth["imgname"], "pose": truth["pose"], "shape": truth["shape"]}, truth, body)
    assert all(np.allclose(v, 0, atol=1e-3) for v in same.values())
    bent = truth["pose"].copy()
    bent[:, 18 * 3] += 1.0  # left elbow, one radian
    moved = bench.errors({"imgname": truth["imgname"], "pose": bent, "shape": truth["shape"]}, truth, body)
    assert (moved["pa_mpjpe"] > 5).all() and (moved["pve"] > 5).all()
