"""Body models and joint regressors by name or file: the one place that picks a model class.

Above `base`, `smpl` and `anny`, so the interface never imports the models built on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import CliffError
from ..npzio import read_npy
from .base import BodyModel
from .smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS

GENDERS = ("neutral", "male", "female")


def load_body_model(kind_or_path: str | Path | None = None, gender: str = "neutral", device="cpu") -> BodyModel:
    """The body model to use.

    None or "anny" -> Anny (gender sets the phenotype it is centred on). A path to an SMPL
    .pkl/.npz file, or to a folder holding SMPL_NEUTRAL/SMPL_MALE/SMPL_FEMALE (.pkl or .npz)
    -> SMPL of that gender.
    """
    if gender not in GENDERS:
        raise CliffError(f"unknown gender {gender!r}: use one of {', '.join(GENDERS)}")
    if kind_or_path is None or str(kind_or_path).lower() == "anny":
        from .anny import AnnyBody  # here: Anny pulls in its data and builder

        return AnnyBody(gender=gender).to(device)
    from .smpl import SMPLModel, find_smpl_file

    return SMPLModel.from_file(find_smpl_file(kind_or_path, gender)).to(device)


def load_smpl(path: str, device: torch.device | str = "cpu", gender: str = "neutral") -> BodyModel:
    """The SMPL body the CLIFF network's parameters drive (24 joints, 10 betas): a file, or a folder of SMPL_<GENDER> files."""
    if not path or path == "anny":
        raise CliffError("the CLIFF network predicts SMPL parameters: give an SMPL model file (body.smpl / --smpl)")
    body = load_body_model(path, gender, device=device)
    if body.num_joints != SMPL_NUM_JOINTS or body.num_betas < SMPL_NUM_BETAS:
        raise CliffError(f"{path}: need an SMPL model (24 joints, >= 10 betas), got {body.num_joints} joints, {body.num_betas} betas")
    return body


def load_joint_regressor(path: str | Path, body: BodyModel | None = None, rows: int | None = None) -> Tensor:
    """A (K, V) joint regressor from a .npy file (H36M's J_regressor_h36m.npy, SPIN's
    J_regressor_extra.npy) as float32; with `body` and `rows`, it must be (rows, body's vertices)."""
    array = read_npy(path, "joint regressor file")
    if array.ndim != 2 or array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        raise CliffError(f"{path}: a joint regressor must be a finite real (K, V) array, got {array.shape} {array.dtype}")
    if body is not None and array.shape != (rows if rows is not None else array.shape[0], body.num_vertices):
        expected = f"({rows if rows is not None else 'K'}, {body.num_vertices})"
        raise CliffError(f"{path}: expected a joint regressor of shape {expected} for the {body.name} body, got {array.shape}")
    return torch.as_tensor(array, dtype=torch.float32)
