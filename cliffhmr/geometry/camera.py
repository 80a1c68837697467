"""Full-frame camera geometry: intrinsics, CLIFF's bbox_info, crop camera -> full-image translation.

Conventions (OpenCV): x right, y down, z forward.

Pixels, everywhere in the package: continuous coordinates in which a W x H image covers
[0, W] x [0, H] and pixel (column i, row j) covers [i, i + 1) x [j, j + 1), its centre at
(i + 0.5, j + 0.5). So the image centre, CLIFF's default principal point, is (W / 2, H / 2); a box
around the whole image is [0, 0, W, H]; mirroring the image maps x to W - x. BlazePose, MoveNet
and the detectors (PIL and MediaPipe crops) give coordinates this way; the network crops
(`perception.crop`) and the renderer read and draw pixels this way (tests/test_pixel_convention.py).

A box is described by its centre (cx, cy) in image pixels and `b`, the side (height) of the
square region the crop camera normalises by, in pixels (b = 200 * scale, as in SPIN/CLIFF).
The crop's weak-perspective camera (s, tx, ty) maps a body point P to the image pixel
    center + (b * s / 2) * (P_xy + (tx, ty)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import CliffError
from .rotation import axis_angle_to_rotmat

# Constants the released CLIFF weights were trained with: bbox_info is divided by these to
# keep its entries near unit variance.
OFFICIAL_LOCATION_SCALE = 2.8
OFFICIAL_SIZE_MEAN = 0.24
OFFICIAL_SIZE_STD = 0.06
BBOX_INFO_STYLES = ("official", "plain")

# The 35 mm film frame's diagonal (36 x 24 mm), the reference of EXIF's FocalLengthIn35mmFilm.
FILM_35MM_DIAGONAL_MM = math.hypot(36.0, 24.0)
# 35 mm-equivalent focal lengths a real camera has: a 139 to a 1 degree diagonal field of view.
FOCAL_35MM_RANGE = (8.0, 2500.0)
# Focal lengths taken from a user, in pixels: from a 179.9 degree view of a 1000-pixel image to a
# 0.08 degree view of a 100-megapixel photo. Beyond, float32 arithmetic gives 0 or inf (5e-324, 1e154).
FOCAL_PIXELS_RANGE = (1.0, 1e7)


def check_focal(focal) -> float:
    """A focal length a user gives (--focal, the API's `focal`) as a float in FOCAL_PIXELS_RANGE."""
    try:
        value = shown = float(focal)  # shown as a float: --focal's "-5" and the API's -5 read alike
    except (TypeError, ValueError):
        value, shown = math.nan, repr(focal)
    lo, hi = FOCAL_PIXELS_RANGE
    if not lo <= value <= hi:  # NaN too
        raise CliffError(f"focal length must be a number of pixels between {lo:g} and {hi:g}, got {shown}")
    return value


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self):
        # Refused here, so no path (CLI, API, EXIF) can fit with a camera that makes NaN pixels.
        values = (self.fx, self.fy, self.cx, self.cy)
        try:
            numbers = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise CliffError(f"camera intrinsics must be numbers, got fx, fy, cx, cy = {values}") from None
        if not all(math.isfinite(v) for v in numbers) or not (numbers[0] > 0 and numbers[1] > 0):
            raise CliffError(f"camera intrinsics must be finite with positive focal lengths, got fx, fy, cx, cy = {values}")
        lo, hi = FOCAL_PIXELS_RANGE
        if not (lo <= numbers[0] <= hi and lo <= numbers[1] <= hi and abs(numbers[2]) <= hi and abs(numbers[3]) <= hi):
            raise CliffError(f"camera intrinsics must have focal lengths between {lo:g} and {hi:g} pixels and a principal "
                             f"point within {hi:g} pixels, got fx, fy, cx, cy = {values}")  # fmt: skip
        for name, v in zip(("fx", "fy", "cx", "cy"), numbers):
            object.__setattr__(self, name, v)  # frozen: numpy scalars and "500" become plain floats

    @classmethod
    def default(cls, width: int, height: int) -> "Intrinsics":
        """CLIFF's default: f = image diagonal in pixels (about a 53 degree diagonal field of view),
        principal point at the image centre."""
        f = math.hypot(width, height)
        return cls(f, f, width / 2.0, height / 2.0)

    @classmethod
    def from_35mm(cls, focal_35mm: float, width: int, height: int) -> "Intrinsics":
        """From EXIF's 35 mm-equivalent focal length, matching diagonal fields of view."""
        f = focal_35mm * math.hypot(width, height) / FILM_35MM_DIAGONAL_MM
        return cls(f, f, width / 2.0, height / 2.0)

    @classmethod
    def parse(cls, text: str, what: str = "intrinsics") -> "Intrinsics":
        """"fx,fy,cx,cy" in pixels (a flag's or a form field's text, named `what` in errors)."""
        try:
            fx, fy, cx, cy = (float(x) for x in text.split(","))
        except ValueError:
            raise CliffError(f"{what} takes fx,fy,cx,cy in pixels, got {text[:100]!r}") from None
        return cls(fx, fy, cx, cy)  # which refuses values no camera has (NaN, focal lengths <= 0, 1e154)

    @classmethod
    def from_focal(cls, focal: float, width: int, height: int) -> "Intrinsics":
        return cls(focal, focal, width / 2.0, height / 2.0)

    @property
    def focal(self) -> float:
        """A single focal length, for the parts of CLIFF that assume square pixels."""
        return math.sqrt(self.fx * self.fy)

    def as_tensors(self, n: int, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(focal (n, 2) as (fx, fy), principal point (n, 2))."""
        f = torch.tensor([self.fx, self.fy], dtype=dtype, device=device).expand(n, 2)
        c = torch.tensor([self.cx, self.cy], dtype=dtype, device=device).expand(n, 2)
        return f, c


def choose_intrinsics(width: int, height: int, intrinsics=None, focal=None, focal_35mm: float | None = None) -> Intrinsics:
    """The camera of a width x height picture: the given intrinsics, else the focal length in
    pixels, else the 35 mm-equivalent one (EXIF), else CLIFF's default (f = the diagonal)."""
    w, h = width, height
    if intrinsics is not None:
        if not isinstance(intrinsics, Intrinsics):
            raise CliffError(f"intrinsics must be a camera.Intrinsics(fx, fy, cx, cy), got {type(intrinsics).__name__}")
        return intrinsics
    if focal is not None:
        return Intrinsics.from_focal(check_focal(focal), w, h)
    if focal_35mm is not None:
        return Intrinsics.from_35mm(focal_35mm, w, h)
    return Intrinsics.default(w, h)


def bbox_info(
    center: torch.Tensor, b: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor, style: str = "official"
) -> torch.Tensor:
    """CLIFF's box descriptor: where the box is and how big, relative to the focal length.

    center: (B, 2) box centre in pixels; b: (B,) box size in pixels; focal: (B,) pixels;
    principal: (B, 2) principal point. Returns (B, 3).
    style "plain": [(cx - px)/f, (cy - py)/f, b/f].
    style "official": the normalisation of the released weights,
        [(cx - px)/f * 2.8, (cy - py)/f * 2.8, (b - 0.24 f) / (0.06 f)].
    """
    loc = (center - principal) / focal[:, None]
    size = b / focal
    if style == "plain":
        return torch.cat((loc, size[:, None]), dim=1)
    if style == "official":
        loc = loc * OFFICIAL_LOCATION_SCALE
        size = (size - OFFICIAL_SIZE_MEAN) / OFFICIAL_SIZE_STD
        return torch.cat((loc, size[:, None]), dim=1)
    raise ValueError(f"unknown bbox_info style {style!r} (expected one of {BBOX_INFO_STYLES})")


def cam_crop_to_full(
    cam: torch.Tensor, center: torch.Tensor, b: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor
) -> torch.Tensor:
    """Crop weak-perspective camera (s, tx, ty) -> translation of the body in the full camera frame.

    cam: (B, 3); center: (B, 2); b: (B,); focal: (B,); principal: (B, 2). Returns (B, 3).
    A body at depth tz = 2 f / (b s) appears with the crop's scale; the box's offset from the
    principal point becomes a lateral shift at that depth. Exact for points on the plane z = 0
    of the body frame (see `weak_perspective_to_image`).
    """
    s, tx, ty = cam.unbind(-1)
    bs = b * s
    tz = 2 * focal / bs
    return torch.stack(
        (tx + 2 * (center[:, 0] - principal[:, 0]) / bs, ty + 2 * (center[:, 1] - principal[:, 1]) / bs, tz), dim=-1
    )


def cam_full_to_crop(
    transl: torch.Tensor, center: torch.Tensor, b: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor
) -> torch.Tensor:
    """Inverse of `cam_crop_to_full`: (B, 3) translation -> (B, 3) crop camera (s, tx, ty)."""
    x, y, z = transl.unbind(-1)
    bs = 2 * focal / z
    s = bs / b
    return torch.stack((s, x - 2 * (center[:, 0] - principal[:, 0]) / bs, y - 2 * (center[:, 1] - principal[:, 1]) / bs), -1)


def perspective_project(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-frame points.

    points: (B, N, 3); focal: (B,) or (B, 2) as (fx, fy); principal: (B, 2). Returns (B, N, 2) pixels.
    Depth is clamped to 1 mm so points at or behind the camera stay finite.
    """
    if focal.dim() == 1:
        focal = focal[:, None].expand(-1, 2)
    z = points[..., 2:].clamp_min(1e-3)
    return points[..., :2] / z * focal[:, None, :] + principal[:, None, :]


def weak_perspective_to_image(
    points: torch.Tensor, cam: torch.Tensor, center: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """The crop's weak-perspective projection, mapped back to full-image pixels.

    points: (B, N, 3) body-frame points (rotated, not translated); cam: (B, 3) (s, tx, ty);
    center: (B, 2); b: (B,). Returns (B, N, 2).
    """
    s, t = cam[:, :1], cam[:, 1:]
    return center[:, None, :] + (b * s[:, 0])[:, None, None] / 2 * (points[..., :2] + t[:, None, :])


def ray_rotation(points_2d: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Rotation taking the optical axis (0, 0, 1) onto the viewing ray through each pixel.

    points_2d: (P, 2) pixels; focal, principal: (P, 2) -> (P, 3, 3). A crop sees its person along
    this ray; a body orientation estimated from the crop alone is relative to it (what CLIFF corrects).
    """
    xy = (points_2d - principal) / focal
    d = torch.cat((xy, torch.ones_like(xy[:, :1])), -1)
    d = d / d.norm(dim=-1, keepdim=True)
    z = torch.tensor([0.0, 0.0, 1.0]).expand_as(d)
    axis = torch.cross(z, d, dim=-1)
    angle = torch.atan2(axis.norm(dim=-1), (z * d).sum(-1))
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return axis_angle_to_rotmat(axis * angle[:, None])
