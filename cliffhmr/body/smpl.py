"""SMPL (Loper et al. 2015) from the official .pkl files or .npz files with the same keys.

No SMPL data ships with this package: users point to their own licensed files. The .pkl files
are read by `pickle_safe` (no code runs, chumpy is never imported).

The model, for betas b (first 10 shape directions) and local rotations R_0..R_23:
    v_shaped = v_template + shapedirs b
    J        = J_regressor v_shaped                      rest joints
    v_posed  = v_shaped + posedirs vec(R_1 - I, .., R_23 - I)   pose blend shapes
    vertices = linear blend skinning of v_posed along the kinematic tree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import CliffError
from ..npzio import read_npz
from .base import BodyModel, BodyOutput, forward_kinematics, linear_blend_skinning
from .pickle_safe import load_pickle

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
]  # fmt: skip
# SMPL's sizes, here once: 24 joints (the network's and datasets' 72-number axis-angle pose), the
# 10 shape coefficients networks predict and datasets store, the official mesh's vertices.
SMPL_NUM_JOINTS = len(SMPL_JOINT_NAMES)
SMPL_NUM_BETAS = 10
SMPL_NUM_VERTICES = 6890
HEAD = SMPL_JOINT_NAMES.index("head")
# COCO's face keypoints as SMPL mesh vertices (nose, left eye, right eye, left ear, right ear),
# the ids SPIN and smplx use (smplx's vertex_ids["smplh"]; SMPL-H shares SMPL's body mesh).
FACE_VERTEX_IDS = (332, 2800, 6260, 583, 4071)
# COCO's 12 body keypoints (shoulders .. ankles, in COCO order) as SMPL joints.
BODY_KEYPOINT_JOINTS = (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)

_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def find_smpl_file(path: str | Path, gender: str = "neutral") -> Path:
    """An SMPL .pkl/.npz file, or a folder holding SMPL_<GENDER>.pkl or .npz (gender then picks it)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for suffix in (".pkl", ".npz"):
            candidate = path / f"SMPL_{gender.upper()}{suffix}"
            if candidate.is_file():
                return candidate
        raise CliffError(f"{path}: no SMPL_{gender.upper()}.pkl or .npz in this folder")
    if path.is_file():
        if path.suffix.lower() not in (".pkl", ".npz"):
            raise CliffError(f"{path}: an SMPL model must be a .pkl or .npz file")
        return path
    raise CliffError(
        f"body model not found: {path} (use 'anny', an SMPL .pkl/.npz file, or a folder holding SMPL_NEUTRAL.pkl)"
    )


def read_smpl_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The model arrays of an SMPL .pkl/.npz file, checked for consistent shapes."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        npz = read_npz(path, "SMPL .npz")
        raw = {key: npz[key] for key in _REQUIRED_KEYS if key in npz}
    else:
        loaded = load_pickle(path)
        if not isinstance(loaded, dict):
            raise CliffError(f"{path}: an SMPL .pkl must hold a dict, got {type(loaded).__name__}")
        raw = {key: loaded[key] for key in _REQUIRED_KEYS if key in loaded}
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        raise CliffError(f"{path}: not an SMPL model, missing {', '.join(missing)}")
    not_arrays = [key for key, value in raw.items() if not isinstance(value, np.ndarray)]
    if not_arrays:
        raise CliffError(f"{path}: not a valid SMPL model: {', '.join(not_arrays)} must be arrays")
    problem = _shape_problem(raw)
    if problem:
        raise CliffError(f"{path}: not a valid SMPL model: {problem}")
    return raw


def _shape_problem(a: dict[str, np.ndarray]) -> str | None:
    """What is inconsistent in the arrays, or None."""
    J = SMPL_NUM_JOINTS
    V = a["v_template"].shape[0] if a["v_template"].ndim == 2 else -1
    expected = {
        "v_template": (V, 3),
        "shapedirs": (V, 3, max(a["shapedirs"].shape[2] if a["shapedirs"].ndim == 3 else 0, SMPL_NUM_BETAS)),
        "posedirs": (V, 3, 9 * (J - 1)),
        "J_regressor": (J, V),
        "weights": (V, J),
        "kintree_table": (2, J),
        "f": (*a["f"].shape[:1], 3),
    }
    for key, shape in expected.items():
        if a[key].shape != shape or a[key].dtype.kind not in "iuf":
            return f"{key} has shape {a[key].shape} {a[key].dtype}, expected real numbers of shape {shape}"
    for key in expected:
        if not np.isfinite(a[key]).all():
            return f"{key} holds NaN or infinite values"
    faces = a["f"]
    if faces.size and (faces.min() < 0 or faces.max() >= V or not np.issubdtype(faces.dtype, np.integer)):
        return "faces index outside the vertices"
    if not np.array_equal(a["kintree_table"][1], np.arange(J)):
        return "kintree_table's second row must list the joints in order"
    return None


def parents_from_kintree(kintree_table: np.ndarray) -> list[int]:
    """Parent of each joint; the root's entry (-1 or 2**32 - 1 in the files) becomes -1."""
    parents = [int(p) for p in kintree_table[0]]
    parents[0] = -1
    if any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise CliffError("SMPL kintree_table: every joint's parent must come before it")
    return parents


class SMPLModel(BodyModel):
    """SMPL with 24 joints and 10 betas; see the module docstring for the model and
    `base` for the pose convention. Joints are SMPL's posed kinematic joints; COCO-17 keypoints
    take the face points from mesh vertices and the others from the joints (for SMPL-format
    files with another mesh, e.g. test toys, the face points fall back to the head joint)."""

    name = "smpl"

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        V = arrays["v_template"].shape[0]
        f32 = dict(dtype=torch.float32)
        self.joint_names = list(SMPL_JOINT_NAMES)
        self.num_joints = SMPL_NUM_JOINTS
        self.num_betas = SMPL_NUM_BETAS
        self.parents = parents_from_kintree(arrays["kintree_table"])
        self.register_buffer("v_template", torch.as_tensor(arrays["v_template"], **f32))
        # Blend shapes flattened to (directions, V * 3) so each blend is one matrix product.
        shapedirs = arrays["shapedirs"][:, :, :SMPL_NUM_BETAS].reshape(V * 3, SMPL_NUM_BETAS).T
        self.register_buffer("shapedirs", torch.as_tensor(np.ascontiguousarray(shapedirs), **f32))
        posedirs = arrays["posedirs"].reshape(V * 3, -1).T
        self.register_buffer("posedirs", torch.as_tensor(np.ascontiguousarray(posedirs), **f32))
        self.register_buffer("J_regressor", torch.as_tensor(arrays["J_regressor"], **f32))
        self.register_buffer("weights", torch.as_tensor(arrays["weights"], **f32))
        self.register_buffer("faces", torch.as_tensor(arrays["f"].astype(np.int64)))
        self._face_vertex_ids = list(FACE_VERTEX_IDS) if V == SMPL_NUM_VERTICES else None

    @classmethod
    def from_file(cls, path: str | Path) -> "SMPLModel":
        return cls(read_smpl_arrays(path))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def forward(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None = None) -> BodyOutput:
        self._check_inputs(rotmats, betas, transl)
        B = rotmats.shape[0]
        v_shaped = self.v_template + (betas @ self.shapedirs).view(B, -1, 3)
        rest_joints = self.J_regressor @ v_shaped  # (B, 24, 3)
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        pose_feature = (rotmats[:, 1:] - eye).reshape(B, -1)  # (B, 207)
        v_posed = v_shaped + (pose_feature @ self.posedirs).view(B, -1, 3)
        joints, transforms = forward_kinematics(rotmats, rest_joints, self.parents)
        vertices = linear_blend_skinning(v_posed, self.weights, transforms)
        keypoints = self.coco_keypoints(vertices, joints)
        if transl is not None:
            shift = transl[:, None]
            vertices, joints, keypoints = vertices + shift, joints + shift, keypoints + shift
        return BodyOutput(vertices=vertices, joints=joints, keypoints=keypoints)

    def coco_keypoints(self, vertices: Tensor, joints: Tensor) -> Tensor:
        """(B, V, 3), (B, 24, 3) -> (B, 17, 3) COCO-17 keypoints."""
        if self._face_vertex_ids is not None:
            face = vertices[:, self._face_vertex_ids]
        else:
            face = joints[:, [HEAD] * len(FACE_VERTEX_IDS)]
        return torch.cat((face, joints[:, list(BODY_KEYPOINT_JOINTS)]), dim=1)
