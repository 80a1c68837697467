"""Our PNG writer: what PIL (an independent decoder) reads back is the image, pixel for pixel."""

import io

import numpy as np
import pytest
from PIL import Image

from cliffhmr.inference.export import png_bytes, save_png


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 100), (64, 3)])
def test_png_round_trips_through_an_independent_decoder(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    image[0, 0] = 255  # rows whose difference from the row above wraps around 256
    if shape[0] > 1:
        image[1, 0] = 0
    decoded = Image.open(io.BytesIO(png_bytes(image)))
    assert decoded.mode == "RGB" and decoded.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(decoded), image)


def test_save_png_writes_the_file_and_refuses_what_is_not_rgb(tmp_path):
    image = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 7, 3))
    save_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    for bad in (image[..., 0], image.astype(np.float32), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            png_bytes(bad)
