"""`cliffhmr eval`: MPJPE / PA-MPJPE / PVE on 3DPW, Human3.6M (protocol 2), AGORA or synthetic data.

Protocol (as the paper reports its numbers; see docs/training.md):
- Joints: the 14 LSP joints regressed from the mesh with the H36M joint regressor
  (`--joint-regressor J_regressor_h36m.npy`), for the prediction and for ground-truth meshes;
  ground truth given as 3D joints (`S`, J24 order) uses its LSP-14 subset directly.
- Alignment: everything is relative to the pelvis (the regressor's root joint; the hips'
  midpoint for `S`). PA-MPJPE further aligns by a similarity transform (Umeyama).
- PVE: vertex error of the pelvis-aligned meshes. All in millimetres.
- Boxes: from the ground-truth keypoints projected into the image when the file has the
  ground-truth body in camera coordinates (pose, shape, transl, cam_int), else from its 2D keypoints
  (`part`), else the file's own boxes; grown to the crop's 3:4 aspect and by 1.2.
- Camera: focal length and principal point from the file's intrinsics (`cam_int` / `focal_l`),
  else f = image diagonal at the centre.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..arguments import ArgumentParser
from ..atomic import all_or_none, check_output_dir, write_bytes_atomic, write_text_atomic
from ..body import load_joint_regressor, load_smpl
from ..body.smpl import SMPL_NUM_JOINTS
from ..data.datasets import DatasetSpec, NpzDataset
from ..data.joints import H36M_TO_J14, J24_HIPS, J24_TO_J14, body_to_j24
from ..device import resolve_device
from ..errors import CliffError
from ..inference.export import save_json
from ..geometry.camera import bbox_info, perspective_project
from ..geometry.rotation import axis_angle_to_rotmat, geodesic_angle
from ..perception.crop import RESCALE_EVALUATION, keypoint_box
from .metrics import mpjpe, pa_mpjpe

DATASETS = {  # name -> default annotation file inside --root
    "3dpw": "3dpw_test.npz",
    "h36m-p2": "h36m_valid_protocol2.npz",
    "agora": "agora_validation.npz",
    "synthetic": "test.npz",
}
OFF_CENTER_BINS = (0.0, 10.0, 20.0, 30.0, 180.0)  # degrees between the optical axis and the box centre's ray
LSP_HIPS = (2, 3)  # right/left hip in LSP-14 order

# --------------------------------------------------------------------------- protocol


@dataclass
class Skeleton:
    """How evaluation joints come out of a body mesh."""

    regressor: torch.Tensor | None  # (17, V) H36M regressor, or None for the J24 approximations
    extra: torch.Tensor | None = None  # SPIN's J_regressor_extra for the J24 path

    def __call__(self, body, posed) -> tuple[torch.Tensor, torch.Tensor]:
        """-> LSP-14 joints (B, 14, 3) and the pelvis (B, 3)."""
        if self.regressor is not None:
            j17 = body.regress(posed.vertices, self.regressor)
            return j17[:, H36M_TO_J14], j17[:, 0]
        extra = body.regress(posed.vertices, self.extra) if self.extra is not None else None
        j24 = body_to_j24(posed.joints, posed.keypoints, extra)
        return j24[:, J24_TO_J14], j24[:, list(J24_HIPS)].mean(1)


def protocol_boxes(ann, body, device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation boxes -> center (N, 2), scale (N,), and per row where it came from (N,) str."""
    n = len(ann)
    center, scale = ann.center.copy(), ann.scale.copy()
    source = np.full(n, "file", dtype=object)

    vis = ann.part[..., 2] > 0
    rows = np.flatnonzero(vis.sum(1) >= 2)
    if len(rows):
        c, s = keypoint_box(torch.from_numpy(ann.part[rows, :, :2]), torch.from_numpy(vis[rows]))
        center[rows], scale[rows], source[rows] = c.numpy(), s.numpy(), "2d keypoints"

    if ann.transl is not None and ann.principal is not None and ann.has_smpl.any():
        rows = np.flatnonzero(ann.has_smpl)
        for chunk in np.array_split(rows, max(1, math.ceil(len(rows) / 256))):
            c, s = keypoint_box(_gt_keypoints_2d(ann, chunk, body, device))
            center[chunk], scale[chunk], source[chunk] = c.numpy(), s.numpy(), "projected ground truth"
    return center.astype(np.float32), scale.astype(np.float32), source


@torch.no_grad()
def _gt_keypoints_2d(ann, rows: np.ndarray, body, device) -> torch.Tensor:
    """Ground-truth SMPL joints + COCO keypoints of `rows`, projected into their images: (n, 41, 2) pixels."""
    posed = _gt_body(ann, rows, body, device)
    pts = torch.cat((posed.joints, posed.keypoints), 1).cpu() + torch.from_numpy(ann.transl[rows])[:, None]
    return perspective_project(pts, torch.from_numpy(ann.focal[rows]), torch.from_numpy(ann.principal[rows]))


def _gt_body(ann, rows: np.ndarray, body, device):
    rotmat = axis_angle_to_rotmat(torch.from_numpy(ann.pose[rows]).reshape(-1, SMPL_NUM_JOINTS, 3)).to(device)
    return body(rotmat, _betas(torch.from_numpy(ann.shape[rows]), body).to(device), None)


def _betas(betas: torch.Tensor, body) -> torch.Tensor:
    """SMPL betas as datasets and the network give them, zero-padded to the body model's count."""
    return torch.nn.functional.pad(betas, (0, body.num_betas - betas.shape[1]))


def sequence_name(imgname: str) -> str:
    """3DPW `imageFiles/<sequence>/image_00000.jpg` -> <sequence>; H36M `images/S9_Walking_1.54138969_000001.jpg`
    -> S9_Walking_1; otherwise the file stem without a trailing frame number."""
    p = Path(imgname)
    if p.parent.name and p.parent.name not in ("images", "imageFiles", "img", "imgs"):
        return p.parent.name
    if "." in p.stem:
        return p.stem.split(".")[0]
    return re.sub(r"_\d+$", "", p.stem) or p.stem


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalSettings:
    checkpoint: str
    dataset: str
    root: str
    npz: str | None = None
    smpl: str | None = None
    joint_regressor: str | None = None
    joint_regressor_extra: str | None = None
    out: str | None = None
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise CliffError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if not self.smpl:
            raise CliffError("the CLIFF network predicts SMPL parameters: pass --smpl PATH")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise CliffError(f"batch size must be a whole number >= 1, got {self.batch_size!r}")
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise CliffError(f"workers must be a whole number >= 0, got {self.workers!r}")


def _gendered_bodies(smpl: str, device) -> dict[str, object]:
    """'n': the model the prediction drives; 'm' / 'f' too when `smpl` is a folder holding
    SMPL_MALE / SMPL_FEMALE, for gendered ground truth (3DPW)."""
    bodies = {"n": load_smpl(smpl, device)}
    if Path(smpl).is_dir():
        for g in ("male", "female"):
            try:
                bodies[g[0]] = load_smpl(smpl, device, gender=g)
            except CliffError:
                continue
    return bodies


def evaluate(s: EvalSettings) -> dict:
    """Run the protocol; returns the results dict (also written to --out as JSON + markdown)."""
    from ..models import load_network

    root = Path(s.root)
    if not root.is_dir():
        raise CliffError(f"dataset root not found: {root}")
    npz = Path(s.npz) if s.npz else root / DATASETS[s.dataset]
    device = resolve_device(s.device)
    out_dir = check_output_dir(s.out) if s.out else None  # before any work: a file in the way, read-only

    loaded = load_network(s.checkpoint, device=device)
    model = loaded.model
    mode = loaded.mode
    bodies = _gendered_bodies(s.smpl, device)
    body = bodies["n"]
    regressor = load_joint_regressor(s.joint_regressor, body, rows=17) if s.joint_regressor else None
    extra = load_joint_regressor(s.joint_regressor_extra, body, rows=9) if s.joint_regressor_extra else None
    skeleton = Skeleton(*(r.to(device) if r is not None else None for r in (regressor, extra)))

    ds = NpzDataset(DatasetSpec(str(npz), str(root)), augment=None, crop_height=model.crop_height)
    ann = ds.ann
    center, scale, box_source = protocol_boxes(ann, body, device)
    ds.set_boxes(center, scale)
    loader = DataLoader(ds, batch_size=s.batch_size, shuffle=False, num_workers=s.workers)

    per = {k: np.full(len(ds), np.nan) for k in ("mpjpe", "pa_mpjpe", "pve", "root_orient_deg")}
    off_center = np.zeros(len(ds))
    with torch.no_grad():
        for batch in loader:
            idx = batch["index"].numpy()
            batch = {k: v.to(device) for k, v in batch.items()}
            info = (
                torch.zeros(len(idx), 3, device=device)
                if mode == "hmr"
                else bbox_info(batch["center"], batch["b"], batch["focal"], batch["principal"], style=loaded.bbox_info)
            )
            out = model(batch["img"], info)
            posed = body(out.rotmat, _betas(out.betas, body), None)
            pred_j, pred_pelvis = skeleton(body, posed)
            pred_j = pred_j - pred_pelvis[:, None]
            gt_j, gt_v = _ground_truth(ann, idx, bodies, skeleton, device)
            per["mpjpe"][idx] = 1000 * mpjpe(pred_j, gt_j).cpu().numpy()
            per["pa_mpjpe"][idx] = 1000 * pa_mpjpe(pred_j, gt_j).cpu().numpy()
            if gt_v is not None:
                pred_v = posed.vertices - pred_pelvis[:, None]
                per["pve"][idx] = 1000 * mpjpe(pred_v, gt_v).cpu().numpy()
            smpl_rows = ann.has_smpl[idx]
            if smpl_rows.any():
                gt_root = axis_angle_to_rotmat(torch.from_numpy(ann.pose[idx, :3])).to(device)
                angle = torch.rad2deg(geodesic_angle(out.rotmat[:, 0], gt_root)).cpu().numpy()
                per["root_orient_deg"][idx[smpl_rows]] = angle[smpl_rows]
            offset = (batch["center"] - batch["principal"]).norm(dim=-1) / batch["focal"]
            off_center[idx] = torch.rad2deg(torch.atan(offset)).cpu().numpy()

    results = _summarise(s, npz, ann, per, off_center, box_source, mode, loaded.bbox_info, skeleton, bodies)
    if out_dir is not None:
        with all_or_none():  # the three files of one evaluation, never two of this run and one of an older
            save_json(out_dir / f"{s.dataset}_results.json", results)
            write_text_atomic(out_dir / f"{s.dataset}_results.md", results_markdown(results))
            write_bytes_atomic(out_dir / f"{s.dataset}_per_sample.npz", _per_sample_npz(ann.imgname, off_center, per))
    return results


def _per_sample_npz(imgname, off_center: np.ndarray, per: dict) -> bytes:
    """Every sample's errors (NaN where a metric does not apply), to compare runs image by image."""
    buf = io.BytesIO()
    np.savez(buf, imgname=np.asarray(imgname).astype(str), off_center_deg=off_center, **per)
    return buf.getvalue()


def _ground_truth(ann, idx: np.ndarray, bodies: dict, skeleton: Skeleton, device):
    """Pelvis-aligned ground truth: joints (B, 14, 3) and vertices (B, V, 3), or None without a mesh."""
    if ann.has_smpl[idx].all():
        genders = ann.gender[idx] if ann.gender is not None else np.full(len(idx), "n")
        joints = torch.zeros(len(idx), 14, 3, device=device)
        verts = torch.zeros(len(idx), bodies["n"].num_vertices, 3, device=device)
        for g in np.unique(genders):
            rows = np.flatnonzero(genders == g)
            body = bodies.get(str(g)[:1].lower(), bodies["n"])  # 'm' / 'f' when loaded, else neutral
            posed = _gt_body(ann, idx[rows], body, device)
            j, pelvis = skeleton(body, posed)
            joints[rows], verts[rows] = j - pelvis[:, None], posed.vertices - pelvis[:, None]
        return joints, verts
    if ann.S is None:
        raise CliffError(f"{ann.path}: index {int(idx[~ann.has_smpl[idx]][0])}: no ground truth (needs pose/shape or S)")
    S = torch.from_numpy(ann.S[idx, :, :3]).to(device)[:, J24_TO_J14]
    return S - S[:, list(LSP_HIPS)].mean(1, keepdim=True), None


def _stats(per: dict, rows: np.ndarray) -> dict:
    out = {"n": int(len(rows))}
    for k, v in per.items():
        vals = v[rows]
        vals = vals[np.isfinite(vals)]
        out[k] = float(vals.mean()) if len(vals) else None
    return out


def _summarise(s, npz, ann, per, off_center, box_source, mode, style, skeleton, bodies) -> dict:
    all_rows = np.arange(len(ann))
    seqs = np.array([sequence_name(n) for n in ann.imgname])
    by_seq = {q: _stats(per, np.flatnonzero(seqs == q)) for q in sorted(set(seqs))}
    by_off = {}
    for lo, hi in zip(OFF_CENTER_BINS[:-1], OFF_CENTER_BINS[1:]):
        rows = np.flatnonzero((off_center >= lo) & (off_center < hi))
        if len(rows):
            by_off[f"{lo:g}-{hi:g} deg" if hi < 180 else f">={lo:g} deg"] = _stats(per, rows)
    sources, counts = np.unique(box_source.astype(str), return_counts=True)
    joints = (
        "LSP-14 from the H36M regressor"
        if skeleton.regressor is not None
        else "LSP-14 from body_to_j24 (no --joint-regressor: not comparable with published numbers)"
    )
    return {
        "dataset": s.dataset,
        "annotations": str(npz),
        "checkpoint": str(s.checkpoint),
        "mode": mode,
        "bbox_info": style if mode == "cliff" else "zeros (hmr baseline)",
        "protocol": {
            "boxes": {str(k): int(c) for k, c in zip(sources, counts)},
            "rescale": RESCALE_EVALUATION,
            "focal": "cam_int" if ann.principal is not None else ("focal_l" if ann.focal is not None else "image diagonal"),
            "joints": joints,
            "ground_truth_bodies": sorted(bodies),
            "units": "mm, pelvis-aligned",
        },
        "overall": _stats(per, all_rows),
        "per_sequence": by_seq,
        "by_off_center": by_off,
    }


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def results_markdown(r: dict) -> str:
    cols = ("mpjpe", "pa_mpjpe", "pve", "root_orient_deg")
    head = "| {} | N | MPJPE | PA-MPJPE | PVE | root orient. (deg) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n"
    row = "| {} | {} | " + " | ".join("{}" for _ in cols) + " |\n"
    o = r["overall"]
    text = f"# {r['dataset']}: {r['checkpoint']}\n\nmode {r['mode']}, bbox_info {r['bbox_info']}; {r['protocol']['joints']}; mm.\n\n"
    text += head.format("dataset") + row.format(r["dataset"], o["n"], *(_fmt(o[c]) for c in cols))
    for title, key in (("sequence", "per_sequence"), ("box centre off the optical axis", "by_off_center")):
        text += "\n" + head.format(title)
        for name, st in r[key].items():
            text += row.format(name, st["n"], *(_fmt(st[c]) for c in cols))
    return text


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="cliffhmr eval", description="Evaluate a CLIFF checkpoint (see docs/training.md).")
    p.add_argument("--checkpoint", required=True, help="official CLIFF checkpoint, one of ours, or a `cliffhmr export`ed .onnx")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--root", required=True, help="dataset folder: images, and the annotation npz unless --npz")
    p.add_argument("--npz", help="annotation file (default: ROOT/" + ", ROOT/".join(f"{v} for {k}" for k, v in DATASETS.items()) + ")")
    p.add_argument("--smpl", help="SMPL model file, or a folder with neutral/male/female models (gendered ground truth)")
    p.add_argument("--joint-regressor", help="J_regressor_h36m.npy (17, 6890): the paper's evaluation joints")
    p.add_argument("--joint-regressor-extra", help="SPIN's J_regressor_extra.npy, used only without --joint-regressor")
    p.add_argument("--out", help="write <dataset>_results.json, .md and _per_sample.npz here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    r = evaluate(EvalSettings(a.checkpoint, a.dataset, a.root, a.npz, a.smpl, a.joint_regressor, a.joint_regressor_extra,
                              a.out, a.batch_size, a.workers, a.device))
    print(results_markdown(r))
    return 0
