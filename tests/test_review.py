"""`cliffhmr review`: the annotator's output as an HTML page, opened in headless Chromium (Debian's
`chromium`; `make test` installs it where apt can), one rendered table row per person, worst first."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cliffhmr.synthetic.toy_smpl import write_toy_smpl

from conftest import assert_one_line_error, run
from test_annotate_shards import person, write_folder

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def dump_dom(page: Path, profile: Path) -> str:
    """The page as Chromium's renderer built it (scripts run, markup parsed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium; `make test` tries it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run([CHROMIUM, *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """Three people annotated with the toy SMPL body, one of them far from their keypoints."""
    d = tmp_path_factory.mktemp("review")
    smpl = write_toy_smpl(d / "toy_smpl.npz")
    kp_file = write_folder(d / "images", {"a.png": [person(0, 0), person(70, 5)], "b.png": [person(30, 10)]})
    from cliffhmr.cli import main

    assert main(["annotate", str(d / "images"), "--out", str(d / "gt.npz"), "--keypoints", str(kp_file), "--smpl", str(smpl),
                 "--fit-iterations", "15"]) == 0  # fmt: skip
    return d, smpl


def test_the_page_renders_one_row_per_person_worst_first(annotated, tmp_path, capsys):
    d, smpl = annotated
    code, io = run(["review", d / "gt.npz", "--images", d / "images", "--out", tmp_path / "sheet", "--smpl", smpl], capsys)
    assert code == 0, io.err
    assert "3 rows, worst quality first" in io.out
    dom = dump_dom(tmp_path / "sheet" / "index.html", tmp_path / "profile")
    rows = re.findall(r'<tr class="row">(.*?)</tr>', dom, flags=re.S)
    assert len(rows) == 3
    quality = [float(q) for q in re.findall(r"quality ([0-9.]+)", " ".join(rows))]
    expected = sorted(np.load(d / "gt.npz")["quality"].tolist())
    assert quality == pytest.approx(expected, abs=1e-3)
    for r in rows:  # every picture the row names exists
        for src in re.findall(r'src="([^"]+)"', r):
            assert (tmp_path / "sheet" / src).is_file()
    code, io = run(["review", d / "gt.npz", "--images", d / "images", "--out", tmp_path / "two", "--smpl", smpl, "--limit", "2"], capsys)
    assert code == 0 and len(re.findall(r'<tr class="row">', (tmp_path / "two" / "index.html").read_text())) == 2


def test_a_file_without_bodies_is_one_line(tmp_path, capsys):
    from cliffhmr.atomic import write_npz_atomic

    write_npz_atomic(tmp_path / "2d.npz", {"imgname": np.array(["a.png"]), "center": np.zeros((1, 2), np.float32),
                                           "scale": np.ones(1, np.float32), "part": np.zeros((1, 24, 3), np.float32)})  # fmt: skip
    code, io = run(["review", tmp_path / "2d.npz", "--images", tmp_path, "--out", tmp_path / "o", "--smpl", tmp_path / "x.npz"], capsys)
    assert_one_line_error(code, io.err, "nothing to draw")
    assert not (tmp_path / "o").exists()
