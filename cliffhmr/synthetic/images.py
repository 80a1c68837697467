"""A synthetic training and evaluation dataset: SMPL-format bodies rendered over random
backgrounds, anywhere in the frame, seen through varied lenses, written in the npz format of
`data.npz_format` with complete ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import write_npz_atomic
from ..body import FACE_CAMERA, load_smpl
from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..data.joints import body_to_j24
from ..errors import CliffError
from ..geometry.camera import perspective_project, ray_rotation
from ..geometry.rotation import axis_angle_to_rotmat, rotmat_to_axis_angle
from ..perception import crop
from ..inference.render import rasterize
from .scenes import sample_rotmats


@dataclass
class SyntheticConfig:
    """People rendered over random backgrounds, anywhere in the frame, seen through varied lenses."""

    train: int = 200  # images in train.npz
    test: int = 50  # images in test.npz
    width: int = 640
    height: int = 480
    hfov_deg: tuple[float, float] = (40.0, 100.0)  # horizontal field of view, uniform
    person_height: tuple[float, float] = (0.3, 0.8)  # the body's height as a fraction of the image height
    betas_std: float = 1.0
    pose_spread: float = 1.0  # scales synthetic.sample_rotmats' per-joint spread
    max_yaw_deg: float = 180.0  # heading away from the reference direction; less makes orientation easier to learn
    # Heading reference: "axis" = the camera's z axis; "ray" = the line of sight to the person, so that
    # people who face the photographer look alike in their crops wherever they stand in the frame.
    heading_from: str = "axis"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.heading_from not in ("axis", "ray"):
            raise CliffError(f"heading_from must be 'axis' or 'ray', got {self.heading_from!r}")


_PART_OF_JOINT = {  # SMPL joint -> colour slot: 0 skin, 1 top, 2 trousers, 3 shoes
    **dict.fromkeys((12, 15, 20, 21, 22, 23), 0), **dict.fromkeys((0, 3, 6, 9, 13, 14, 16, 17, 18, 19), 1),
    **dict.fromkeys((1, 2, 4, 5, 7, 8), 2), **dict.fromkeys((10, 11), 3),
}  # fmt: skip
FACE_SLOT = 4  # the front of the head, so that facing the camera differs from facing away


def _face_slots(body) -> torch.Tensor:
    """(F,) colour slot per mesh face, from the nearest rest-pose joint of its first vertex."""
    rest = body(torch.eye(3).expand(1, SMPL_NUM_JOINTS, 3, 3), torch.zeros(1, body.num_betas), None)
    v, j = rest.vertices[0], rest.joints[0]
    faces = torch.as_tensor(body.faces).long()
    nearest = torch.cdist(v[faces[:, 0]], j).argmin(1)
    slots = torch.tensor([_PART_OF_JOINT[int(k)] for k in nearest])
    tri = v[faces]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    front = (nearest == 15) & (torch.nn.functional.normalize(normal, dim=-1)[:, 2].abs() > 0.7)
    front &= tri.mean(1)[:, 2] > j[15, 2]  # the +z (facing) side of the head
    slots[front] = FACE_SLOT
    return slots


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float in [0, 1]: a smooth colour field, some rectangles, pixel noise."""
    coarse = torch.from_numpy(rng.random((1, 3, 4, 5)).astype(np.float32))
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        img[y0 : y0 + int(rng.integers(8, w // 3)), x0 : x0 + int(rng.integers(8, w // 3))] = rng.random(3)
    # Muted (0.15-0.85) so that the person's colours stand out more often than not.
    return np.clip(0.15 + 0.7 * img + rng.normal(0, 0.03, img.shape), 0, 1)


def _render_person(verts: torch.Tensor, faces: np.ndarray, slots: torch.Tensor, colours: np.ndarray, bg: np.ndarray, f: float):
    """Composite a Lambert-shaded mesh (camera frame) over bg (h, w, 3) -> uint8 image."""
    h, w = bg.shape[:2]
    _, face = rasterize(verts, faces, h, w, f, f, w / 2, h / 2)
    tri = verts[torch.as_tensor(faces).long()]
    n = torch.nn.functional.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
    view = torch.nn.functional.normalize(tri.mean(1), dim=-1)
    shade = (0.35 + 0.65 * (n * view).sum(-1).abs()).numpy()
    face_rgb = colours[slots.numpy()] * shade[:, None]
    img = bg.copy()
    hit = face >= 0
    img[hit] = face_rgb[face[hit]]
    return (img * 255 + 0.5).astype(np.uint8)


def write_upright_mean_params(path: str | Path) -> Path:
    """A regressor starting point for training without SPIN's `smpl_mean_params.npz`: the rest pose
    turned upright in the camera frame (180 degrees about x, since SMPL is y-up and the camera y-down),
    zero shape, crop camera (0.9, 0, 0)."""
    pose = np.zeros(3 * SMPL_NUM_JOINTS, np.float32)
    pose[0] = math.pi
    path = Path(path)
    write_npz_atomic(path, dict(pose=pose, shape=np.zeros(SMPL_NUM_BETAS, np.float32), cam=np.array([0.9, 0.0, 0.0], np.float32)))
    return path


def generate_synthetic(out_dir: str | Path, smpl: str | Path, cfg: SyntheticConfig) -> dict[str, Path]:
    """Render `train.npz` / `test.npz` with images under `out_dir/images/<split>/`. Returns {split: npz path}.

    Ground truth is complete: SMPL pose/shape/translation in the camera frame, J24 2D (`part`) and
    3D (`S`) from `body_to_j24` (no extra regressor), focal length and intrinsics. Boxes are
    `crop.keypoint_box` of the projected SMPL joints + COCO keypoints, the evaluation protocol's box.
    """
    out = Path(out_dir)
    body = load_smpl(str(smpl), torch.device("cpu"))
    faces = np.asarray(body.faces)
    slots = _face_slots(body)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    w, h = cfg.width, cfg.height
    paths = {}
    for split, count in (("train", cfg.train), ("test", cfg.test)):
        if count <= 0:
            continue
        rows: dict[str, list] = {k: [] for k in ("imgname", "center", "scale", "part", "S", "pose", "shape", "transl", "focal_l", "cam_int")}
        for i in range(count):
            rotmat = sample_rotmats(body, 1, gen, cfg.pose_spread)
            if cfg.max_yaw_deg < 180:
                yaw = (torch.rand(1, generator=gen) * 2 - 1) * math.radians(cfg.max_yaw_deg)
                tilt = torch.randn(2, generator=gen) * 0.12
                rotmat[:, 0] = FACE_CAMERA @ axis_angle_to_rotmat(torch.stack((tilt[0], yaw[0], tilt[1])))
            hfov = math.radians(rng.uniform(*cfg.hfov_deg))
            f = w / 2 / math.tan(hfov / 2)
            u, v = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.85) * h
            if cfg.heading_from == "ray":
                rotmat[:, 0] = ray_rotation(torch.tensor([[u, v]]), torch.tensor([[f, f]]), torch.tensor([[w / 2, h / 2]]))[0] @ rotmat[:, 0]
            betas = torch.zeros(1, body.num_betas)
            betas[:, :SMPL_NUM_BETAS] = torch.randn(1, SMPL_NUM_BETAS, generator=gen) * cfg.betas_std
            with torch.no_grad():
                posed = body(rotmat, betas, None)
            extent = float(posed.vertices[0, :, 1].max() - posed.vertices[0, :, 1].min())
            z = f * extent / (rng.uniform(*cfg.person_height) * h)
            transl = torch.tensor([(u - w / 2) / f * z, (v - h / 2) / f * z, z]) - posed.joints[0, 0]
            verts = posed.vertices[0] + transl

            colours = np.concatenate((rng.uniform(0.45, 0.95, (1, 3)) * [1.0, 0.8, 0.7], rng.random((3, 3)), [[0.15, 0.1, 0.1]]))
            image = _render_person(verts, faces, slots, colours, _background(rng, h, w), f)
            name = f"images/{split}/{i:06d}.png"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(out / name)

            focal, principal = torch.tensor([f]), torch.tensor([[w / 2, h / 2]])
            j24 = body_to_j24(posed.joints, posed.keypoints)[0] + transl
            box_points = torch.cat((posed.joints, posed.keypoints), 1) + transl
            center, scale = crop.keypoint_box(perspective_project(box_points, focal, principal))
            part = perspective_project(j24[None], focal, principal)[0]
            rows["imgname"].append(name)
            rows["center"].append(center[0].numpy())
            rows["scale"].append(float(scale[0]))
            rows["part"].append(np.concatenate((part.numpy(), np.ones((24, 1))), 1))
            rows["S"].append(np.concatenate((j24.numpy(), np.ones((24, 1))), 1))
            rows["pose"].append(rotmat_to_axis_angle(rotmat[0]).reshape(-1).numpy())
            rows["shape"].append(betas[0, :SMPL_NUM_BETAS].numpy())
            rows["transl"].append(transl.numpy())
            rows["focal_l"].append(f)
            rows["cam_int"].append(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]))
        arrays = {k: np.asarray(v, dtype=np.float32) if k != "imgname" else np.asarray(v) for k, v in rows.items()}
        arrays["has_smpl"] = np.ones(count, np.float32)
        arrays["gender"] = np.full(count, "n")
        paths[split] = out / f"{split}.npz"
        write_npz_atomic(paths[split], arrays)
    return paths
