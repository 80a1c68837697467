"""The annotator's work folder: images in fixed shards, each finished shard one file, then one merge.

OUT.npz.shards/ holds manifest.json (the run's arguments) and shard-NNNNN.npz per finished shard
(its rows, and its skips as two string arrays). Shards are the sorted images in chunks of a fixed
size, so a restart with the same command finds the same shards, does only the missing ones, and
merges into the same file as an uninterrupted run. A folder left by other arguments is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_npz_atomic, write_text_atomic
from ..errors import CliffError
from ..npzio import read_npz
from .items import Skip
from .rows import concat_rows

_SKIP_ITEM, _SKIP_REASON = "_skip_item", "_skip_reason"


@dataclass
class Shard:
    index: int
    images: list[Path]


def plan_shards(images: list[Path], size: int) -> list[Shard]:
    """Sorted images in chunks of `size`: the same list gives the same shards on every run."""
    ordered = sorted(images)
    return [Shard(k // size, ordered[k : k + size]) for k in range(0, len(ordered), size)]


def work_folder(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def file_digest(path: str | Path | None) -> str | None:
    """A file's sha256 (a changed boxes or keypoint file is another run), None for no file."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_work_folder(folder: Path, arguments: dict) -> None:
    """Refuse a work folder that an earlier run left with other `arguments`: resuming it would mix two runs."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return
    before = json.loads(manifest.read_text())
    changed = sorted(k for k in set(before) | set(arguments) if before.get(k) != arguments.get(k))
    if changed:
        raise CliffError(f"{folder}: holds an unfinished annotation run with other arguments ({', '.join(changed)} differ); "
                         "rerun that command to finish it, or delete the folder to start over")  # fmt: skip


def start_work_folder(folder: Path, arguments: dict) -> None:
    """The folder and its manifest, once the run is sure to start (models loaded)."""
    if not (folder / "manifest.json").is_file():
        write_text_atomic(folder / "manifest.json", json.dumps(arguments, indent=1, sort_keys=True))


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.npz"


def write_shard(folder: Path, index: int, rows: dict[str, np.ndarray], skips: list[Skip]) -> None:
    arrays = {**rows, _SKIP_ITEM: np.array([s.item for s in skips], dtype=str), _SKIP_REASON: np.array([s.reason for s in skips], dtype=str)}
    write_npz_atomic(shard_path(folder, index), arrays)


def read_shard(folder: Path, index: int) -> tuple[dict[str, np.ndarray], list[Skip]]:
    raw = read_npz(shard_path(folder, index), "annotation shard")
    skips = [Skip(str(i), str(r)) for i, r in zip(raw.pop(_SKIP_ITEM), raw.pop(_SKIP_REASON))]
    return raw, skips


def merge(folder: Path, count: int, out: Path, extra_skips: list[Skip]) -> tuple[dict[str, np.ndarray], list[Skip]]:
    """Every shard's rows, in shard order, into `out`, and the skip log beside it; then the work
    folder goes. A run killed here leaves every shard: the rerun merges again, to the same file."""
    parts, skips = [], list(extra_skips)
    for index in range(count):
        rows, shard_skips = read_shard(folder, index)
        skips += shard_skips
        if rows:
            parts.append(rows)
    rows = concat_rows(parts)
    write_text_atomic(skip_log_path(out), json.dumps([{"item": s.item, "reason": s.reason} for s in skips], indent=1) + "\n")
    if rows:
        write_npz_atomic(out, rows)
    shutil.rmtree(folder)
    return rows, skips


def skip_log_path(out: Path) -> Path:
    return out.with_suffix(".skipped.json")
