"""Read SMPL .pkl files without running code from them and without chumpy.

A pickle names the globals it needs and the unpickler calls them; a hostile file can name
`os.system`. This unpickler resolves only an allow-list: numpy arrays, dtypes and scalars,
scipy CSC/CSR matrices and chumpy's `Ch` array, the last two as inert stand-ins that only keep
their data. Any other global is refused with a CliffError naming the file and the class.

How the official files are pickled (Python 2, numpy, scipy and chumpy objects):
- `chumpy.ch.Ch` objects (e.g. shapedirs) are plain instances whose state is their `__dict__`,
  the array itself under the key "x";
- `scipy.sparse.csc_matrix` (J_regressor) is a plain instance whose state holds `data`,
  `indices`, `indptr` and `_shape` (a plain `shape` is accepted too).
Instances are created through `copyreg.__newobj__` (the NEWOBJ opcode, protocol 2+) or
`copy_reg._reconstructor` (protocols 0-1); both are honoured for the stand-in classes only.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CliffError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer


class ChumpyArray:
    """Stand-in for chumpy's `Ch`: keeps the pickled state, whose "x" is the array."""

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        x = state.get("x") if isinstance(state, dict) else None
        if not isinstance(x, np.ndarray):
            raise ValueError("a chumpy array without its data ('x')")
        return x


class SparseMatrix:
    """Stand-in for scipy's CSC/CSR matrices: keeps the pickled state, converts to dense."""

    format = ""

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if not isinstance(state, dict):
            raise ValueError(f"a {self.format} matrix without its data")
        shape = state.get("_shape", state.get("shape"))
        data, indices, indptr = (np.asarray(state.get(k)) for k in ("data", "indices", "indptr"))
        # CSC stores columns (major axis) by indptr, rows (minor axis) in indices; CSR the opposite.
        try:
            n_rows, n_cols = (int(n) for n in shape)
            n_major = n_cols if self.format == "csc" else n_rows
            n_minor = n_rows if self.format == "csc" else n_cols
            valid = (
                indptr.shape == (n_major + 1,) and data.shape == indices.shape == (int(indptr[-1]),)
                and (indices.size == 0 or 0 <= indices.min() <= indices.max() < n_minor)
                and np.all(np.diff(indptr) >= 0)
            )  # fmt: skip
        except (TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            raise ValueError(f"an inconsistent {self.format} sparse matrix")
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        dense = np.zeros((n_major, n_minor), dtype=data.dtype)
        np.add.at(dense, (major, indices), data)  # duplicate entries add up, as in scipy
        return dense.T if self.format == "csc" else dense


class _CSC(SparseMatrix):
    format = "csc"


class _CSR(SparseMatrix):
    format = "csr"


_STAND_INS = (ChumpyArray, _CSC, _CSR)


def _reconstructor(cls: type, base: type, state: Any) -> object:
    """`copy_reg._reconstructor` (protocols 0-1) for the stand-ins only."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode`, which Python 3 pickles use to rebuild bytes; only its latin-1 use."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("chumpy.ch", "Ch"): ChumpyArray,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _frombuffer
for _fmt, _cls in (("csc", _CSC), ("csr", _CSR)):
    for _module in (f"scipy.sparse.{_fmt}", f"scipy.sparse._{_fmt}"):
        _ALLOWED[(_module, f"{_fmt}_matrix")] = _cls
        _ALLOWED[(_module, f"{_fmt}_array")] = _cls


class _Refused(Exception):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def load_pickle(path: str | Path) -> Any:
    """Unpickle a file through the allow-list; numpy data from Python 2 pickles is read as latin-1."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except _Refused as e:
        raise CliffError(
            f"{path}: refusing to unpickle {e}: only numpy arrays, scipy sparse matrices and chumpy arrays are allowed"
        ) from None
    except OSError as e:
        raise CliffError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # a corrupt or truncated pickle can raise almost anything
        raise CliffError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def to_numpy(value: Any) -> Any:
    """Stand-ins -> dense numpy arrays; anything else unchanged."""
    return value.to_numpy() if isinstance(value, _STAND_INS) else value
