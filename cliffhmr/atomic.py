"""Write files so that a crash never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix, so libraries that pick a format by
    extension (PIL, numpy) still do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    # The writer's pid in the name tells a later run whether this file is still being written.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_orphans(path: Path) -> None:
    """Delete the temporary files of `path` whose writer no longer runs (a run killed mid-write:
    SIGKILL leaves no chance to clean up). Another live run's are left alone."""
    start = f".{path.stem}."
    for p in path.parent.glob(f"{glob.escape(start)}*.partial{glob.escape(path.suffix)}"):
        pid = p.name[len(start) :].split(".")[0]
        if not (pid.isdigit() and _running(int(pid))):
            p.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, running
        pass
    return True


def write_npz_atomic(path: str | os.PathLike, arrays: dict, compressed: bool = False) -> None:
    """`np.savez` (or `savez_compressed`) of `arrays` to `path`, whatever its suffix.

    Through an open file: given a name that does not end in ".npz" (no suffix, ".NPZ"), numpy
    appends ".npz" to it, and the rename would publish the empty temporary file instead.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
