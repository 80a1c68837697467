"""Write files so that a crash never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import contextvars
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import CliffError

# Set inside `all_or_none`: the (temporary, final) paths its writes will publish together.
_staged: contextvars.ContextVar[list | None] = contextvars.ContextVar("_staged", default=None)


@contextlib.contextmanager
def write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn the OS's refusal to write (a file in the way, a read-only place, a full disk) into
    one line naming `path` and the OS's reason."""
    try:
        yield
    except OSError as e:
        raise CliffError(f"{path}: cannot write ({e.strerror or e})") from None


def check_output_dir(path: str | os.PathLike) -> Path:
    """`path` as a folder to write results into, tried with a temporary file in it or in the
    folder it would be made in, so that a run fails before its work and not at its first result.
    Not created here: a run refused later for another reason leaves nothing behind."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise CliffError(f"{existing}: cannot write (it is a file, not a folder)")
    with write_errors(path):
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """`path` as a file to write, checked up front as `check_output_dir` checks a folder."""
    path = Path(path)
    if path.is_dir():
        raise CliffError(f"{path}: cannot write (it is a folder; name the file to write)")
    check_output_dir(path.parent)
    return path


def _folder(path: str | os.PathLike) -> Path:
    """`path`, created if missing; mkdir would call a file in its way "File exists"."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CliffError(f"{path}: cannot write (it is a file, not a folder)")
    with write_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix, so libraries that pick a format by
    extension (PIL, numpy) still do the right thing.
    """
    path = Path(path)
    _folder(path.parent)
    with write_errors(path):
        remove_orphans(path)
        # The writer's pid in the name tells a later run whether this file is still being written.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".partial{path.suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    staged = _staged.get()
    try:
        with write_errors(path):
            yield tmp
            if staged is None:
                os.replace(tmp, path)
            else:
                staged.append((tmp, path))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def all_or_none() -> Iterator[None]:
    """The atomic writes inside the block are published together when it ends, or none of them
    if it fails: an image's result set is never half replaced, e.g. by a disk that fills up."""
    staged: list[tuple[Path, Path]] = []
    token = _staged.set(staged)
    try:
        try:
            yield
        finally:
            _staged.reset(token)
        for tmp, path in staged:
            with write_errors(path):
                os.replace(tmp, path)
    finally:
        for tmp, _ in staged:  # those not published: the block or a rename failed
            tmp.unlink(missing_ok=True)


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
