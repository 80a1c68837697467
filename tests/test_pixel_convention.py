"""One pixel convention everywhere (written down in geometry/camera.py): a W x H image covers
[0, W] x [0, H], pixel (i, j) covers [i, i + 1) x [j, j + 1) and is centred on (i + 0.5, j + 0.5).
Each test puts something on a known pixel and checks the stage finds it there."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cliffhmr.data.augment import Augment, camera_transform
from cliffhmr.geometry.camera import Intrinsics, perspective_project
from cliffhmr.perception.image import LoadedImage
from cliffhmr.perception import crop
from cliffhmr.perception.blazepose import warp_square
from cliffhmr.perception.keypoints import outside_missing
from cliffhmr.inference.pipeline import _whole_image_box
from cliffhmr.inference.render import rasterize

W, H = 12, 16


def test_the_default_camera_looks_at_the_image_centre():
    K = Intrinsics.default(W, H)
    on_axis = perspective_project(torch.tensor([[[0.0, 0.0, 3.0]]]), torch.tensor([K.focal]), torch.tensor([[K.cx, K.cy]]))
    assert on_axis[0, 0].tolist() == [6.0, 8.0]  # between pixels 5 and 6, 7 and 8: the middle of 12 x 16
    box = _whole_image_box(LoadedImage(np.zeros((H, W, 3), np.uint8), None, None))
    center, _ = crop.box_to_center_scale(torch.as_tensor(box[:, :4]))
    assert box[0, :4].tolist() == [0, 0, W, H] and center[0].tolist() == [K.cx, K.cy]


def test_the_renderer_draws_a_square_on_the_pixels_it_covers():
    # A square spanning u, v in [3.2, 6.8] (f = 1 px per unit at depth 1, principal point (6, 6)):
    # the centres 3.5 .. 6.5 of pixels 3..6 are inside (with centres on whole numbers it would be 4..6).
    square = np.array([[-2.8, -2.8, 1.0], [0.8, -2.8, 1.0], [0.8, 0.8, 1.0], [-2.8, 0.8, 1.0]])
    _, face = rasterize(square, np.array([[0, 1, 2], [0, 2, 3]]), H, W, 1.0, 1.0, 6.0, 6.0)
    rows, cols = np.nonzero(face >= 0)
    assert set(rows) == set(cols) == {3, 4, 5, 6}


def test_a_crop_of_the_whole_image_at_one_pixel_per_pixel_is_the_image():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = crop.crop_images(img, torch.tensor([[W / 2, H / 2]]), torch.tensor([H / 200]), height=16)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy() * 255, img, atol=0.02)


def test_keypoints_on_the_image_edges_are_inside():
    kp = np.array([[[0.0, 0.0, 1.0], [W, H, 1.0], [W + 0.01, 5.0, 1.0], [5.0, -0.01, 1.0]]])
    assert outside_missing(kp, W, H)[0, :, 2].tolist() == [1, 1, 0, 0]


def test_a_mirrored_view_maps_the_centre_to_itself():
    _, A, principal = camera_transform(Augment(flip=True), np.array([W / 2, H / 2]), W)
    assert principal.tolist() == [W / 2, H / 2]
    assert (A @ [0.5, 3.0, 1.0]).tolist() == [W - 0.5, 3.0]  # pixel 0's centre -> pixel W - 1's


def test_blazepose_crops_centre_on_the_pixel_they_are_given():
    img = np.zeros((H, W, 3), np.uint8)
    img[9, 4] = 255  # pixel (4, 9), centred on (4.5, 9.5)
    pixels, a = warp_square(Image.fromarray(img), 4.5, 9.5, 5.0, 0.0, 5)
    assert np.argwhere(pixels[..., 0] == 255).tolist() == [[2, 2]]  # the middle of a 5 x 5 crop
    assert (a @ [2.5, 2.5, 1.0]).tolist() == [4.5, 9.5]
