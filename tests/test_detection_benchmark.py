"""benchmarks/detection.py: its matching rule, a real-set run of both detectors, and composites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "detection.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def test_matching_counts_hits_false_positives_and_ignores(bench):
    truth = np.array([[0, 0, 10, 20], [50, 0, 60, 20]], float)
    ignore = np.array([[100, 100, 104, 108]], float)
    dets = np.array(
        [
            [0, 0, 10, 19, 0.9],  # hit on person 0
            [1, 1, 10, 20, 0.8],  # a second box on person 0: a false positive, not a second hit
            [50, 0, 60, 12, 0.7],  # IoU 0.6 with person 1: hit
            [100, 100, 105, 108, 0.6],  # over an ignored figure: nothing
            [200, 200, 230, 260, 0.5],  # nobody there: false positive
        ],
        np.float32,
    )
    hit, fp = bench.match(dets, truth, ignore)
    assert hit.tolist() == [True, True] and fp == 2
    hit, fp = bench.match(dets[[1]], truth)  # the lower-scored box alone does hit person 0
    assert hit.tolist() == [True, False] and fp == 0
    hit, fp = bench.match(np.zeros((0, 5), np.float32), truth)
    assert hit.tolist() == [False, False] and fp == 0


def test_real_set_three_detectors_side_by_side(bench, tmp_path):
    assert bench.main(["--composites", "0", "--repeats", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "detection.json").read_text())
    first, alone, views = (report["detectors"][k]["real"] for k in ("ssdlite:none", "nanodet:none", "nanodet"))
    assert first["people"] == alone["people"] == views["people"] == 52 and views["images"] == 29
    assert report["detectors"]["nanodet"]["passes"] == ["flip", "tiles", "turns"]
    assert report["detectors"]["nanodet:none"]["passes"] == []
    # What the defaults rest on (benchmarks/results/detection.md): NanoDet over SSDLite, and the
    # views lifting recall to issue 10's goal (95%, at most 0.1 false positives per image).
    assert 0.5 > first["recall"] and alone["recall"] >= 0.9 and alone["false_positives"] == 0
    assert views["recall"] >= 0.95 and views["found"] > alone["found"] and views["fp_per_image"] <= 0.1
    assert set(report["timing"]) == {"ssdlite:none", "nanodet:none", "nanodet"}
    md = (tmp_path / "detection.md").read_text()
    assert "| real (29 images, 52 people) | recall |" in md and "p2s_single_cam02_f050.jpg" in md


def test_composites_are_one_visible_person_each(bench):
    items = bench.make_composites(4, seed=5)
    assert [it["kind"] for it in items] == list(bench.KINDS)
    for it in items:
        h, w = it["image"].shape[:2]
        assert (w, h) == ((640, 360) if it["frame"] == "landscape" else (360, 640))
        x1, y1, x2, y2 = it["truth"][0]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert 0.03 <= it["size"] <= 1.0
    again = bench.make_composites(1, seed=5)  # seeded: the same first image again
    assert np.array_equal(items[0]["image"], again[0]["image"])
