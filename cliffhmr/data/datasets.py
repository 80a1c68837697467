"""Datasets of npz files (`npz_format`) for training and evaluation, and the sample stream that
mixes them: a sample is the network crop of one person with every label, augmented (`augment`)
or not."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..body.smpl import SMPL_NUM_JOINTS
from ..errors import CliffError
from ..geometry.rotation import axis_angle_to_rotmat
from ..perception.image import load_image
from ..perception import crop
from .augment import Augment, AugmentConfig, augment_annotations, camera_transform, colour_and_occlude
from .npz_format import load_annotations


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

        # The crop of the augmented view, read from the photo through the view's inverse map.
        to_image = np.linalg.inv(np.vstack((A, [0.0, 0.0, 1.0])))[:2]
        img = crop.crop_images(image, torch.from_numpy(center)[None], torch.tensor([b / 200.0], dtype=torch.float64), self.crop_height,
                               to_image)[0]  # fmt: skip
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
