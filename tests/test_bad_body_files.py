"""Hostile and broken body-model files (SMPL .pkl/.npz) and 3DPW sequence pickles: each is refused
with one line, never a crash, a traceback or NaN. The crafted pickles use only globals the
restricted unpickler allows, and are loaded in a child process: a crash there fails the test."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import assert_one_line_error, child_env, run, run_in_subprocess
from smpl_files import random_smpl_arrays, write_random_smpl_pkl


def _ops(value) -> bytes:
    """The opcodes that push a plain value (protocol 3, without PROTO and STOP)."""
    return pickle.dumps(value, protocol=3)[2:-1]


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def _dtype(code: str, flags: int = 0, names_fields: bytes = b"NN") -> bytes:
    """numpy.dtype(code) with a pickled state; its flags can claim anything about the bytes."""
    state = b"(" + _ops(3) + _ops("|") + b"N" + names_fields + _ops(-1) + _ops(-1) + _ops(flags) + b"t"
    return _call(_global("numpy", "dtype"), _ops(code), b"\x89\x88") + state + b"b"


def _array(shape: tuple, dtype: bytes, data: bytes) -> bytes:
    """An ndarray as numpy pickles one: _reconstruct, then BUILD with (1, shape, dtype, fortran, data);
    data: the opcodes that push its bytes."""
    empty = _call(_global("numpy.core.multiarray", "_reconstruct"), _global("numpy", "ndarray"), _ops((0,)), _ops(b"b"))
    return empty + b"(" + _ops(1) + _ops(shape) + dtype + b"\x89" + data + b"tb"


def _csc(state: dict[str, bytes]) -> bytes:
    """A scipy CSC matrix as a plain instance (NEWOBJ) whose state holds the given opcodes."""
    items = b"".join(_ops(key) + value for key, value in state.items())
    return _global("scipy.sparse._csc", "csc_matrix") + b")\x81}(" + items + b"ub"


def _file(value_ops: bytes) -> bytes:
    return b"\x80\x03" + value_ops + b"."


def _in_dict(key: str, value_ops: bytes) -> bytes:
    return _file(b"}(" + _ops(key) + value_ops + b"u")


_OBJECTS = _array((2,), _dtype("O8"), _ops(b"\x41" * 16))  # two "pointers" 0x4141...: SIGSEGV once touched
_STRUCT = _ops(("a",)) + b"}(" + _ops("a") + b"(" + _dtype("O8", 63) + _ops(0) + b"tu"  # names, fields: a = object at 0
_BIG = 200_000
_SHARED = b"(" + b"".join(
    [_ops(b"\0" * _BIG) + b"q\x01"] + [_array((_BIG // 8,), _dtype("f8"), b"h\x01") for _ in range(40)]
) + b"l"  # one buffer in the file, referenced by 40 arrays: 20x the file's size once rebuilt

_ENCODED = b"(" + _ops("\0" * _BIG) + b"q\x01" + _call(_global("_codecs", "encode"), b"h\x01", _ops("latin1")) * 40 + b"l"
_SETS = b"(" + _ops(list(range(_BIG // 2))) + b"q\x01" + _call(_global("builtins", "set"), b"h\x01") * 40 + b"l"

PAYLOADS = {
    "object array": (_in_dict("v_template", _OBJECTS), "numpy dtype 'O8'"),
    "object array in a set": (_in_dict("f", _call(_global("builtins", "set"), _OBJECTS)), "not a readable pickle"),
    "object numpy scalar": (_in_dict("x", _call(_global("numpy.core.multiarray", "scalar"), _dtype("O8"), _ops(b"\x41" * 8))), "numpy dtype 'O8'"),
    "struct with an object field": (
        _in_dict("x", _array((1,), _dtype("V8", 63, _STRUCT), _ops(b"\x41" * 8))), "numpy dtype 'V8'"),
    "sparse indptr of objects": (
        _in_dict("J_regressor", _csc({"data": _ops(None), "indices": _ops(None), "indptr": _OBJECTS, "_shape": _ops((24, 1))})),
        "numpy dtype 'O8'"),
    "sparse of 1e11 x 6890": (_in_dict("J_regressor", _csc({
        "data": _array((1,), _dtype("f8"), _ops(b"\0" * 8)), "indices": _array((1,), _dtype("i4"), _ops(b"\0" * 4)),
        "indptr": _array((6891,), _dtype("i8"), _ops(np.r_[0, np.ones(6890, np.int64)].tobytes())),
        "_shape": _ops((10**11, 6890))})), "more data than the file could"),
    "sparse index outside the matrix": (_in_dict("J_regressor", _csc({
        "data": _array((1,), _dtype("f8"), _ops(b"\0" * 8)), "indices": _array((1,), _dtype("i4"), _ops(np.int32([99]).tobytes())),
        "indptr": _array((2,), _dtype("i8"), _ops(np.int64([0, 1]).tobytes())), "_shape": _ops((5, 1))})), "an index outside"),
    "array larger than its data": (_in_dict("x", _array((10**6, 10**6), _dtype("f8"), _ops(b"\0" * 8))), "does not fit it"),
    "one buffer shared by many arrays": (_file(_SHARED), "more data than the file could"),
    "one text made into bytes many times": (_file(_ENCODED), "more data than the file could"),
    "one list made into sets many times": (_file(_SETS), "more data than the file could"),
    "lists nested 100000 deep": (_file(b"]" * 100_000 + b"a" * 99_999), "not a readable pickle"),
}

_LOAD_EACH = textwrap.dedent("""
    import sys
    from cliffhmr.body.pickle_safe import load_pickle
    from cliffhmr.errors import CliffError
    for path in sys.argv[1:]:
        try:
            print("loaded", type(load_pickle(path)).__name__, flush=True)
        except CliffError as e:
            print(str(e).replace("\\n", " "), flush=True)
""")


def test_crafted_pickles_are_refused_without_crashing(tmp_path):
    """Every payload in one child process (one import of torch), each refused with its own line."""
    paths = []
    for i, (payload, _) in enumerate(PAYLOADS.values()):
        paths.append(tmp_path / f"payload{i}.pkl")
        paths[-1].write_bytes(payload)
    cmd = [sys.executable, "-c", _LOAD_EACH, *map(str, paths)]
    done = subprocess.run(cmd, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the loader died (code {done.returncode}):\n{done.stdout}{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == len(PAYLOADS), done.stdout
    for (name, (_, expected)), path, line in zip(PAYLOADS.items(), paths, lines):
        assert line.startswith(f"{path}: ") and expected in line, f"{name}: {line}"


def test_lists_shared_at_every_level_are_rebuilt_once(tmp_path):
    """60 levels of [previous, previous]: walking every path would take 2**60 steps."""
    from cliffhmr.body.pickle_safe import load_pickle

    path = tmp_path / "dag.pkl"
    path.write_bytes(_file(b"]q\x00" + b"](h\x00h\x00eq\x00" * 60))
    loaded = load_pickle(path)
    assert loaded[0] is loaded[1]


@pytest.fixture(scope="module")
def sequence_root(tmp_path_factory):
    """A 3DPW layout whose SMPL files are fine; the tests put a sequence file in it."""
    root = tmp_path_factory.mktemp("3dpw")
    (root / "smpl").mkdir()
    write_random_smpl_pkl(root / "smpl" / "SMPL_MALE.pkl", seed=1, V=300, F=500)
    write_random_smpl_pkl(root / "smpl" / "SMPL_FEMALE.pkl", seed=2, V=300, F=500)
    (root / "sequenceFiles" / "test").mkdir(parents=True)
    return root


def test_cli_refuses_a_crafted_3dpw_sequence(sequence_root, tmp_path):
    sequence = sequence_root / "sequenceFiles" / "test" / "evil.pkl"
    sequence.write_bytes(PAYLOADS["sparse indptr of objects"][0])
    out = tmp_path / "out"
    done = run_in_subprocess(["convert", "3dpw", "--root", sequence_root, "--smpl", sequence_root / "smpl", "--out", out / "x.npz"], tmp_path)
    sequence.unlink()
    assert_one_line_error(done.returncode, done.stderr, "evil.pkl", "numpy dtype 'O8'")
    assert not out.exists()


def test_cli_refuses_a_crafted_smpl_file(tmp_path):
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_MALE.pkl").write_bytes(PAYLOADS["object array in a set"][0])
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    (tmp_path / "sequenceFiles" / "test" / "a.pkl").write_bytes(pickle.dumps({}))
    done = run_in_subprocess(["convert", "3dpw", "--root", tmp_path, "--smpl", tmp_path / "smpl", "--out", tmp_path / "out.npz"], tmp_path)
    assert_one_line_error(done.returncode, done.stderr, "SMPL_MALE.pkl", "not a readable pickle")
    assert not (tmp_path / "out.npz").exists()


BROKEN_SMPL = {
    "NaN in the template": ({"v_template": np.full((300, 3), np.nan, np.float32)}, "v_template holds NaN"),
    "infinite blend shape": ({"shapedirs": np.full((300, 3, 10), np.inf)}, "shapedirs holds NaN or infinite"),
    "a 0-d shapedirs": ({"shapedirs": np.array(1.0)}, "shapedirs has shape ()"),
    "strings for weights": ({"weights": np.full((300, 24), "x")}, "weights has shape"),
    "a list for the template": ({"v_template": [[0.0, 1.0], [2.0]]}, "v_template must be arrays"),
    "complex posedirs": ({"posedirs": np.zeros((300, 3, 207), complex)}, "posedirs has shape"),
    "no faces": ({"f": None}, "missing f"),
}


@pytest.mark.parametrize("case", BROKEN_SMPL)
def test_broken_smpl_pkl_is_refused_with_one_line(case, tmp_path, capsys):
    """Through `convert`, the first command to load the SMPL files; nothing is written."""
    changes, expected = BROKEN_SMPL[case]
    arrays = {k: v for k, v in {**random_smpl_arrays(V=300, F=500), **changes}.items() if v is not None}
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_MALE.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    (tmp_path / "sequenceFiles" / "test" / "a.pkl").write_bytes(pickle.dumps({}))
    code, captured = run(["convert", "3dpw", "--root", tmp_path, "--smpl", tmp_path / "smpl", "--out", tmp_path / "out.npz"], capsys)
    assert_one_line_error(code, captured.err, "SMPL_MALE.pkl", expected)
    assert not (tmp_path / "out.npz").exists()


def _sequence(**changes) -> dict:
    """A valid one-actor, two-frame 3DPW sequence, with `changes` applied."""
    rng = np.random.default_rng(0)
    cam = np.tile(np.eye(4), (2, 1, 1))
    cam[:, 2, 3] = 4.0
    seq = {"genders": ["m"], "cam_poses": cam, "cam_intrinsics": np.array([[1960.0, 0, 540], [0, 1970.0, 960], [0, 0, 1]]),
           "img_frame_ids": np.arange(2), "poses": [rng.normal(0, 0.2, (2, 72))], "betas": [np.zeros(10)],
           "trans": [np.zeros((2, 3))], "jointPositions": [rng.normal(0, 0.3, (2, 72))], "campose_valid": [np.ones(2)]}  # fmt: skip
    return {**seq, **changes}


BROKEN_SEQUENCES = {
    "fewer poses than actors": ({"poses": []}, "poses must be lists with one entry per gender"),
    "poses of 69 numbers": ({"poses": [np.zeros((2, 69))]}, "poses must be real numbers of shape (2, 72), got (2, 69) float64"),
    "poses as nested lists": ({"poses": [[[0.0] * 72] * 2]}, "poses must be real numbers of shape (2, 72), got list"),
    "camera poses of strings": ({"cam_poses": np.full((2, 4, 4), "x")}, "cam_poses must be real numbers of shape (2, 4, 4)"),
    "genders not a list": ({"genders": "mf"}, "genders must be a list, got str"),
    "NaN translation": ({"trans": [np.full((2, 3), np.nan)]}, "actor 0: NaN or infinite values"),
}


@pytest.mark.parametrize("case", BROKEN_SEQUENCES)
def test_broken_3dpw_sequence_is_one_line(case, sequence_root, tmp_path, capsys):
    changes, expected = BROKEN_SEQUENCES[case]
    sequence = sequence_root / "sequenceFiles" / "test" / "broken.pkl"
    sequence.write_bytes(pickle.dumps(_sequence(**changes), protocol=2))
    try:
        code, captured = run(["convert", "3dpw", "--root", sequence_root, "--smpl", sequence_root / "smpl", "--out", tmp_path / "x.npz"], capsys)
    finally:
        sequence.unlink()
    assert_one_line_error(code, captured.err, "broken.pkl", expected)
    assert not (tmp_path / "x.npz").exists()


def test_the_valid_sequence_those_are_made_from_converts(sequence_root, tmp_path, capsys):
    sequence = sequence_root / "sequenceFiles" / "test" / "fine.pkl"
    sequence.write_bytes(pickle.dumps(_sequence(), protocol=2))
    try:
        code, _ = run(["convert", "3dpw", "--root", sequence_root, "--smpl", sequence_root / "smpl", "--out", tmp_path / "x.npz"], capsys)
    finally:
        sequence.unlink()
    assert code == 0 and (tmp_path / "x.npz").is_file()


BROKEN_SMPL_NPZ = {
    "zero bytes": (b"", "not an .npz archive"),
    "object array": (None, "array 'f' has dtype object"),
}


@pytest.mark.parametrize("case", BROKEN_SMPL_NPZ)
def test_broken_smpl_npz_is_refused_with_one_line(case, tmp_path, capsys):
    content, expected = BROKEN_SMPL_NPZ[case]
    (tmp_path / "smpl").mkdir()
    path = tmp_path / "smpl" / "SMPL_MALE.npz"
    if content is None:
        np.savez(path, **{**random_smpl_arrays(V=300, F=500), "f": np.array([None], dtype=object)})
    else:
        path.write_bytes(content)
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    (tmp_path / "sequenceFiles" / "test" / "a.pkl").write_bytes(pickle.dumps({}))
    code, captured = run(["convert", "3dpw", "--root", tmp_path, "--smpl", tmp_path / "smpl", "--out", tmp_path / "out.npz"], capsys)
    assert_one_line_error(code, captured.err, "SMPL_MALE.npz", expected)


@pytest.mark.parametrize("content, expected", [
    (b"", "not a readable joint regressor file (EOFError"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (17, 6890), }" + b" " * 52 + b"\n",
     "not a readable joint regressor file (ValueError"),  # a header promising data the file lacks
    (None, "not a readable joint regressor file (ValueError: Object arrays"),
    (np.full((17, 30), np.nan), "a joint regressor must be a finite real (K, V) array"),
])  # fmt: skip
def test_broken_joint_regressor_is_one_line(content, expected, tmp_path):
    from cliffhmr.body import load_joint_regressor
    from cliffhmr.errors import CliffError

    path = tmp_path / "J_regressor_h36m.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.array([{}, None], dtype=object) if content is None else content)
    with pytest.raises(CliffError) as error:
        load_joint_regressor(path)
    assert expected in str(error.value) and "\n" not in str(error.value)
