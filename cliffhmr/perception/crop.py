"""Person boxes -> CLIFF's 256 x 192 network crops: the one crop sampler, for inference, evaluation
and (through an affine map, see `crop_images`) augmented training samples.

A crop is described as in SPIN/CLIFF by its centre and `scale`, where b = 200 * scale is the
crop's height in image pixels; its width is b * 192 / 256. Crops and images share the package's
continuous pixel coordinates (`geometry.camera`): a crop covers [0, W_crop] x [0, H_crop], its
pixel (j, i) centred at (j + 0.5, i + 0.5), and crop point p sits at image point
    center + (p - (W_crop / 2, H_crop / 2)) * b / H_crop.
A network may take smaller crops of the same region (`height` < 256, same 3:4 aspect): their
pixels tile the 256 x 192 crop's area, so the geometry above is unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CliffError
from ..geometry.boxes import box_around

CROP_HEIGHT = 256
CROP_WIDTH = 192
MAX_CROP_HEIGHT = 1024  # 4x the official crop
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE_INFERENCE = 1.1  # margin around the box at inference
RESCALE_EVALUATION = 1.2  # the evaluation convention (3DPW, H36M)


def box_to_center_scale(
    boxes: torch.Tensor, rescale: float = RESCALE_INFERENCE, aspect: float = CROP_WIDTH / CROP_HEIGHT
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (N, 4) as x1, y1, x2, y2 -> centre (N, 2) and scale (N,).

    The box is grown to the crop's aspect ratio (width / height = `aspect`) around its centre,
    then by `rescale`; scale = that height / 200.
    """
    x1, y1, x2, y2 = boxes[:, :4].unbind(-1)
    center = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2), dim=-1)
    height = torch.maximum((x2 - x1) / aspect, y2 - y1)
    return center, height / 200.0 * rescale


def keypoint_box(
    points: torch.Tensor, seen: torch.Tensor | None = None, rescale: float = RESCALE_EVALUATION
) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation protocol's crop: tight around the seen points (B, K, 2) pixels ((B, K) bool,
    None: all), grown to the crop's aspect and by `rescale` -> centre (B, 2), scale (B,)."""
    return box_to_center_scale(box_around(points, seen), rescale=rescale)


def crop_to_image(points: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Points in 256 x 192 crop pixel coordinates (B, N, 2) -> image pixel coordinates (B, N, 2)."""
    b = 200.0 * scale
    offset = torch.tensor([CROP_WIDTH / 2, CROP_HEIGHT / 2], dtype=points.dtype, device=points.device)
    return center[:, None, :] + (points - offset) * (b / CROP_HEIGHT)[:, None, None]


def image_to_crop(points: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Image pixel coordinates (B, N, 2) -> crop pixel coordinates (B, N, 2); inverse of `crop_to_image`."""
    b = 200.0 * scale
    offset = torch.tensor([CROP_WIDTH / 2, CROP_HEIGHT / 2], dtype=points.dtype, device=points.device)
    return (points - center[:, None, :]) * (CROP_HEIGHT / b)[:, None, None] + offset


def valid_crop_height(height: object) -> bool:
    """A multiple of 4 up to MAX_CROP_HEIGHT (a config or checkpoint could otherwise ask for
    crops, and network activations, of terabytes)."""
    return type(height) is int and 4 <= height <= MAX_CROP_HEIGHT and height % 4 == 0


def crop_width(height: int) -> int:
    """The width of a crop `height` pixels high at CLIFF's 3:4 aspect."""
    if not valid_crop_height(height):
        raise CliffError(f"crop height must be a multiple of 4 from 4 to {MAX_CROP_HEIGHT}, got {height!r}")
    return height * CROP_WIDTH // CROP_HEIGHT


def crop_pixels(height: int = CROP_HEIGHT) -> torch.Tensor:
    """(height * width, 2) float64 centres (x, y) of a `height`-row crop's pixels, row-major, in
    256 x 192 crop pixel coordinates (for `crop_to_image`)."""
    step = CROP_HEIGHT / height
    xs = (torch.arange(crop_width(height), dtype=torch.float64) + 0.5) * step
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) * step
    jj, ii = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack((jj, ii), -1).reshape(-1, 2)


def crop_images(
    image: np.ndarray, center: torch.Tensor, scale: torch.Tensor, height: int = CROP_HEIGHT, to_image: np.ndarray | None = None
) -> torch.Tensor:
    """Bilinear crops of an RGB uint8 image (H, W, 3) -> float tensor (N, 3, height, width) in [0, 1].

    center (N, 2), scale (N,): the crops, in the image's pixels or, with `to_image`, in another
    view of it: to_image (2, 3) maps that view's pixels to the image's, x -> L x + t (training
    crops a flipped and rolled view without making it). See `crop_tensor`.
    """
    return crop_tensor(image_tensor(image), center, scale, height, to_image)


def image_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1] on `device` (moved as uint8: a
    quarter of the bytes)."""
    pixels = torch.from_numpy(np.require(image, requirements=("C", "W"))).to(device, non_blocking=True)
    return pixels.permute(2, 0, 1)[None].float().div_(255.0)


def crop_tensor(
    src: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, height: int = CROP_HEIGHT, to_image: np.ndarray | None = None
) -> torch.Tensor:
    """Every person's crop of one image src (1, 3, H, W) in [0, 1] -> (N, 3, height, width) on its device.

    All crops are read in one sampling call per anti-aliasing level: when a crop shrinks the image
    by more than 2x, the image is first box-filtered to that resolution so thin structures don't
    alias, and people of the same level share the filtered image. Outside the image the crop is
    black, as in the reference implementation's padding (not clamped to the border).
    """
    n, width, dev = len(center), crop_width(height), src.device
    if n == 0:
        return torch.zeros(0, 3, height, width, device=dev)
    center = torch.as_tensor(center, dtype=torch.float64, device=dev)
    scale = torch.as_tensor(scale, dtype=torch.float64, device=dev)
    points = crop_to_image(crop_pixels(height).to(dev)[None], center, scale)  # (N, P, 2), image pixels
    if to_image is not None:
        L, t = torch.as_tensor(to_image, dtype=torch.float64, device=dev).split([2, 1], dim=1)
        points = points @ L.T + t[:, 0]
    shrink = torch.div(200.0 * scale / height, 2, rounding_mode="floor").long()
    out = torch.empty(n, 3, height, width, device=dev)
    for level in shrink.unique().tolist():
        people = (shrink == level).nonzero().squeeze(1)
        out[people] = _sample(src, points[people], level, height)
    return out


def _sample(img: torch.Tensor, points: torch.Tensor, shrink: int, height: int) -> torch.Tensor:
    """img (1, 3, H, W) read at points (N, height * width, 2), image pixel coordinates, row-major
    -> (N, 3, height, width). shrink: box-filter the image by this integer factor first (>= 2)."""
    if shrink >= 2:
        img = F.avg_pool2d(img, shrink, stride=shrink, ceil_mode=True)
        points = points / shrink  # pooled pixel i covers [shrink * i, shrink * (i + 1)) of the image
    h, w = img.shape[-2:]
    n, width = len(points), crop_width(height)
    # align_corners=False: -1 and +1 are the image's outer edges, 0 and W in pixel coordinates.
    # The N crops are stacked as one tall grid, so one call reads them all from the one image.
    grid = torch.stack((points[..., 0] / w, points[..., 1] / h), -1) * 2 - 1
    grid = grid.reshape(1, n * height, width, 2).float()
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(3, n, height, width).transpose(0, 1)


def normalize(crops: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of (N, 3, H, W) RGB in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=crops.dtype, device=crops.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=crops.dtype, device=crops.device)[:, None, None]
    return (crops - mean) / std


def validate_boxes(boxes: np.ndarray, width: int, height: int, source: str = "boxes") -> np.ndarray:
    """Check user boxes (N, 4 or 5) against an image; return them as float32 (N, 5) with score 1 where absent.

    Boxes may reach outside the image (truncated people) but must overlap it, have positive size
    and stay within twice the image's size of its edges (1e30 is a mistake, not a person).
    """
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise CliffError(f"{source}: boxes must be numbers, [x1, y1, x2, y2] or [x1, y1, x2, y2, score] each") from None
    if arr.size == 0:
        return np.zeros((0, 5), np.float32)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise CliffError(f"{source}: boxes must be a list of [x1, y1, x2, y2] or [x1, y1, x2, y2, score], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CliffError(f"{source}: boxes contain NaN or infinite values")
    if arr.shape[1] == 4:
        arr = np.concatenate((arr, np.ones((len(arr), 1))), axis=1)
    for i, (x1, y1, x2, y2, _) in enumerate(arr):
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise CliffError(f"{source}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is empty (need x2 > x1 and y2 > y1)")
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise CliffError(f"{source}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {width}x{height} image")
        if x1 < -2 * width or y1 < -2 * height or x2 > 3 * width or y2 > 3 * height:
            raise CliffError(f"{source}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] reaches more than twice the "
                             f"{width}x{height} image's size beyond its edges")  # fmt: skip
    return arr.astype(np.float32)
