"""Random files in SMPL's formats (official .pkl with chumpy objects and a sparse regressor, or
.npz), so tests exercise the real loading code without any SMPL data."""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def random_smpl_arrays(seed=0, V=6890, F=13776, rigid_root=False):
    """Random arrays in SMPL's file layout (12 shape directions: the model must take the first 10).
    rigid_root: every vertex skinned to the root only, no pose blend shapes."""
    rng = np.random.default_rng(seed)
    J = len(SMPL_PARENTS)
    J_regressor = np.zeros((J, V))
    for j in range(J):  # each joint the mean of a few vertices, as sparse as SMPL's
        J_regressor[j, rng.choice(V, 8, replace=False)] = 1 / 8
    weights = np.zeros((V, J))
    for _ in range(3):
        weights[np.arange(V), rng.integers(0, J, V)] += rng.random(V)
    weights /= weights.sum(1, keepdims=True)
    posedirs = rng.normal(0, 0.005, (V, 3, 207)).astype(np.float32)
    if rigid_root:
        weights = np.zeros((V, J))
        weights[:, 0] = 1
        posedirs[:] = 0
    root = np.uint32(2**32 - 1)  # how the official files mark the root's parent
    return {
        "v_template": rng.normal(0, 0.3, (V, 3)).astype(np.float32),
        "shapedirs": rng.normal(0, 0.02, (V, 3, 12)).astype(np.float32),
        "posedirs": posedirs,
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": np.array([[root if p < 0 else p for p in SMPL_PARENTS], range(J)], dtype=np.uint32),
        "f": rng.integers(0, V, (F, 3)).astype(np.uint32),
        "bs_style": "lbs",  # official files hold a few more entries, ignored
    }  # fmt: skip


class FakeCh:
    """Pickles under chumpy's class path the way chumpy.ch.Ch does: a plain instance whose
    state is its __dict__ (minus weak references), the array under "x"."""

    __module__ = "chumpy.ch"
    __qualname__ = "Ch"

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


def dump_with_fake_chumpy(obj, path, protocol):
    """Pickle obj with a fake chumpy importable only while dumping."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch.Ch, chumpy.ch = FakeCh, ch
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "chumpy", chumpy)
        mp.setitem(sys.modules, "chumpy.ch", ch)
        path.write_bytes(pickle.dumps(obj, protocol=protocol))


def as_official_pickle(arrays):
    """shapedirs as a chumpy array and J_regressor as a CSC matrix, as in SMPL's .pkl files."""
    J_regressor = scipy.sparse.csc_matrix(arrays["J_regressor"])
    return {**arrays, "shapedirs": FakeCh(arrays["shapedirs"]), "J_regressor": J_regressor}


def write_random_smpl_pkl(path, seed=0, V=6890, F=13776):
    """An official-format SMPL .pkl (chumpy shapedirs, CSC J_regressor) with random content."""
    dump_with_fake_chumpy(as_official_pickle(random_smpl_arrays(seed, V, F)), path, protocol=2)
    return path
