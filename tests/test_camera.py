import math

import pytest
import torch

from cliffhmr.geometry import camera
from cliffhmr.geometry.camera import ray_rotation
from cliffhmr.geometry.rotation import axis_angle_to_rotmat, geodesic_angle


def _boxes(n, W, H, gen):
    """Random box centres anywhere in (and a little outside) a W x H frame, with sizes 5%-100% of H."""
    center = torch.rand(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([W * 1.2, H * 1.2], dtype=torch.float64) - torch.tensor([W * 0.1, H * 0.1], dtype=torch.float64)
    b = (0.05 + 0.95 * torch.rand(n, generator=gen, dtype=torch.float64)) * H
    return center, b


def test_default_intrinsics_is_image_diagonal():
    K = camera.Intrinsics.default(640, 480)
    assert K.fx == K.fy == 800.0  # sqrt(640^2 + 480^2)
    assert (K.cx, K.cy) == (320.0, 240.0)


def test_35mm_focal_matches_diagonal_field_of_view():
    # A 43.27 mm (35 mm-equivalent) lens on a 3:2 frame has the same diagonal field of view as f = diagonal.
    K = camera.Intrinsics.from_35mm(camera.FILM_35MM_DIAGONAL_MM, 3000, 2000)
    assert K.fx == pytest.approx(math.hypot(3000, 2000))


@pytest.mark.parametrize("style", ["official", "plain"])
def test_bbox_info_hand_computed(style):
    center = torch.tensor([[420.0, 140.0]])
    b = torch.tensor([240.0])
    f = torch.tensor([800.0])
    pp = torch.tensor([[320.0, 240.0]])
    info = camera.bbox_info(center, b, f, pp, style=style)[0]
    if style == "plain":
        expected = [100 / 800, -100 / 800, 240 / 800]
    else:
        expected = [100 / 800 * 2.8, -100 / 800 * 2.8, (240 - 0.24 * 800) / (0.06 * 800)]
    assert info.tolist() == pytest.approx(expected)


def test_bbox_info_rejects_unknown_style():
    with pytest.raises(ValueError):
        camera.bbox_info(torch.zeros(1, 2), torch.ones(1), torch.ones(1), torch.zeros(1, 2), style="x")


def test_full_translation_reproduces_weak_perspective_for_planar_points():
    """Projecting with the full camera + converted translation == crop weak perspective mapped back,
    exactly for points on the body's z = 0 plane, for boxes anywhere in the frame."""
    gen = torch.Generator().manual_seed(0)
    n, W, H = 64, 1920, 1080
    K = camera.Intrinsics.default(W, H)
    f = torch.full((n,), K.focal, dtype=torch.float64)
    pp = torch.tensor([[K.cx, K.cy]], dtype=torch.float64).expand(n, 2)
    center, b = _boxes(n, W, H, gen)
    cam = torch.stack((0.5 + torch.rand(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64) * 0.2, torch.randn(n, generator=gen, dtype=torch.float64) * 0.2), -1)
    pts = torch.randn(n, 30, 3, generator=gen, dtype=torch.float64) * 0.5
    pts[..., 2] = 0
    transl = camera.cam_crop_to_full(cam, center, b, f, pp)
    full = camera.perspective_project(pts + transl[:, None], f, pp)
    weak = camera.weak_perspective_to_image(pts, cam, center, b)
    torch.testing.assert_close(full, weak, rtol=0, atol=1e-6)


def test_full_and_weak_perspective_differ_by_the_depth_ratio():
    """For any body point at depth z off the body plane: full - pp == (weak - pp) * tz / (tz + z), exactly.
    So a box far from the centre sees first-order errors under weak perspective: CLIFF's point."""
    gen = torch.Generator().manual_seed(1)
    n, W, H = 32, 1280, 720
    K = camera.Intrinsics.default(W, H)
    f = torch.full((n,), K.focal, dtype=torch.float64)
    pp = torch.tensor([[K.cx, K.cy]], dtype=torch.float64).expand(n, 2)
    center, b = _boxes(n, W, H, gen)
    cam = torch.stack((0.5 + torch.rand(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64) * 0.1, torch.randn(n, generator=gen, dtype=torch.float64) * 0.1), -1)
    pts = torch.rand(n, 50, 3, generator=gen, dtype=torch.float64) - 0.5
    transl = camera.cam_crop_to_full(cam, center, b, f, pp)
    full = camera.perspective_project(pts + transl[:, None], f, pp)
    weak = camera.weak_perspective_to_image(pts, cam, center, b)
    ratio = (transl[:, 2:3] / (transl[:, 2:3] + pts[..., 2]))[..., None]
    torch.testing.assert_close(full - pp[:, None], (weak - pp[:, None]) * ratio, rtol=1e-9, atol=1e-6)


def test_crop_full_round_trip():
    gen = torch.Generator().manual_seed(2)
    n, W, H = 20, 800, 600
    f = torch.full((n,), 1000.0, dtype=torch.float64)
    pp = torch.tensor([[400.0, 300.0]], dtype=torch.float64).expand(n, 2)
    center, b = _boxes(n, W, H, gen)
    cam = torch.stack((0.3 + torch.rand(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64)), -1)
    back = camera.cam_full_to_crop(camera.cam_crop_to_full(cam, center, b, f, pp), center, b, f, pp)
    torch.testing.assert_close(back, cam)


def test_centered_box_depth_from_scale():
    """A box centred on the principal point: no lateral shift, depth 2f/(b s)."""
    cam = torch.tensor([[0.8, 0.1, -0.05]])
    t = camera.cam_crop_to_full(cam, torch.tensor([[320.0, 240.0]]), torch.tensor([400.0]), torch.tensor([800.0]), torch.tensor([[320.0, 240.0]]))
    assert t[0].tolist() == pytest.approx([0.1, -0.05, 2 * 800 / (400 * 0.8)])


def test_perspective_project_known_point_and_anisotropic_focal():
    p = torch.tensor([[[0.5, -0.25, 2.0]]])
    uv = camera.perspective_project(p, torch.tensor([[1000.0, 500.0]]), torch.tensor([[320.0, 240.0]]))
    assert uv[0, 0].tolist() == pytest.approx([320 + 1000 * 0.25, 240 - 500 * 0.125])


def test_projection_commutes_with_rotation_about_optical_axis():
    """Rotating a scene about the optical axis rotates its image about the principal point."""
    R = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.7]))
    pts = torch.randn(1, 10, 3)
    pts[..., 2] = pts[..., 2].abs() + 3
    f, pp = torch.tensor([700.0]), torch.tensor([[0.0, 0.0]])
    a = camera.perspective_project(pts @ R.T, f, pp)
    b = camera.perspective_project(pts, f, pp) @ R[:2, :2].T
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_ray_rotation_points_the_optical_axis_along_the_ray():
    focal = torch.tensor([[1000.0, 1000.0], [500.0, 800.0], [700.0, 700.0]])
    principal = torch.tensor([[640.0, 360.0], [100.0, 50.0], [0.0, 0.0]])
    pixels = torch.tensor([[640.0, 360.0], [600.0, -750.0], [700.0, 700.0]])
    R = ray_rotation(pixels, focal, principal)
    ray = torch.cat(((pixels - principal) / focal, torch.ones(3, 1)), 1)
    ray = ray / ray.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(R[:, :, 2], ray)  # R @ (0, 0, 1)
    torch.testing.assert_close(R[0], torch.eye(3))  # the principal point: no turn
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6, rtol=0)
    assert geodesic_angle(torch.eye(3), R[2]) == pytest.approx(math.atan(math.sqrt(2)), abs=1e-5)
