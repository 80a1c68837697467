"""Parametric body models behind one interface: SMPL (user-supplied files) and Anny (bundled).

    body = load_body_model()                         # Anny
    body = load_body_model("models/smpl", "female")  # SMPL from SMPL_FEMALE.pkl/.npz
    out = body(rotmats, betas, transl)               # BodyOutput(vertices, joints, keypoints)

Conventions (frame, pose) are in `base`; each model's specifics in `smpl` and `anny`.
"""

from .base import COCO17_NAMES, BodyModel, BodyOutput, load_body_model, load_joint_regressor

__all__ = ["COCO17_NAMES", "BodyModel", "BodyOutput", "load_body_model", "load_joint_regressor"]
