"""Reading the .npz/.npy files a user names (datasets, SMPL models, mean parameters, regressors):
plain arrays only, never pickles, and one clear line for every way a file can be broken.

numpy allocates an .npz member's array from the shape its header declares before reading any
data, so a few bytes could ask for terabytes; each member's declared size is checked against
the bytes the archive says it holds first.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .errors import CliffError

# Booleans, integers, floats, complex numbers, byte and unicode strings; no objects, no records.
_PLAIN_KINDS = "biufcSU"


class _NotPlain(Exception):
    pass


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive by name; CliffError naming the file and `what` it should be
    ("dataset file") when it is missing, a folder, not an .npz archive (empty, truncated, a .npy
    renamed), holds object or record arrays, or declares more data than it holds."""
    p = _existing_file(path, what)
    try:
        with zipfile.ZipFile(p) as archive:
            return {info.filename.removesuffix(".npy"): _member(archive, info) for info in archive.infolist()}
    except _NotPlain as e:
        raise CliffError(f"{p}: {e}") from None
    except zipfile.BadZipFile:
        raise CliffError(f"{p}: not a {what}: not an .npz archive (empty, truncated or another format)") from None
    except OSError as e:
        raise CliffError(f"{p}: cannot read {what} ({e.strerror or e})") from None
    except Exception as e:  # a corrupt member (header, compressed data) can raise almost anything
        raise CliffError(f"{p}: not a readable {what} ({type(e).__name__}: {e})") from None


def read_npy(path: str | Path, what: str) -> np.ndarray:
    """The array of a .npy file, with the same checks as `read_npz` (numpy reads a .npy's data
    straight from the file, so its size is bounded by the file's)."""
    p = _existing_file(path, what)
    try:
        array = np.load(p, allow_pickle=False)
    except OSError as e:
        raise CliffError(f"{p}: cannot read {what} ({e.strerror or e})") from None
    except Exception as e:  # a corrupt header or cut-off data can raise almost anything
        raise CliffError(f"{p}: not a readable {what} ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise CliffError(f"{p}: {what} must be a .npy array, not an .npz archive")
    if array.dtype.kind not in _PLAIN_KINDS:
        raise CliffError(f"{p}: {what} has dtype {array.dtype}: only plain numbers, booleans and strings")
    return array


def _existing_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise CliffError(f"{p}: is a folder, not a {what}")
    if not p.is_file():
        raise CliffError(f"{p}: no such {what}")
    return p


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    if not info.filename.endswith(".npy"):
        raise _NotPlain(f"holds {info.filename!r}, which is not a numpy array")
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)
    if dtype.kind not in _PLAIN_KINDS:
        raise _NotPlain(f"array {name!r} has dtype {dtype}: only plain numbers, booleans and strings are read")
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise _NotPlain(f"array {name!r} declares shape {shape} of {dtype}, more than the {info.file_size} bytes stored")
    with archive.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)
