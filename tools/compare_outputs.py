"""Are two runs' npz outputs the same? Every array of every `<stem>.npz` in two folders, compared.

    python tools/compare_outputs.py /tmp/layout_before /tmp/layout_after --atol 1e-5

Prints one line per file (the key that differs most and by how much) and exits 1 when a file is
missing on one side, the keys differ, a shape or text array differs, or a number differs by more
than `--atol`. Used to check that a change that should not change results (a re-layout) did not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def array_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two arrays; inf when shapes or texts differ. NaN equals NaN."""
    if a.shape != b.shape:
        return float("inf")
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return 0.0 if np.array_equal(a, b) else float("inf")
    if a.size == 0:
        return 0.0
    x, y = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(x) & np.isnan(y)
    diff = np.where(both_nan, 0.0, np.abs(x - y))
    return float(np.nan_to_num(diff, nan=np.inf).max())


def compare_files(a: Path, b: Path) -> dict[str, float]:
    """{key: largest difference} over the union of both files' keys (inf for a key one side lacks)."""
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        keys = sorted(set(za.files) | set(zb.files))
        return {k: array_difference(za[k], zb[k]) if k in za.files and k in zb.files else float("inf") for k in keys}


def compare_folders(a: Path, b: Path) -> dict[str, dict[str, float]]:
    """{file name: {key: difference}}; a file only one folder has maps to {"(missing)": inf}."""
    names = sorted({p.name for p in a.glob("*.npz")} | {p.name for p in b.glob("*.npz")})
    return {n: compare_files(a / n, b / n) if (a / n).is_file() and (b / n).is_file() else {"(missing)": float("inf")}
            for n in names}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--atol", type=float, default=1e-5)
    args = p.parse_args(argv)
    results = compare_folders(args.before, args.after)
    if not results:
        print(f"no npz files in {args.before} or {args.after}", file=sys.stderr)
        return 1
    worst = 0.0
    for name, diffs in results.items():
        key = max(diffs, key=diffs.get)
        worst = max(worst, diffs[key])
        print(f"{name}: {len(diffs)} arrays, max |difference| {diffs[key]:.3g} ({key})")
    print(f"max |difference| over all arrays: {worst:.3g} (tolerance {args.atol:g})")
    return 0 if worst <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
