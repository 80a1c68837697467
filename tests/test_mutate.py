"""tools/mutate.py: a mutant is applied once, judged by its tests, and the file always comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "tools" / "mutate.py"


@pytest.fixture
def tool(tmp_path, monkeypatch):
    module = load_script(SCRIPT)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    (tmp_path / "m.py").write_text("x = 1\ny = x + 1\n")
    return module


def test_verdicts_and_the_file_restored(tool, tmp_path, monkeypatch):
    m = tool.Mutant("plus", "m.py", "x + 1", "x - 1", ("tests/t.py",), "sign")
    seen = []
    monkeypatch.setattr(tool, "run_tests", lambda tests: (seen.append((tmp_path / "m.py").read_text()), (0, "1 passed"))[1])
    assert tool.try_mutant(m) == ("SURVIVED", "all of tests/t.py passed")
    assert seen == ["x = 1\ny = x - 1\n"] and (tmp_path / "m.py").read_text() == "x = 1\ny = x + 1\n"
    monkeypatch.setattr(tool, "run_tests", lambda tests: (1, "...\nFAILED tests/t.py::test_sign - assert 0 == 2\n1 failed"))
    assert tool.try_mutant(m) == ("caught", "tests/t.py::test_sign")
    assert tool.try_mutant(tool.Mutant("absent", "m.py", "z", "w", (), ""))[0] == "NOT APPLIED"
    assert tool.place(m) == "m.py:2"


def test_an_interrupted_run_puts_the_file_back(tool, tmp_path, monkeypatch):
    def interrupted(tests):
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, "run_tests", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.try_mutant(tool.Mutant("plus", "m.py", "x + 1", "x - 1", (), ""))
    assert (tmp_path / "m.py").read_text() == "x = 1\ny = x + 1\n"


def test_every_mutant_applies_to_this_tree():
    tool = load_script(SCRIPT)
    for m in tool.MUTANTS:
        _, original, mutated = tool.apply(m)
        assert mutated != original.decode() and all(Path(tool.ROOT / t).is_file() for t in m.tests), m.name
