"""Parametric body models behind one interface: SMPL (user-supplied files) and Anny (bundled).

    body = load_body_model()                         # Anny
    body = load_body_model("models/smpl", "female")  # SMPL from SMPL_FEMALE.pkl/.npz
    out = body(rotmats, betas, transl)               # BodyOutput(vertices, joints, keypoints)

Conventions (frame, pose) are in `base`; each model's specifics in `smpl` and `anny`; choosing and
loading one, and joint regressors for it, in `registry`.
"""

from .base import COCO17_NAMES, FACE_CAMERA, BodyModel, BodyOutput, Estimate
from .registry import load_body_model, load_joint_regressor, load_smpl

__all__ = [
    "COCO17_NAMES", "FACE_CAMERA", "BodyModel", "BodyOutput", "Estimate", "load_body_model", "load_joint_regressor", "load_smpl",
]  # fmt: skip
