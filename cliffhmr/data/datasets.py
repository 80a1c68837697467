"""Training and evaluation data in the SPIN/CLIFF npz format, augmentation, and a synthetic generator.

One npz file describes N person instances (one row each):

    imgname   (N,)        image path relative to the dataset root                        required
    center    (N, 2)      box centre in image pixels                                     required
    scale     (N,)        box size / 200 (b = 200 * scale pixels)                        required
    part      (N, 24, 3)  2D keypoints in full-image pixels + confidence, J24 order      optional
    S         (N, 24, 4)  3D joints in the camera frame (metres) + confidence, J24       optional
    pose      (N, 72)     SMPL axis-angle pose, global orientation in the camera frame   optional
    shape     (N, 10)     SMPL betas                                                     optional
    has_smpl  (N,)        1 where pose/shape are valid (default: 1 if `pose` is present) optional
    focal_l   (N,)        focal length in pixels                                         optional
    cam_int   (N, 3, 3)   full intrinsics (focal and principal point)                    optional
    transl    (N, 3)      SMPL translation in the camera frame                           optional
    gender    (N,)        'm' / 'f' / 'n'                                                optional

Without `focal_l` / `cam_int`, the camera is CLIFF's default: f = sqrt(W^2 + H^2), principal
point at the image centre. J24 is SPIN's superset of ground-truth joints (`J24_NAMES`).

Augmentation moves the *camera*, never just the crop, so that everything stays a valid
full-perspective observation: a horizontal flip mirrors the whole image (and the camera x
axis), a rotation rolls the camera about its optical axis (the image turns about the principal
point), and the box is jittered in size and position. Full-image keypoints, 3D joints, SMPL
pose, box centre/size and hence bbox_info all follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..body.smpl import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from ..errors import CliffError
from ..geometry.rotation import axis_angle_to_rotmat
from ..image import load_image
from ..npzio import read_npz
from ..perception import crop

# --------------------------------------------------------------------------- joint sets

J24_NAMES = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
]  # fmt: skip
J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
SMPL_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
J24_TO_J14 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18]
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
J24_HIPS = (2, 3)  # right, left: their midpoint is the pelvis for alignment

# J24 joints taken straight from SMPL's kinematic joints (same choice as SPIN).
_J24_FROM_SMPL = {0: 8, 1: 5, 4: 4, 5: 7, 6: 21, 7: 19, 8: 17, 9: 16, 10: 18, 11: 20}
_J24_FROM_COCO = {19: 0, 20: 1, 21: 2, 22: 3, 23: 4}  # face points from the body model's COCO-17
# SPIN's J_regressor_extra (9, 6890) rows, in J24 order.
J24_EXTRA_ROWS = [2, 3, 12, 13, 14, 15, 16, 17, 18]


def body_to_j24(joints: torch.Tensor, keypoints: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """SPIN's 24 ground-truth joints from a posed SMPL body.

    joints: (B, 24, 3) SMPL joints; keypoints: (B, 17, 3) COCO-17 of the same body;
    extra: (B, 9, 3) joints from SPIN's `J_regressor_extra.npy` (hips, neck, head top, pelvis,
    thorax, spine, jaw, head), or None for approximations from the SMPL skeleton, which are
    consistent between prediction and synthetic ground truth but not with real datasets' labels.
    Returns (B, 24, 3).
    """
    out = joints.new_zeros(joints.shape[0], 24, 3)
    for j, s in _J24_FROM_SMPL.items():
        out[:, j] = joints[:, s]
    for j, k in _J24_FROM_COCO.items():
        out[:, j] = keypoints[:, k]
    if extra is not None:
        out[:, J24_EXTRA_ROWS] = extra
        return out
    neck, head = joints[:, 12], joints[:, 15]
    out[:, 2], out[:, 3] = joints[:, 2], joints[:, 1]
    out[:, 12] = neck
    out[:, 13] = head + (head - neck)  # crown: as far above the head joint as the neck is below
    out[:, 14] = joints[:, 0]
    out[:, 15] = (joints[:, 16] + joints[:, 17] + 2 * neck) / 4  # between the collars and the neck
    out[:, 16] = joints[:, 6]
    out[:, 17] = (neck + head) / 2
    out[:, 18] = head
    return out


# --------------------------------------------------------------------------- npz files

_REQUIRED = ("imgname", "center", "scale")
# key -> trailing shape of one row
_SHAPES = {
    "center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (3 * SMPL_NUM_JOINTS,), "shape": (SMPL_NUM_BETAS,),
    "has_smpl": (), "focal_l": (), "cam_int": (3, 3), "transl": (3,),
}  # fmt: skip


@dataclass
class Annotations:
    """The validated arrays of one npz file (float arrays as float32, rows aligned)."""

    path: Path
    imgname: np.ndarray  # (N,) str
    center: np.ndarray  # (N, 2)
    scale: np.ndarray  # (N,)
    part: np.ndarray  # (N, 24, 3), confidence 0 where the file has none
    S: np.ndarray | None  # (N, 24, 4)
    pose: np.ndarray  # (N, 72), zeros where has_smpl is 0
    shape: np.ndarray  # (N, 10)
    has_smpl: np.ndarray  # (N,) bool
    focal: np.ndarray | None  # (N,) pixels
    principal: np.ndarray | None  # (N, 2)
    transl: np.ndarray | None  # (N, 3)
    gender: np.ndarray | None  # (N,) str

    def __len__(self) -> int:
        return len(self.imgname)


def load_annotations(path: str | Path) -> Annotations:
    """Read and check one npz file; every problem names the file (and the row, where there is one)."""
    path = Path(path)
    raw = read_npz(path, "dataset file")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CliffError(f"{path}: missing key(s) {', '.join(missing)} (required: {', '.join(_REQUIRED)})")
    if not any(k in raw for k in ("part", "S", "pose")):
        raise CliffError(f"{path}: no supervision: needs at least one of 'part', 'S', 'pose'")
    n = len(raw["imgname"])
    for key, arr in raw.items():
        if arr.ndim == 0:
            raise CliffError(f"{path}: '{key}' must hold one row per sample, got a single value")
        if len(arr) != n:
            raise CliffError(f"{path}: '{key}' has {len(arr)} rows but 'imgname' has {n}")
        if key in _SHAPES and arr.shape[1:] != _SHAPES[key]:
            raise CliffError(f"{path}: '{key}' must have shape (N, {', '.join(map(str, _SHAPES[key]))}), got {arr.shape}")
    if ("pose" in raw) != ("shape" in raw):
        raise CliffError(f"{path}: 'pose' and 'shape' come together; found only {'pose' if 'pose' in raw else 'shape'}")

    f32 = {}
    for key in _SHAPES:
        if key not in raw:
            continue
        try:
            arr = raw[key].astype(np.float32)
        except (TypeError, ValueError):
            raise CliffError(f"{path}: '{key}' is not numeric ({raw[key].dtype})") from None
        bad = ~np.isfinite(arr.reshape(n, -1)).all(1)
        if bad.any():
            raise CliffError(f"{path}: index {int(np.argmax(bad))}: NaN or infinite value in '{key}' ({int(bad.sum())} rows)")
        f32[key] = arr
    _check_positive(path, f32["scale"], "scale")
    if "focal_l" in f32:
        _check_positive(path, f32["focal_l"], "focal_l")
    focal = f32.get("focal_l")
    principal = None
    if "cam_int" in f32:
        K = f32["cam_int"]
        _check_positive(path, K[:, 0, 0] * K[:, 1, 1], "cam_int focal")
        focal = np.sqrt(K[:, 0, 0] * K[:, 1, 1]) if focal is None else focal
        principal = K[:, :2, 2].copy()

    has_smpl = np.zeros(n, bool)
    if "pose" in f32:
        has_smpl = f32["has_smpl"] > 0.5 if "has_smpl" in f32 else np.ones(n, bool)
    part = f32.get("part", np.zeros((n, 24, 3), np.float32))
    return Annotations(
        path=path,
        imgname=raw["imgname"].astype(str),
        center=f32["center"],
        scale=f32["scale"],
        part=part,
        S=f32.get("S"),
        pose=np.where(has_smpl[:, None], f32.get("pose", np.zeros((n, 3 * SMPL_NUM_JOINTS), np.float32)), 0).astype(np.float32),
        shape=np.where(has_smpl[:, None], f32.get("shape", np.zeros((n, SMPL_NUM_BETAS), np.float32)), 0).astype(np.float32),
        has_smpl=has_smpl,
        focal=focal,
        principal=principal,
        transl=f32.get("transl"),
        gender=raw["gender"].astype(str) if "gender" in raw else None,
    )


def _check_positive(path: Path, values: np.ndarray, key: str) -> None:
    bad = values <= 0
    if bad.any():
        raise CliffError(f"{path}: index {int(np.argmax(bad))}: '{key}' must be positive, got {values[np.argmax(bad)]:g}")


# --------------------------------------------------------------------------- augmentation


@dataclass
class AugmentConfig:
    """Defaults follow SPIN (noise 0.4, rotation 30 deg, scale 0.25); translation and occlusion are ours."""

    flip_prob: float = 0.5
    rot_factor: float = 30.0  # degrees; N(0, f) clipped to +-2f ...
    rot_prob: float = 0.4  # ... applied to this fraction of samples
    scale_factor: float = 0.25  # box size x clip(N(1, f), 1 - f, 1 + f)
    trans_factor: float = 0.1  # box centre moved by U(-f, f) x box size, per axis
    noise_factor: float = 0.4  # each colour channel x U(1 - f, 1 + f)
    occlusion_prob: float = 0.3  # one random rectangle over the crop


@dataclass
class Augment:
    """One draw of augmentation parameters."""

    flip: bool = False
    roll: float = 0.0  # radians, camera roll about the optical axis
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box size
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    occluder: tuple[float, float, float, float] | None = None  # x, y, w, h as fractions of the crop

    @classmethod
    def sample(cls, cfg: AugmentConfig, rng: np.random.Generator) -> "Augment":
        # Draw every number whatever the outcome, so one sample's draws never shift another's.
        u = rng.random(3)
        rot = float(np.clip(rng.normal() * cfg.rot_factor, -2 * cfg.rot_factor, 2 * cfg.rot_factor))
        sc = float(np.clip(1 + rng.normal() * cfg.scale_factor, 1 - cfg.scale_factor, 1 + cfg.scale_factor))
        shift = rng.uniform(-cfg.trans_factor, cfg.trans_factor, 2)
        colour = rng.uniform(1 - cfg.noise_factor, 1 + cfg.noise_factor, 3)
        occ = rng.random(4)
        return cls(
            flip=bool(u[0] < cfg.flip_prob),
            roll=math.radians(rot) if u[1] < cfg.rot_prob else 0.0,
            scale=sc,
            shift=(float(shift[0]), float(shift[1])),
            colour=tuple(float(c) for c in colour),
            occluder=(occ[0], occ[1], 0.1 + 0.4 * occ[2], 0.1 + 0.4 * occ[3]) if u[2] < cfg.occlusion_prob else None,
        )


def camera_transform(aug: Augment, principal: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera motion of a flip and a roll.

    principal: (2,) pixels; width: image width. Returns (Q (3, 3) old camera frame -> new,
    A (2, 3) affine map old pixels -> new pixels, the new principal point (2,)).
    With u = f X / Z + p (square pixels), A(u) = f (Q X)_xy / Z + p' exactly, since Q keeps Z.
    """
    M = np.diag([-1.0 if aug.flip else 1.0, 1.0, 1.0])
    c, s = math.cos(aug.roll), math.sin(aug.roll)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    Q = Rz @ M
    new_p = np.array([width - 1 - principal[0], principal[1]]) if aug.flip else np.asarray(principal, np.float64)
    L = Q[:2, :2]
    A = np.concatenate((L, (new_p - L @ principal)[:, None]), axis=1)
    return Q, A, new_p


def flip_smpl_pose(rotmat: torch.Tensor) -> torch.Tensor:
    """Mirror an SMPL pose across the x = 0 plane. rotmat: (24, 3, 3) -> (24, 3, 3).

    Left and right joints swap and each rotation R becomes M R M with M = diag(-1, 1, 1)
    (in axis-angle: negate the y and z components).
    """
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=rotmat.dtype))
    return M @ rotmat[SMPL_FLIP_PERM] @ M


def augment_annotations(
    aug: Augment, Q: np.ndarray, A: np.ndarray, part: np.ndarray, S: np.ndarray | None, rotmat: torch.Tensor
) -> tuple[np.ndarray, np.ndarray | None, torch.Tensor]:
    """Apply the camera motion to the labels.

    part: (24, 3) pixels + conf; S: (24, 4) camera frame + conf or None; rotmat: (24, 3, 3).
    Returns the new (part, S, rotmat); the global orientation becomes Q R0 M.
    """
    part = part.copy()
    part[:, :2] = part[:, :2] @ A[:, :2].T + A[:, 2]
    if S is not None:
        S = S.copy()
        S[:, :3] = S[:, :3] @ Q.T
    if aug.flip:
        part = part[J24_FLIP_PERM]
        S = S[J24_FLIP_PERM] if S is not None else None
        rotmat = flip_smpl_pose(rotmat)
    if aug.roll:
        c, s = math.cos(aug.roll), math.sin(aug.roll)
        Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=rotmat.dtype)
        rotmat = rotmat.clone()
        rotmat[0] = Rz @ rotmat[0]
    return part, S, rotmat


def sample_crop(image: np.ndarray, center: np.ndarray, b: float, A: np.ndarray, height: int = crop.CROP_HEIGHT) -> torch.Tensor:
    """The network crop (`height` rows, 3:4) of the *augmented* image, sampled from the original one.

    image: (H, W, 3) uint8 original; center (2,), b: the box in augmented pixels; A: (2, 3)
    original -> augmented pixels. Returns (3, height, width) float in [0, 1], black outside the image.
    """
    h, w = image.shape[:2]
    src = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)[None]
    q = crop.crop_pixels(height)[None]
    q = crop.crop_to_image(q, torch.as_tensor(center, dtype=torch.float64)[None], torch.tensor([b / 200.0], dtype=torch.float64))[0]
    L, t = torch.from_numpy(A[:, :2]), torch.from_numpy(A[:, 2])
    x = (q - t) @ torch.linalg.inv(L).T  # augmented -> original pixels
    # Shrink by an integer factor first when the crop is much smaller than the box (no aliasing).
    factor = int(b / height // 2)
    if factor >= 2:
        src = F.avg_pool2d(src, factor, stride=factor, ceil_mode=True)
        x = (x - (factor - 1) / 2) / factor
        h, w = src.shape[-2:]
    grid = torch.stack((x[:, 0] / max(w - 1, 1), x[:, 1] / max(h - 1, 1)), -1) * 2 - 1
    grid = grid.reshape(1, height, crop.crop_width(height), 2).float()
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def colour_and_occlude(img: torch.Tensor, aug: Augment, rng: np.random.Generator) -> torch.Tensor:
    """Per-channel gain, then one occluding rectangle of uniform random colour. img: (3, H, W) in [0, 1]."""
    img = (img * torch.tensor(aug.colour, dtype=img.dtype)[:, None, None]).clamp_(0.0, 1.0)
    if aug.occluder is not None:
        _, h, w = img.shape
        x, y, ow, oh = aug.occluder
        x0, y0 = int(x * w), int(y * h)
        x1, y1 = min(w, x0 + max(1, int(ow * w))), min(h, y0 + max(1, int(oh * h)))
        img[:, y0:y1, x0:x1] = torch.from_numpy(rng.random(3).astype(np.float32))[:, None, None]
    return img


# --------------------------------------------------------------------------- datasets


@dataclass
class DatasetSpec:
    """One npz file, the folder its `imgname` entries are relative to, and its share of a batch."""

    npz: str
    root: str
    ratio: float = 1.0
    name: str = ""


class NpzDataset(Dataset):
    """One annotation file. `dataset[(index, seed)]` -> a training/evaluation sample.

    augment: None for evaluation (no randomness; `seed` is ignored).
    crop_height: the network's input height (256 for the official models; width = 3/4 of it).
    A sample is a dict of tensors:
        img (3, crop_height, width) ImageNet-normalised crop; center (2,), b (), focal (), principal (2,);
        keypoints (24, 3) full-image pixels + conf; joints3d (24, 4); has_joints3d ();
        rotmat (24, 3, 3) SMPL pose; betas (10,); has_smpl (); index (); flip (); roll ().
    """

    def __init__(
        self,
        spec: DatasetSpec,
        augment: AugmentConfig | None = None,
        check_images: bool = True,
        crop_height: int = crop.CROP_HEIGHT,
    ) -> None:
        crop.crop_width(crop_height)  # validates
        self.spec = spec
        self.crop_height = crop_height
        self.ann = load_annotations(spec.npz)
        self.root = Path(spec.root)
        self.augment = augment
        self.center, self.scale = self.ann.center, self.ann.scale
        if check_images:
            for i, name in enumerate(self.ann.imgname):
                if not (self.root / name).is_file():
                    raise CliffError(f"{self.ann.path}: index {i}: image not found: {self.root / name}")

    def __len__(self) -> int:
        return len(self.ann)

    def set_boxes(self, center: np.ndarray, scale: np.ndarray) -> None:
        """Crop around other boxes than the file's: center (N, 2), scale (N,) (evaluation protocols)."""
        self.center, self.scale = center, scale

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        ann = self.ann
        path = self.root / ann.imgname[index]
        try:
            image = load_image(path).pixels
        except CliffError as e:
            raise CliffError(f"{ann.path}: index {index}: {e}") from None
        h, w = image.shape[:2]
        focal = float(ann.focal[index]) if ann.focal is not None else math.hypot(w, h)
        principal = ann.principal[index].astype(np.float64) if ann.principal is not None else np.array([w / 2.0, h / 2.0])

        rng = np.random.default_rng([seed, index])
        aug = Augment.sample(self.augment, rng) if self.augment is not None else Augment()
        Q, A, principal = camera_transform(aug, principal, w)
        b = 200.0 * float(self.scale[index])
        center = A[:, :2] @ self.center[index].astype(np.float64) + A[:, 2] + np.asarray(aug.shift) * b
        b *= aug.scale

        rotmat = axis_angle_to_rotmat(torch.from_numpy(ann.pose[index]).reshape(SMPL_NUM_JOINTS, 3).double())
        S = ann.S[index] if ann.S is not None else None
        part, S, rotmat = augment_annotations(aug, Q, A, ann.part[index].astype(np.float64), S, rotmat)

        img = sample_crop(image, center, b, A, self.crop_height)
        if self.augment is not None:
            img = colour_and_occlude(img, aug, rng)
        return {
            "img": crop.normalize(img),
            "center": torch.tensor(center, dtype=torch.float32),
            "b": torch.tensor(b, dtype=torch.float32),
            "focal": torch.tensor(focal, dtype=torch.float32),
            "principal": torch.tensor(principal, dtype=torch.float32),
            "keypoints": torch.tensor(part, dtype=torch.float32),
            "joints3d": torch.tensor(S if S is not None else np.zeros((24, 4)), dtype=torch.float32),
            "has_joints3d": torch.tensor(float(S is not None)),
            "rotmat": rotmat.float(),
            "betas": torch.from_numpy(ann.shape[index].copy()),
            "has_smpl": torch.tensor(float(ann.has_smpl[index])),
            "index": torch.tensor(index),
            "flip": torch.tensor(aug.flip),
            "roll": torch.tensor(aug.roll, dtype=torch.float32),
        }


class MixedDataset(Dataset):
    """Several `NpzDataset`s behind one index space: key (dataset, index, seed)."""

    def __init__(self, datasets: list[NpzDataset]) -> None:
        if not datasets:
            raise CliffError("no training datasets configured")
        self.datasets = datasets

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        d, index, seed = key
        sample = self.datasets[d][(index, seed)]
        sample["dataset"] = torch.tensor(d)
        return sample


class MixSampler(Sampler):
    """An endless, random-access stream of (dataset, index, seed) keys for one DDP rank.

    Global sample k of the stream picks its dataset with probability proportional to the
    ratios and a uniform index within it, from a generator seeded by (seed, k // chunk):
    the stream depends only on the seed, so resuming at sample k reproduces it exactly for
    any number of workers. Rank r of W takes samples r, r + W, r + 2W, ... starting at `start`.
    """

    chunk = 4096

    def __init__(self, sizes: list[int], ratios: list[float], seed: int, rank: int = 0, world: int = 1, start: int = 0):
        if len(sizes) != len(ratios) or not sizes:
            raise CliffError("need one ratio per dataset")
        r = np.asarray(ratios, np.float64)
        if (r < 0).any() or r.sum() <= 0:
            raise CliffError(f"dataset ratios must be >= 0 with a positive sum, got {list(ratios)}")
        self.sizes, self.p = list(sizes), r / r.sum()
        self.seed, self.rank, self.world, self.start = seed, rank, world, start

    def _block(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, c])
        d = rng.choice(len(self.sizes), size=self.chunk, p=self.p)
        idx = (rng.random(self.chunk) * np.asarray(self.sizes)[d]).astype(np.int64)
        return d, idx

    def __iter__(self):
        k = self.start + self.rank
        c, block = -1, None
        while True:
            if k // self.chunk != c:
                c = k // self.chunk
                block = self._block(c)
            d, idx = block
            yield int(d[k % self.chunk]), int(idx[k % self.chunk]), self.seed * 1_000_003 + k
            k += self.world


# --------------------------------------------------------------------------- synthetic data

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
    from ..atomic import write_npz_atomic

    flip = np.array([-1.0, 1.0, 1.0])
    joints = np.zeros((24, 3))
    for j, p in _TOY_JOINTS_LEFT.items():
        joints[j] = p
        joints[_mirror_joint(j)] = np.asarray(p) * flip
    boxes = {}
    for j, (end, hw, hd) in _TOY_BONES.items():
        stop = joints[end] if isinstance(end, int) else joints[j] + np.array(end[1:])
        boxes[j] = _box(joints[j], stop, hw, hd)
        boxes[_mirror_joint(j)] = boxes[j] * flip  # right side: the mirror image, corner for corner
    v = np.concatenate([boxes[j] for j in range(24)])
    faces = [_BOX_FACES + 8 * j for j in range(24)]
    n = len(v)
    rng = np.random.default_rng(seed)
    shapedirs = np.zeros((n, 3, 10))
    shapedirs[:, :, 0] = v * 0.06  # taller / shorter
    shapedirs[:, 0, 1] = v[:, 0] * 0.08  # broader / narrower
    per_joint = rng.normal(0, 0.012, (24, 3, 8))
    for j in range(24):
        m = _mirror_joint(j)
        if m > j:
            per_joint[m] = per_joint[j] * np.array([-1.0, 1.0, 1.0])[:, None]
        elif m == j:
            per_joint[j, 0] = 0.0
    owner = np.repeat(np.arange(24), 8)
    shapedirs[:, :, 2:] = per_joint[owner]
    J_regressor = np.zeros((24, n))
    for j in range(24):
        J_regressor[j, 8 * j : 8 * j + 4] = 0.25
    W = np.zeros((n, 24))
    W[np.arange(n), owner] = 1.0
    kintree = np.array([[4294967295 if p < 0 else p for p in _TOY_PARENTS], list(range(24))], dtype=np.int64)
    path = Path(path)
    write_npz_atomic(path, dict(
        v_template=v, shapedirs=shapedirs, posedirs=np.zeros((n, 3, 207)), J_regressor=J_regressor,
        weights=W, kintree_table=kintree, f=np.concatenate(faces).astype(np.int64),
    ))  # fmt: skip
    return path


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
    from ..render import rasterize

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
    from ..atomic import write_npz_atomic

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
    from PIL import Image

    from ..atomic import write_npz_atomic
    from ..body import FACE_CAMERA
    from ..geometry.camera import perspective_project, ray_rotation
    from ..geometry.rotation import rotmat_to_axis_angle
    from ..synthetic.scenes import sample_rotmats
    from ..body import load_smpl

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
