"""Official dataset downloads -> the SPIN/CLIFF npz format that `npz_format` reads.

    cliffhmr convert 3dpw --root 3DPW --smpl SMPL_DIR --out 3DPW/3dpw_test.npz [--split test]

3DPW ships one pickle per sequence (`sequenceFiles/<split>/<name>.pkl`, Python 2, numpy arrays;
read through the restricted unpickler) holding, per actor, SMPL parameters in world coordinates
(`poses` (N, 72), `betas`, `trans` (N, 3), `jointPositions` (N, 72), `genders`) and, per frame,
the camera pose `cam_poses` (N, 4, 4) with `campose_valid` flags and `cam_intrinsics` (3, 3).
Each actor's frames with a valid camera pose become one row, in the camera frame:

    root rotation  R_c R_0
    translation    R_c (J_0 + t) + T_c - J_0

where J_0 is the pelvis of that actor's rest-pose body (SMPL rotates about it). The row's box
is the tight box of the projected ground-truth joints, grown to 3:4 and by 1.2 (the evaluation
protocol; `cliffhmr eval` recomputes it the same way from the mesh).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..arguments import ArgumentParser
from ..atomic import check_output_file, write_npz_atomic
from ..body import load_smpl
from ..body.pickle_safe import load_pickle
from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..geometry.rotation import axis_angle_to_rotmat, rotmat_to_axis_angle
from ..perception.crop import keypoint_box

_ACTOR_KEYS = ("poses", "betas", "trans", "jointPositions", "campose_valid")
_SEQUENCE_KEYS = ("poses", "betas", "trans", "jointPositions", "cam_poses", "cam_intrinsics", "campose_valid", "img_frame_ids", "genders")


def _sequence(path: Path) -> dict:
    """A sequence file's dict, its arrays checked against the shapes the conversion indexes by."""
    seq = load_pickle(path)
    if not isinstance(seq, dict):
        raise CliffError(f"{path}: not a 3DPW sequence file (expected a dict)")
    missing = [k for k in _SEQUENCE_KEYS if k not in seq]
    if missing:
        raise CliffError(f"{path}: not a 3DPW sequence file: missing {', '.join(missing)}")
    if not isinstance(seq["genders"], list):
        raise CliffError(f"{path}: not a 3DPW sequence file: genders must be a list, got {type(seq['genders']).__name__}")
    actors = len(seq["genders"])
    short = [k for k in _ACTOR_KEYS if not (isinstance(seq[k], list) and len(seq[k]) == actors)]
    if short:
        raise CliffError(f"{path}: not a 3DPW sequence file: {', '.join(short)} must be lists with one entry per gender")
    n = len(seq["cam_poses"]) if isinstance(seq["cam_poses"], np.ndarray) and seq["cam_poses"].ndim else 0
    checks = [("cam_poses", seq["cam_poses"], (n, 4, 4)), ("cam_intrinsics", seq["cam_intrinsics"], (3, 3)),
              ("img_frame_ids", seq["img_frame_ids"], (n,))]  # fmt: skip
    for p in range(actors):
        checks += [("poses", seq["poses"][p], (n, 3 * SMPL_NUM_JOINTS)), ("trans", seq["trans"][p], (n, 3)),
                   ("jointPositions", seq["jointPositions"][p], (n, 3 * SMPL_NUM_JOINTS)), ("campose_valid", seq["campose_valid"][p], (n,)),
                   ("betas", seq["betas"][p], (max(SMPL_NUM_BETAS, getattr(seq["betas"][p], "size", 0)),))]  # fmt: skip
    for key, value, shape in checks:
        if not (isinstance(value, np.ndarray) and value.shape == shape and value.dtype.kind in "biuf"):
            got = f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise CliffError(f"{path}: not a 3DPW sequence file: {key} must be real numbers of shape {shape}, got {got}")
    return seq


def _gender(value) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    if text[:1] not in ("m", "f"):
        raise CliffError(f"unknown gender {text!r}; expected 'm' or 'f'")
    return text[:1]


def convert_3dpw(root: str | Path, smpl: str | Path, out: str | Path, split: str = "test") -> Path:
    """Write the rows of every sequence under root/sequenceFiles/<split>/ to `out`; returns its path.

    smpl: a folder holding SMPL_MALE / SMPL_FEMALE (.pkl or .npz), for each actor's pelvis J_0.
    """
    root, out = Path(root), check_output_file(out)  # before any work: a folder or a read-only place
    files = sorted((root / "sequenceFiles" / split).glob("*.pkl"))
    if not files:
        raise CliffError(f"no 3DPW sequence files under {root / 'sequenceFiles' / split}")
    cpu = torch.device("cpu")
    bodies = {g[0]: load_smpl(str(smpl), cpu, gender=g) for g in ("male", "female")}
    rows: dict[str, list] = {k: [] for k in ("imgname", "center", "scale", "pose", "shape", "transl", "cam_int", "gender")}
    for path in files:
        seq = _sequence(path)
        name = str(seq.get("sequence", path.stem))
        cam = np.asarray(seq["cam_poses"], np.float64)
        K = np.asarray(seq["cam_intrinsics"], np.float64)
        frames = np.asarray(seq["img_frame_ids"]).astype(int)
        for p, gender in enumerate(seq["genders"]):
            valid = np.flatnonzero(np.asarray(seq["campose_valid"][p]).astype(bool))
            if not len(valid):
                continue
            g = _gender(gender)
            pose = torch.from_numpy(np.asarray(seq["poses"][p], np.float64)[valid])
            betas = np.asarray(seq["betas"][p], np.float64).reshape(-1)[:SMPL_NUM_BETAS]
            trans = np.asarray(seq["trans"][p], np.float64)[valid]
            joints = np.asarray(seq["jointPositions"][p], np.float64)[valid].reshape(-1, SMPL_NUM_JOINTS, 3)
            Rc, Tc = cam[valid, :3, :3], cam[valid, :3, 3]

            body = bodies[g]
            with torch.no_grad():
                rest = body(torch.eye(3).expand(1, SMPL_NUM_JOINTS, 3, 3), torch.from_numpy(betas).float()[None], None)
            j0 = rest.joints[0, 0].double().numpy()
            root_rot = torch.from_numpy(Rc) @ axis_angle_to_rotmat(pose[:, :3])
            pose[:, :3] = rotmat_to_axis_angle(root_rot)
            transl = np.einsum("nij,nj->ni", Rc, j0 + trans) + Tc - j0

            cam_joints = np.einsum("nij,nkj->nki", Rc, joints) + Tc[:, None]
            uv = cam_joints[..., :2] / cam_joints[..., 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
            center, scale = keypoint_box(torch.from_numpy(uv))
            if not all(np.isfinite(v).all() for v in (center.numpy(), scale.numpy(), pose.numpy(), betas, transl)):
                raise CliffError(f"{path}: actor {p}: NaN or infinite values in its frames with a valid camera pose")

            rows["imgname"] += [f"imageFiles/{name}/image_{frames[i]:05d}.jpg" for i in valid]
            rows["center"].append(center.numpy())
            rows["scale"].append(scale.numpy())
            rows["pose"].append(pose.numpy())
            rows["shape"].append(np.repeat(betas[None], len(valid), 0))
            rows["transl"].append(transl)
            rows["cam_int"].append(np.repeat(K[None], len(valid), 0))
            rows["gender"] += [g] * len(valid)
    if not rows["imgname"]:
        raise CliffError(f"no frame with a valid camera pose in {len(files)} 3DPW sequence files")
    arrays = {k: np.concatenate(v).astype(np.float32) for k, v in rows.items() if k not in ("imgname", "gender")}
    n = len(rows["imgname"])
    arrays.update(imgname=np.asarray(rows["imgname"]), gender=np.asarray(rows["gender"]), has_smpl=np.ones(n, np.float32))
    write_npz_atomic(out, arrays)
    return out


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="cliffhmr convert", description="official dataset downloads -> SPIN/CLIFF npz")
    p.add_argument("dataset", choices=["3dpw"])
    p.add_argument("--root", required=True, help="the dataset folder (3DPW: holds sequenceFiles/ and imageFiles/)")
    p.add_argument("--smpl", required=True, help="folder with SMPL_MALE and SMPL_FEMALE model files")
    p.add_argument("--out", required=True, help="npz file to write, e.g. ROOT/3dpw_test.npz")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    args = p.parse_args(argv)
    path = convert_3dpw(args.root, args.smpl, args.out, args.split)
    print(f"wrote {path}", file=sys.stderr)
    return 0
