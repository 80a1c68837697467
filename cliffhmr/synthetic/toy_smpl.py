"""A stand-in SMPL body for tests and benchmarks when no licensed SMPL file is at hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_npz_atomic
from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..data.joints import SMPL_FLIP_PERM


# A stand-in SMPL body for tests and benchmarks when no licensed SMPL file is at hand: one box per
# joint along the SMPL skeleton, in SMPL's canonical frame (metres, y up, facing +z, x to the
# body's left), mirror-symmetric so flips are exact.
_TOY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
_TOY_JOINTS_LEFT = {  # joint -> (x, y, z) for the centre line and the left side; right = mirrored
    0: (0.0, -0.22, 0.02), 1: (0.07, -0.31, 0.02), 3: (0.0, -0.11, 0.0), 4: (0.10, -0.69, 0.01),
    6: (0.0, 0.03, 0.01), 7: (0.09, -1.09, -0.03), 9: (0.0, 0.10, 0.02), 10: (0.11, -1.15, 0.07),
    12: (0.0, 0.29, -0.01), 13: (0.08, 0.20, 0.0), 15: (0.0, 0.36, 0.03), 16: (0.18, 0.23, -0.01),
    18: (0.44, 0.21, -0.03), 20: (0.69, 0.22, -0.01), 22: (0.77, 0.21, -0.02),
}  # fmt: skip
# left/centre joint -> (end of its box: a joint, or ("+", dx, dy, dz) for leaves), half-width, half-depth
_TOY_BONES = {
    0: (3, 0.13, 0.09), 3: (6, 0.12, 0.09), 6: (9, 0.13, 0.09), 9: (12, 0.15, 0.09), 12: (15, 0.045, 0.045),
    15: (("+", 0.0, 0.22, 0.0), 0.08, 0.09), 1: (4, 0.07, 0.07), 4: (7, 0.05, 0.05), 7: (10, 0.04, 0.04),
    10: (("+", 0.0, -0.03, 0.10), 0.045, 0.025), 13: (16, 0.04, 0.04), 16: (18, 0.045, 0.045),
    18: (20, 0.035, 0.035), 20: (22, 0.03, 0.02), 22: (("+", 0.08, 0.0, 0.0), 0.035, 0.015),
}  # fmt: skip


def _mirror_joint(j: int) -> int:
    return SMPL_FLIP_PERM[j]


def _box(start: np.ndarray, end: np.ndarray, hw: float, hd: float) -> np.ndarray:
    """8 corners (start face first) of a box from `start` to `end` with half-width hw and half-depth hd."""
    d = (end - start) / np.linalg.norm(end - start)
    a = np.array([0.0, 1.0, 0.0]) if abs(d[2]) > 0.9 else np.array([0.0, 0.0, 1.0])
    u = np.cross(a, d)
    u /= np.linalg.norm(u)
    w = np.cross(d, u)
    corners = [(+1, +1), (+1, -1), (-1, -1), (-1, +1)]
    return np.array([p + su * hw * u + sw * hd * w for p in (start, end) for su, sw in corners])


_BOX_FACES = np.array(
    [[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6], [0, 4, 5], [0, 5, 1], [1, 5, 6], [1, 6, 2], [2, 6, 7], [2, 7, 3], [3, 7, 4], [3, 4, 0]]
)


def write_toy_smpl(path: str | Path, seed: int = 0) -> Path:
    """Write a toy body in SMPL's .npz layout (24 joints, 10 betas, 192 vertices). Not SMPL: for tests only.

    Each joint's box starts on the joint, so J_regressor (the mean of the start face) recovers the
    joints exactly; skinning is rigid; betas 0/1 scale height/width, betas 2-9 move joints
    symmetrically; no pose blend shapes.
    """
    flip = np.array([-1.0, 1.0, 1.0])
    joints = np.zeros((SMPL_NUM_JOINTS, 3))
    for j, p in _TOY_JOINTS_LEFT.items():
        joints[j] = p
        joints[_mirror_joint(j)] = np.asarray(p) * flip
    boxes = {}
    for j, (end, hw, hd) in _TOY_BONES.items():
        stop = joints[end] if isinstance(end, int) else joints[j] + np.array(end[1:])
        boxes[j] = _box(joints[j], stop, hw, hd)
        boxes[_mirror_joint(j)] = boxes[j] * flip  # right side: the mirror image, corner for corner
    v = np.concatenate([boxes[j] for j in range(SMPL_NUM_JOINTS)])
    faces = [_BOX_FACES + 8 * j for j in range(SMPL_NUM_JOINTS)]
    n = len(v)
    rng = np.random.default_rng(seed)
    shapedirs = np.zeros((n, 3, SMPL_NUM_BETAS))
    shapedirs[:, :, 0] = v * 0.06  # taller / shorter
    shapedirs[:, 0, 1] = v[:, 0] * 0.08  # broader / narrower
    per_joint = rng.normal(0, 0.012, (SMPL_NUM_JOINTS, 3, 8))
    for j in range(SMPL_NUM_JOINTS):
        m = _mirror_joint(j)
        if m > j:
            per_joint[m] = per_joint[j] * np.array([-1.0, 1.0, 1.0])[:, None]
        elif m == j:
            per_joint[j, 0] = 0.0
    owner = np.repeat(np.arange(SMPL_NUM_JOINTS), 8)
    shapedirs[:, :, 2:] = per_joint[owner]
    J_regressor = np.zeros((SMPL_NUM_JOINTS, n))
    for j in range(SMPL_NUM_JOINTS):
        J_regressor[j, 8 * j : 8 * j + 4] = 0.25
    W = np.zeros((n, SMPL_NUM_JOINTS))
    W[np.arange(n), owner] = 1.0
    kintree = np.array([[4294967295 if p < 0 else p for p in _TOY_PARENTS], list(range(SMPL_NUM_JOINTS))], dtype=np.int64)
    path = Path(path)
    write_npz_atomic(path, dict(
        v_template=v, shapedirs=shapedirs, posedirs=np.zeros((n, 3, 207)), J_regressor=J_regressor,
        weights=W, kintree_table=kintree, f=np.concatenate(faces).astype(np.int64),
    ))  # fmt: skip
    return path
