"""Full-frame fitting on synthetic people with known cameras."""

import math

import pytest
import torch

from cliffhmr.crop import box_to_center_scale
from cliffhmr.fit import FitConfig, fit_people, ray_rotation
from cliffhmr.regressor import initial_estimate
from cliffhmr.rotation import geodesic_angle
from cliffhmr.synthetic import make_scenes


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


def _fit(body, scenes, mode, iterations=80):
    f = scenes.focal[:, None].expand(-1, 2)
    center, scale = box_to_center_scale(scenes.boxes)
    init = initial_estimate(body, scenes.keypoints_2d, center, scale, f, scenes.principal, full_frame=mode == "full")
    cfg = FitConfig(iterations=iterations, camera=mode)
    return fit_people(body, scenes.keypoints_2d, f, scenes.principal, init, config=cfg, boxes=scenes.boxes)


def test_full_frame_fit_reproduces_clean_keypoints(anny_body):
    scenes = make_scenes(anny_body, 6, seed=11, noise=0.0, dropout=0.0, spread=0.6)
    fit = _fit(anny_body, scenes, "full")
    assert torch.isfinite(fit.body.vertices).all()
    size = (scenes.boxes[:, 3] - scenes.boxes[:, 1])
    from cliffhmr.camera import perspective_project

    proj = perspective_project(fit.body.keypoints, scenes.focal, scenes.principal)
    err = (proj - scenes.clean_2d).norm(dim=-1).mean(-1) / size
    assert err.median() < 0.03  # within 3% of the person's height in the image
    assert (fit.quality > 0.5).float().mean() >= 0.8
    # The depth comes out right to within the body-size ambiguity.
    rel_depth = (fit.transl[:, 2] - scenes.transl[:, 2]).abs() / scenes.transl[:, 2]
    assert rel_depth.median() < 0.25


def test_full_frame_beats_crop_only_on_orientation_far_from_the_axis(anny_body):
    """CLIFF's claim on data we control: people far off the optical axis get their global
    orientation from the full-frame camera, not from the crop."""
    scenes = make_scenes(anny_body, 12, seed=5, noise=0.0, dropout=0.0, spread=0.5, hfov_deg=(80.0, 90.0))
    keep = scenes.off_center_deg() > 20
    assert keep.sum() >= 4
    err = {}
    for mode in ("full", "crop"):
        fit = _fit(anny_body, scenes, mode)
        err[mode] = torch.rad2deg(geodesic_angle(fit.rotmat[:, 0], scenes.rotmat[:, 0]))[keep].median()
    assert err["full"] < err["crop"]


def test_bad_keypoints_never_give_nans(anny_body):
    scenes = make_scenes(anny_body, 3, seed=2)
    kp = scenes.keypoints_2d.clone()
    kp[0, :, 2] = 0  # nothing visible
    kp[1, 3:, :2] = float("nan")  # garbage coordinates, still claiming confidence
    kp[2, :, :2] = kp[2, :1, :2] + torch.randn(17, 2) * 2  # a person 4 px tall
    f = scenes.focal[:, None].expand(-1, 2)
    center, scale = box_to_center_scale(scenes.boxes)
    init = initial_estimate(anny_body, kp, center, scale, f, scenes.principal)
    fit = fit_people(anny_body, kp, f, scenes.principal, init, config=FitConfig(iterations=20))
    assert torch.isfinite(fit.body.vertices).all() and torch.isfinite(fit.transl).all()
    assert (fit.transl[:, 2] > 0).all()
    assert "few_keypoints" in fit.flags[0]
    assert ((fit.quality >= 0) & (fit.quality <= 1)).all()


def test_warm_starts_from_the_previous_frame_are_as_accurate_as_cold_fits_in_few_steps(anny_body):
    """Four consecutive frames of a captured walk (30 fps), the person moving 4 cm a frame.
    Frames 1-3 fitted each from the previous frame's fit (warm_config, the first frame's shape
    held, smoothness towards the previous fit) are as near the true joints as fits from scratch,
    land near the keypoints, and take a tenth of the steps."""
    from cliffhmr.camera import perspective_project
    from cliffhmr.fit import Estimate, warm_config
    from cliffhmr.rotation import axis_angle_to_rotmat
    from cliffhmr.synthetic import FACE_CAMERA, load_mocap_poses

    n = 4
    R = axis_angle_to_rotmat(load_mocap_poses("test")[200 : 200 + n])  # cmu/01_03, consecutive frames
    R[:, 0] = FACE_CAMERA @ R[:, 0]
    transl = torch.tensor([[0.3 + 0.04 * i, 0.1, 5.0] for i in range(n)])
    with torch.no_grad():
        truth = anny_body(R, torch.zeros(n, anny_body.num_betas), transl)
    f, c = torch.full((n, 2), 1200.0), torch.tensor([[960.0, 540.0]]).expand(n, 2)
    kp = torch.cat((perspective_project(truth.keypoints, f, c), torch.ones(n, 17, 1)), -1)
    center, scale = box_to_center_scale(torch.cat((kp[:, :, :2].amin(1), kp[:, :, :2].amax(1)), -1))
    cold = fit_people(anny_body, kp, f, c, initial_estimate(anny_body, kp, center, scale, f, c))
    warm, steps = [], []
    previous = Estimate(cold.rotmat[:1], cold.betas[:1], cold.transl[:1])
    for i in range(1, n):
        fit = fit_people(anny_body, kp[i : i + 1], f[:1], c[:1], previous, expected=previous, shape=cold.betas[:1],
                         config=warm_config())  # fmt: skip
        torch.testing.assert_close(fit.betas, cold.betas[:1])  # the shape held
        warm.append(fit.body.keypoints[0])
        steps.append(fit.iterations)
        previous = Estimate(fit.rotmat, fit.betas, fit.transl)
    warm = torch.stack(warm)

    def mpjpe(keypoints, true):  # mid-hip aligned, metres
        hip_aligned = lambda k: k - k[:, 11:13].mean(1, keepdim=True)  # noqa: E731
        return float((hip_aligned(keypoints) - hip_aligned(true)).norm(dim=-1).mean())

    assert mpjpe(warm, truth.keypoints[1:]) < mpjpe(cold.body.keypoints[1:], truth.keypoints[1:]) + 0.005
    height = float(kp[1, :, 1].amax() - kp[1, :, 1].amin())
    err_2d = (perspective_project(warm, f[1:], c[1:]) - kp[1:, :, :2]).norm(dim=-1).mean() / height
    assert err_2d < 0.015  # 1.5% of her height: 8 small steps, held towards the previous frame
    assert max(steps) <= 8 and cold.iterations > 80
