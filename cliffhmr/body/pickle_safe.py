"""Read SMPL and 3DPW .pkl files without running code from them and without chumpy.

A pickle names the globals it needs and the unpickler calls them; a hostile file can name
`os.system`. Even numpy's own rebuild functions are unsafe on hostile input: a dtype's pickled
state can declare an object dtype whose "objects" are pointers read from the file, and the
process dies on first use. So no numpy or scipy code ever runs while unpickling: every allowed
global resolves to an inert stand-in that only records what the file says. Once the file is
read, the stand-ins are rebuilt into plain numpy arrays from checked parts:
- dtypes: only booleans, integers, floats, complex numbers and byte/unicode strings;
- arrays: their bytes must be exactly shape x itemsize, and all arrays together (dense forms of
  sparse matrices included) may hold at most twice the file's size, so a few bytes can never ask
  for gigabytes. A pickle can refer to one object many times, so everything that copies what it
  is given (arrays from a buffer, and while unpickling: bytes from text, sets from lists) spends
  from that one budget;
- scipy CSC/CSR matrices: indptr monotone from 0, indices inside the matrix, sizes consistent;
- chumpy's `Ch`: its array under "x".
Anything else is refused with a CliffError naming the file.

How the official files are pickled (Python 2, numpy, scipy and chumpy objects):
- `chumpy.ch.Ch` objects (e.g. shapedirs) are plain instances whose state is their `__dict__`,
  the array itself under the key "x";
- `scipy.sparse.csc_matrix` (J_regressor) is a plain instance whose state holds `data`,
  `indices`, `indptr` and `_shape` (a plain `shape` is accepted too).
Instances are created through `copyreg.__newobj__` (the NEWOBJ opcode, protocol 2+) or
`copy_reg._reconstructor` (protocols 0-1); both are honoured for the stand-in classes only.
Arrays come as `_reconstruct` + state (protocols 0-4) or `_frombuffer` (protocol 5), scalars
as `scalar(dtype, bytes)`.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CliffError

# Type codes as numpy pickles them ("f8", "<u4" is split into code and byte order, "S5", "U3").
_PLAIN_CODE = re.compile(r"[biufc]\d+|[SU]\d*")
_PLAIN_VALUES = (type(None), bool, int, float, complex, str, bytes, bytearray)


class _Invalid(Exception):
    """The file's content, once read, is not what a pickled array or matrix may hold."""


class _Refused(Exception):
    """The file names a global outside the allow-list."""


class _NdarrayName:
    """`numpy.ndarray` as a pickle names it: only ever `_reconstruct`'s first argument."""


class _Dtype:
    """Stand-in for `numpy.dtype(code, align, copy)` plus its pickled state."""

    code: Any = None
    state: Any = None

    def __init__(self, code: Any = None, *flags: Any) -> None:
        self.code = code

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Array:
    """Stand-in for an ndarray or numpy scalar: its state is (shape, dtype, fortran order, bytes)."""

    state: Any = None
    scalar = False

    def __setstate__(self, state: Any) -> None:
        # ndarray.__reduce__ gives (version, shape, dtype, is_fortran, bytes); version 0 lacks it.
        self.state = state[1:] if isinstance(state, tuple) and len(state) == 5 else state


class ChumpyArray:
    """Stand-in for chumpy's `Ch`: keeps the pickled state, whose "x" is the array."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class SparseMatrix:
    """Stand-in for scipy's CSC/CSR matrices: keeps the pickled state."""

    format = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


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


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _Array:
    """numpy's `_reconstruct(ndarray, (0,), b"b")`: an empty array that BUILD then fills."""
    if subtype is not _NdarrayName:
        raise pickle.UnpicklingError("refusing to reconstruct anything but a numpy.ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    """numpy's `_frombuffer`, how protocol 5 pickles contiguous arrays."""
    array = _Array()
    array.state = (shape, dtype, order == "F", buf)
    return array


def _scalar(dtype: Any, data: Any) -> _Array:
    """numpy's `scalar(dtype, bytes)`: a numpy scalar, read as a 0-d array."""
    array = _Array()
    array.state, array.scalar = ((), dtype, False, data), True
    return array


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode`, which Python 3 pickles use to rebuild bytes; only its latin-1 use."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("chumpy.ch", "Ch"): ChumpyArray,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _Dtype,
}
for _module in ("copy_reg", "copyreg"):  # Python 2's and 3's names of one module
    _ALLOWED[(_module, "_reconstructor")] = _reconstructor
for _module in ("__builtin__", "builtins"):
    for _obj in (object, set, frozenset):
        _ALLOWED[(_module, _obj.__name__)] = _obj
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _frombuffer
for _fmt, _cls in (("csc", _CSC), ("csr", _CSR)):
    for _module in (f"scipy.sparse.{_fmt}", f"scipy.sparse._{_fmt}"):
        _ALLOWED[(_module, f"{_fmt}_matrix")] = _cls
        _ALLOWED[(_module, f"{_fmt}_array")] = _cls


class _Budget:
    """Bytes (or set items) a file may still make its loader copy."""

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self, n: int) -> None:
        if n > self.left:
            raise _Invalid("it holds more data than the file could (more than twice its size)")
        self.left -= n


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, budget: _Budget) -> None:
        super().__init__(file, encoding="latin1")
        self.budget = budget

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None
        if found in (set, frozenset, _latin1_encode):
            return lambda *args: self._copy(found, *args)
        return found

    def _copy(self, func: Any, *args: Any) -> Any:
        """`func(*args)`, its first argument's length spent from the budget."""
        self.budget.spend(len(args[0]) if args and hasattr(args[0], "__len__") else 0)
        return func(*args)


def load_pickle(path: str | Path) -> Any:
    """Unpickle a file through the allow-list; numpy data from Python 2 pickles is read as latin-1.
    Returns plain Python values and numpy arrays (chumpy arrays and sparse matrices as dense arrays)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            budget = _Budget(2 * os.fstat(f.fileno()).st_size)
            loaded = _RestrictedUnpickler(f, budget).load()
        return _Rebuild(budget).value(loaded)
    except _Refused as e:
        raise CliffError(
            f"{path}: refusing to unpickle {e}: only numpy arrays, scipy sparse matrices and chumpy arrays are allowed"
        ) from None
    except _Invalid as e:
        raise CliffError(f"{path}: refusing this pickle: {e}") from None
    except OSError as e:
        raise CliffError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # a corrupt or truncated pickle can raise almost anything
        raise CliffError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


class _Rebuild:
    """Turns the unpickled stand-ins into numpy arrays, each object once (a pickle may share an
    object between many places, or nest one in itself), within a budget of bytes."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.done: dict[int, Any] = {}

    def value(self, obj: Any) -> Any:
        key = id(obj)
        if key not in self.done:
            self.done[key] = self._rebuild(obj, key)
        return self.done[key]

    def _rebuild(self, obj: Any, key: int) -> Any:
        kind = type(obj)
        if kind in _PLAIN_VALUES:
            return obj
        if kind is list:
            out: list = []
            self.done[key] = out  # before the items: a list may hold itself
            out.extend(self.value(item) for item in obj)
            return out
        if kind is dict:
            table: dict = {}
            self.done[key] = table
            table.update((self.value(k), self.value(v)) for k, v in obj.items())
            return table
        if kind in (tuple, set, frozenset):
            return kind(self.value(item) for item in obj)  # numpy arrays in a set: unhashable, refused
        if kind is _Array:
            array = self._array(obj.state)
            return array[()] if obj.scalar else array
        if kind is _Dtype:
            return _plain_dtype(obj)
        if kind is ChumpyArray:
            state = self.value(obj.state)
            if not isinstance(state, dict) or not isinstance(state.get("x"), np.ndarray):
                raise _Invalid("a chumpy array without its data ('x')")
            return state["x"]
        if kind in (_CSC, _CSR):
            return self._dense(obj.format, self.value(obj.state))
        raise _Invalid(f"an unexpected {kind.__name__} object")

    def _array(self, state: Any) -> np.ndarray:
        """An array from (shape, dtype, fortran, bytes), its size matching the bytes exactly."""
        if not (isinstance(state, tuple) and len(state) == 4 and isinstance(state[1], _Dtype)):
            raise _Invalid("a numpy array without a valid shape, dtype and data")
        shape, dtype, fortran, data = state[0], _plain_dtype(state[1]), state[2], state[3]
        if isinstance(data, str):  # Python 2 byte strings arrive as latin-1 text
            data = data.encode("latin1")
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 32:
            raise _Invalid(f"a numpy array of shape {shape!r}")
        if not isinstance(data, (bytes, bytearray)) or math.prod(shape) * dtype.itemsize != len(data):
            raise _Invalid(f"a numpy array of shape {shape} and dtype {dtype} whose data does not fit it")
        self.budget.spend(len(data))
        flat = np.frombuffer(data, dtype=dtype) if data else np.empty(0, dtype)
        return flat.reshape(shape, order="F" if fortran else "C").copy()

    def _dense(self, fmt: str, state: Any) -> np.ndarray:
        """The dense form of a CSC/CSR matrix from its checked parts."""
        if not isinstance(state, dict):
            raise _Invalid(f"a {fmt} matrix without its data")
        shape = state.get("_shape", state.get("shape"))
        data, indices, indptr = (state.get(k) for k in ("data", "indices", "indptr"))
        if not (isinstance(shape, tuple) and len(shape) == 2 and all(type(n) is int and n >= 0 for n in shape)):
            raise _Invalid(f"a {fmt} matrix of shape {shape!r}")
        # CSC stores columns (major axis) by indptr, rows (minor axis) in indices; CSR the opposite.
        n_major, n_minor = shape[::-1] if fmt == "csc" else shape
        problem = _sparse_problem(data, indices, indptr, n_major, n_minor)
        if problem:
            raise _Invalid(f"an inconsistent {fmt} matrix of shape {shape}: {problem}")
        self.budget.spend(n_major * n_minor * data.dtype.itemsize)
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        dense = np.zeros((n_major, n_minor), dtype=data.dtype)
        np.add.at(dense, (major, indices), data)  # duplicate entries add up, as in scipy
        return dense.T if fmt == "csc" else dense


def _sparse_problem(data: Any, indices: Any, indptr: Any, n_major: int, n_minor: int) -> str | None:
    """What is wrong with a compressed sparse matrix's arrays, or None."""
    arrays = (data, indices, indptr)
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
        return "data, indices and indptr must be 1-D arrays"
    if data.dtype.kind not in "biufc" or indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        return "data must be numbers and indices, indptr integers"
    if len(indptr) != n_major + 1 or indptr[0] != 0 or np.any(np.diff(indptr.astype(np.int64)) < 0):
        return "indptr must rise from 0, one entry per row or column and one more"
    if not len(data) == len(indices) == indptr[-1]:
        return "data, indices and indptr disagree on the number of entries"
    if len(indices) and (indices.min() < 0 or indices.max() >= n_minor):
        return "an index outside the matrix"
    return None


def _plain_dtype(stand_in: _Dtype) -> np.dtype:
    """A real dtype from a pickled one, only if it is a plain number, boolean or string type:
    built from the checked type code, never from the pickled state (whose flags could say that
    a block of the file's bytes holds Python objects)."""
    code, state = stand_in.code, stand_in.state
    if not (isinstance(code, str) and _PLAIN_CODE.fullmatch(code)):
        raise _Invalid(f"numpy dtype {code!r}: only plain numeric, boolean and string arrays are allowed")
    dtype = np.dtype(code)
    if state is None:
        return dtype
    # (version, byte order, subarray, names, fields, itemsize, alignment, flags[, metadata])
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None, None, None)):
        raise _Invalid(f"numpy dtype {code!r} with a structure or an unknown layout")
    order, itemsize = state[1], state[5]
    if order not in ("<", ">", "|", "="):
        raise _Invalid(f"numpy dtype {code!r} with byte order {order!r}")
    if dtype.kind in "SU" and type(itemsize) is int and itemsize > 0:  # flexible: the state holds the size
        dtype = np.dtype(f"{dtype.kind}{itemsize // (4 if dtype.kind == 'U' else 1)}")
    return dtype.newbyteorder(order) if order in "<>" else dtype
