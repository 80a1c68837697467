"""tools/compare_outputs.py: the check that a re-layout left every result array as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "tools" / "compare_outputs.py"


def _write(folder: Path, **arrays) -> None:
    folder.mkdir(exist_ok=True)
    np.savez(folder / "photo.npz", **arrays)


def test_equal_within_tolerance_passes_and_a_larger_change_fails(tmp_path, capsys):
    tool = load_script(SCRIPT)
    a = {"pose": np.zeros((2, 3), np.float32), "quality": np.array([np.nan, 0.5]), "imgname": np.array(["x.jpg"] * 2)}
    _write(tmp_path / "a", **a)
    _write(tmp_path / "b", **{**a, "pose": np.full((2, 3), 4e-6, np.float32)})
    _write(tmp_path / "c", **{**a, "pose": np.full((2, 3), 2e-5, np.float32)})
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "2e-05 (pose)" in capsys.readouterr().out


def test_missing_keys_files_texts_and_shapes_fail(tmp_path):
    tool = load_script(SCRIPT)
    a = {"pose": np.zeros(3), "imgname": np.array(["x.jpg"])}
    _write(tmp_path / "a", **a)
    for name, changed in {"key": {"pose": a["pose"]}, "text": {**a, "imgname": np.array(["y.jpg"])},
                          "shape": {**a, "pose": np.zeros(4)}}.items():  # fmt: skip
        _write(tmp_path / name, **changed)
        assert tool.main([str(tmp_path / "a"), str(tmp_path / name)]) == 1, name
    (tmp_path / "none").mkdir()
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "none")]) == 1
