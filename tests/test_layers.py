"""The package's imports follow docs/architecture.md: every module belongs to a layer of its table,
imports only the layers that table allows (downstream in the data flow), and no import cycle
exists. Imports are read from the source (ast), lazy ones inside functions included; nothing is
imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def layer_table(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """The table under '## Layers': {module or package: layer}, {layer: layers it may import}."""
    section = re.split(r"^## ", re.split(r"^## Layers$", text, flags=re.M)[1], flags=re.M)[0]
    owner, allowed = {}, {}
    for row in re.findall(r"^\|(.+)\|\s*$", section, flags=re.M)[2:]:  # past the header and its rule
        layer, modules, may_import = (cell.strip() for cell in row.split("|"))
        allowed[layer] = {name.strip() for name in may_import.split(",")} - {"", "-"}
        for name in re.findall(r"`([\w.]+)`", modules):
            owner[name] = layer
    return owner, allowed


def module_files(package: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (a package is its __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` (at `path`) imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` imports the module; `from mod import name` the module itself.
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return {m for m in found if m in known and m != name}


def layer_of(module: str, owner: dict[str, str]) -> str | None:
    """The layer of the longest table entry that is the module or a subpackage holding it (the
    top package holds everything, so it places only itself: a new module must be given a row)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in owner:
            return owner[".".join(parts[:n])]
    return owner.get(module)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check(package: Path, table_text: str) -> list[str]:
    """Every way the package breaks the layer table, one line each (empty: none)."""
    owner, allowed = layer_table(table_text)
    files = module_files(package)
    graph = {m: imports(m, p, set(files)) for m, p in files.items()}
    problems = [f"{m}: in no layer of the table" for m in graph if layer_of(m, owner) is None]
    problems += [f"layer {layer} may import {other}, which the table does not list"
                 for layer, others in allowed.items() for other in others - set(allowed)]  # fmt: skip
    for m, targets in sorted(graph.items()):
        here = layer_of(m, owner)
        for t in sorted(targets):
            there = layer_of(t, owner)
            if here and there and there != here and there not in allowed[here]:
                problems.append(f"{m} ({here}) imports {t} ({there}), which {here} may not import")
    problems += [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    return problems


def test_the_package_follows_its_layers():
    problems = check(ROOT / "cliffhmr", ARCHITECTURE.read_text())
    assert not problems, "\n".join(problems)


def test_the_inference_path_never_imports_the_side_layers():
    """Training, data, synthetic people and evaluation stay beside the path from a photo to bodies."""
    _, allowed = layer_table(ARCHITECTURE.read_text())
    path = ("base", "geometry", "perception", "body", "network", "fitting", "inference")
    for layer in path:
        assert allowed[layer] <= set(path[: path.index(layer)]), layer


TABLE = """## Layers
| layer | modules | may import |
| --- | --- | --- |
| low | `pkg.low`, `pkg` | - |
| high | `pkg.high` | low |
"""


def _package(tmp_path, **modules) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir(parents=True)
    for name, code in {"__init__": "", **modules}.items():
        (pkg / f"{name}.py").write_text(code)
    return pkg


@pytest.mark.parametrize("code", ["from .high import x\n", "def f():\n    from . import high\n"])
def test_the_check_finds_upward_imports_lazy_or_not(tmp_path, code):
    pkg = _package(tmp_path, low=code, high="x = 1\n")
    assert check(pkg, TABLE) == ["pkg.low (low) imports pkg.high (high), which low may not import"]


def test_the_check_finds_modules_in_no_layer_and_cycles(tmp_path):
    pkg = _package(tmp_path, low="from . import other\n", other="def f():\n    from .low import g\n", high="")
    assert check(pkg, TABLE) == ["pkg.other: in no layer of the table", "import cycle: pkg.low <-> pkg.other"]
    assert check(pkg, TABLE.replace("`pkg.low`", "`pkg.low`, `pkg.other`")) == ["import cycle: pkg.low <-> pkg.other"]
    assert check(_package(tmp_path / "ok", low="", high="from .low import y\n"), TABLE) == []
