"""Damaged image files: each is an 8-bit RGB image or one CliffError line, never another exception.

Property-style: real encodings (PNG, JPEG, BMP, GIF, TIFF, WebP) of a small photo with bytes
overwritten, cut off or header fields rewritten at random by Hypothesis; plus the classic
crafted header, a BMP declaring a negative (top-down) or absurd height.
"""

import io
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cliffhmr.errors import CliffError
from cliffhmr.perception.image import MAX_PIXELS, load_image
from conftest import assert_one_line_error, run_in_subprocess

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


ENCODED = {fmt: _encoded(fmt) for fmt in FORMATS}


def _load_or_one_line(path):
    """load_image's result, checked; or None after a one-line CliffError naming the file. No
    warning either way (the CLI would print it as a second line)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = load_image(path)
        except CliffError as e:
            message = str(e)
            assert "\n" not in message and message.startswith(str(path)), message
            image = None
    assert not caught, [str(w.message) for w in caught]
    if image is None:
        return None
    assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 3 and image.pixels.shape[2] == 3
    assert image.pixels.shape[0] * image.pixels.shape[1] <= MAX_PIXELS
    return image


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(FORMATS),
    edits=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 4095)),
)
@example(fmt="PNG", edits=[], cut=20)
@example(fmt="PNG", edits=[(11, 0)], cut=None)  # PIL: ValueError
@example(fmt="PNG", edits=[(35, 0)], cut=None)  # PIL: SyntaxError
@example(fmt="TIFF", edits=[(4, 255)], cut=None)  # PIL: "Corrupt EXIF data" warning, then an image
@example(fmt="BMP", edits=[(22, 0xFF), (23, 0xFF), (24, 0xFF), (25, 0x7F)], cut=None)  # height 2^31-1
def test_damaged_files_load_or_fail_in_one_line(tmp_path, fmt, edits, cut):
    data = bytearray(ENCODED[fmt])
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    path = tmp_path / f"damaged.{fmt.lower()}"
    path.write_bytes(bytes(data))
    _load_or_one_line(path)


@pytest.mark.parametrize("height", [-24, -(2**31), 2**31 - 1, 0])
def test_bmp_heights(tmp_path, height):
    """A BMP's height field: negative means top-down rows (a real, valid image); 0 or absurd is refused."""
    data = bytearray(ENCODED["BMP"])
    data[22:26] = struct.pack("<i", height)
    path = tmp_path / "h.bmp"
    path.write_bytes(bytes(data))
    image = _load_or_one_line(path)
    if height == -24:  # the same rows stored top-down: the picture comes out upside down
        original = load_image(np.asarray(Image.open(io.BytesIO(ENCODED["BMP"]))))
        np.testing.assert_array_equal(image.pixels, original.pixels[::-1])
    else:
        assert image is None


def test_a_refusal_pil_logs_is_not_a_second_line(tmp_path):
    """PIL logs "More samples per pixel than can be decoded" before refusing such a TIFF; without
    a handler Python prints it to stderr. In a child process, as a user runs it (pytest's own log
    capture would hide the print here)."""
    data = bytearray(ENCODED["TIFF"])
    ifd = struct.unpack_from("<I", data, 4)[0]
    entries = [ifd + 2 + 12 * i for i in range(struct.unpack_from("<H", data, ifd)[0])]
    (samples,) = [e for e in entries if struct.unpack_from("<H", data, e)[0] == 277]  # SamplesPerPixel
    struct.pack_into("<H", data, samples + 8, 8)
    (tmp_path / "eight.tif").write_bytes(bytes(data))
    done = run_in_subprocess(["predict", "eight.tif", "--out", "out"], tmp_path)
    assert_one_line_error(done.returncode, done.stderr, "eight.tif: not a readable image")
