"""Reading photos the way a user expects: upright, RGB, 8-bit, with their EXIF focal length."""

from __future__ import annotations

import io
import logging
import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CliffError
from ..geometry.camera import FILM_35MM_DIAGONAL_MM, FOCAL_35MM_RANGE
from ..jsonio import read_json_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_EXIF_IFD = 0x8769
_FOCAL_35MM = 0xA405


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation applied
    path: Path | None
    focal_35mm: float | None  # EXIF FocalLengthIn35mmFilm, if present and positive

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


# PIL logs some refusals before raising (a TIFF's "More samples per pixel than can be decoded");
# with no handler configured Python prints them to stderr beside our one line. A NullHandler
# keeps them off stderr and still lets an application that configures logging see them.
logging.getLogger("PIL").addHandler(logging.NullHandler())

MAX_PIXELS = 100_000_000  # above any camera's photo; PIL only warns from 89 MP and refuses from 179 MP


class TooManyPixels(CliffError):
    """An image whose header declares more pixels than the limit: refused before decoding."""


def load_image(source: str | Path | np.ndarray, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """A path or an array -> upright 8-bit RGB.

    Arrays may be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or uint16 or float in [0, 1].
    """
    if isinstance(source, np.ndarray):
        return LoadedImage(_array_to_rgb8(source, "array"), None, None)
    if not isinstance(source, (str, os.PathLike)):
        raise CliffError(f"an image is a path or an array, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise CliffError(f"{path}: no such image file")
    pixels, focal = _decode(path, path, max_pixels)
    return LoadedImage(pixels, path, focal)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """An image file's bytes (an upload) -> upright 8-bit RGB, as `load_image` reads a file; `name`
    stands for the file in error messages. The format is read from the bytes, never from a name."""
    pixels, focal = _decode(io.BytesIO(data), name, max_pixels)
    return LoadedImage(pixels, None, focal)


def _decode(source, name, max_pixels: int) -> tuple[np.ndarray, float | None]:
    """(pixels, EXIF 35 mm focal length) of a file or file object; `name` names it in errors."""
    try:
        # PIL warns of a bomb from 89 MP (our own limit below decides) and of damage it reads
        # past (a TIFF tag beyond the file's end): a warning would be a second line on stderr.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"PIL\.")
            im = Image.open(source)
            with im:
                w, h = im.size  # from the header: refuse before decoding (a 100000 x 100000 PNG is 30 GB)
                if w * h > max_pixels:
                    raise TooManyPixels(f"{name}: {w}x{h} pixels is more than the {max_pixels / 1e6:.0f}-megapixel limit")
                im.load()
                focal = _exif_focal_35mm(im, name)
                im = ImageOps.exif_transpose(im)
                pixels = _pil_to_rgb8(im)
    except UnidentifiedImageError:
        raise CliffError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CliffError(f"{name}: not a readable image ({e})") from None
    if pixels.shape[0] < 8 or pixels.shape[1] < 8:
        raise CliffError(f"{name}: image is too small ({pixels.shape[1]}x{pixels.shape[0]})")
    return pixels, focal


def _exif_focal_35mm(im: Image.Image, path: str | Path) -> float | None:
    try:
        value = im.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_35MM)
        value = float(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not value or value <= 0:
        return None
    if not FOCAL_35MM_RANGE[0] <= value <= FOCAL_35MM_RANGE[1]:
        fov = math.degrees(2 * math.atan(FILM_35MM_DIAGONAL_MM / 2 / value))
        warnings.warn(f"{path}: EXIF 35 mm focal length {value:g} mm (a {fov:.2g} degree diagonal field of view) is implausible; ignored")
        return None
    return value


def _pil_to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im)
        arr = arr.astype(np.float64) / (65535.0 if arr.max(initial=0) > 255 else 255.0)
        return _array_to_rgb8(arr, "image")
    if im.mode == "F":
        return _array_to_rgb8(np.asarray(im, dtype=np.float64), "image")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent parts become white, as an image viewer would show them.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def _array_to_rgb8(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise CliffError(f"{what}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16) and arr.dtype.kind != "f":  # strings, objects, int64's unknown range
        raise CliffError(f"{what}: expected uint8, uint16 or float pixels, got {arr.dtype}")
    if arr.dtype == np.uint16:
        arr = arr.astype(np.float64) / 65535.0
    if arr.dtype != np.uint8:
        arr = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise CliffError(f"{what}: image contains NaN or infinite values")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255.0
        arr = (arr[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def list_images(source: str | Path) -> list[Path]:
    """A file -> [file]; a folder -> its images, sorted by name."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CliffError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    if not path.exists():
        raise CliffError(f"{path}: no such file or folder")
    return [path]


def output_stems(images: list[Path]) -> list[str]:
    """One output name per image, all different: the file's stem, or where several images share
    it (photo.jpg, photo.png) the whole name with its dot as '_' (photo_jpg, photo_png), then a
    counter if even that is taken."""
    shared = Counter(p.stem for p in images)
    stems, taken = [], set()
    for p in images:
        stem = p.stem if shared[p.stem] == 1 else p.name.replace(".", "_")
        base, k = stem, 2
        while stem in taken:
            stem, k = f"{base}_{k}", k + 1
        taken.add(stem)
        stems.append(stem)
    return stems


def load_boxes_file(path: str | Path) -> dict[str, np.ndarray]:
    """BOXES.json: {"<image file name>": [[x1, y1, x2, y2, score], ...], ...}.

    Keys are matched against an image's file name, then its stem. Score is optional (default 1).
    """
    path = Path(path)
    data = read_json_file(path, "boxes file")
    if not isinstance(data, dict):
        raise CliffError(f'{path}: expected an object {{"image.jpg": [[x1, y1, x2, y2, score], ...]}}')
    return {name: box_rows(boxes, f"{path}: entry {name!r}") for name, boxes in data.items()}


def box_rows(rows, where: str) -> np.ndarray:
    """JSON [[x1, y1, x2, y2(, score)], ...] -> (N, 5) float64, score 1 where left out; `where`
    names the list in errors."""
    if not isinstance(rows, list) or not all(isinstance(b, list) and len(b) in (4, 5) for b in rows):
        raise CliffError(f"{where} must be a list of [x1, y1, x2, y2] or [x1, y1, x2, y2, score]")
    try:
        # float64: 1e39 stays a number for validate_boxes to refuse, not an overflow warning
        return np.asarray([[*b, 1.0] if len(b) == 4 else b for b in rows], dtype=np.float64).reshape(-1, 5)
    except (TypeError, ValueError):
        raise CliffError(f"{where} holds non-numeric box values") from None


def boxes_for(boxes: dict[str, np.ndarray], image_path: Path) -> np.ndarray | None:
    """The boxes listed for an image, or None when the file names none for it."""
    for key in (image_path.name, image_path.stem, str(image_path)):
        if key in boxes:
            return boxes[key]
    return None
