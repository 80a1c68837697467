"""Full-frame fitting on synthetic people with known cameras."""

import pytest
import torch

from cliffhmr.fitting.fit import FitConfig, fit_people
from cliffhmr.geometry.camera import perspective_project
from cliffhmr.geometry.rotation import geodesic_angle
from cliffhmr.models.initial import initial_estimate
from cliffhmr.perception.crop import box_to_center_scale
from cliffhmr.synthetic.scenes import make_scenes


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


@pytest.fixture(scope="module")
def clean(anny_body):
    """Four people seen without noise or dropouts, and the fit's starting point for them."""
    scenes = make_scenes(anny_body, 4, seed=3, noise=0.0, dropout=0.0, spread=0.5)
    f = scenes.focal[:, None].expand(-1, 2)
    center, scale = box_to_center_scale(scenes.boxes)
    return scenes, f, initial_estimate(anny_body, scenes.keypoints_2d, center, scale, f, scenes.principal)


def test_a_wrong_keypoint_does_not_pull_the_fit(anny_body, clean):
    """Geman-McClure: one confident keypoint 60% of the person's height off (a detector's mistake)
    leaves the others fitted to within 2% of the height (squared errors: about 5%)."""
    scenes, f, init = clean
    height = scenes.boxes[:, 3] - scenes.boxes[:, 1]
    kp = scenes.keypoints_2d.clone()
    kp[:, 9, :2] += 0.6 * height[:, None]  # the left wrist
    fit = fit_people(anny_body, kp, f, scenes.principal, init, config=FitConfig(iterations=60))
    err = (perspective_project(fit.body.keypoints, scenes.focal, scenes.principal) - scenes.clean_2d).norm(dim=-1)
    others = [k for k in range(17) if k != 9]
    assert (err[:, others].mean(-1) / height).max() < 0.02


def test_keypoints_without_confidence_have_no_say(anny_body, clean):
    """Missing keypoints (confidence 0) and those below the fit's threshold (0.1 < 0.2) may lie
    anywhere: the fit comes out the same, to the bit."""
    scenes, f, init = clean
    kp = scenes.keypoints_2d.clone()
    kp[:, [6, 13, 15], 2], kp[:, 14, 2] = 0.0, 0.1  # a shoulder (the first 30 steps fit the torso), knees, ankles
    anywhere = kp.clone()
    anywhere[:, [6, 13, 14, 15], :2] = torch.tensor([5000.0, -3000.0])
    a, b = (fit_people(anny_body, k, f, scenes.principal, init, config=FitConfig(iterations=45)) for k in (kp, anywhere))
    assert torch.equal(a.rotmat, b.rotmat) and torch.equal(a.transl, b.transl) and torch.equal(a.quality, b.quality)


def test_the_pose_prior_holds_what_the_keypoints_do_not_show(anny_body, clean):
    """Legs unseen: with the learned prior weighted in, the fitted pose is far likelier under it."""
    from cliffhmr.body.prior import load_pose_prior
    from cliffhmr.geometry.rotation import rotmat_to_axis_angle

    scenes, f, init = clean
    kp = scenes.keypoints_2d.clone()
    kp[:, 11:, 2] = 0.0  # hips, knees, ankles not seen
    prior = load_pose_prior(anny_body.joint_names)
    penalty = {w: prior.penalty(rotmat_to_axis_angle(fit_people(anny_body, kp, f, scenes.principal, init,
                                                                config=FitConfig(iterations=60, w_prior=w)).rotmat[:, 1:]))
               for w in (0.0, 0.05)}  # fmt: skip
    assert (penalty[0.05] < 0.5 * penalty[0.0]).all()


def test_warm_starts_from_the_previous_frame_are_as_accurate_as_cold_fits_in_few_steps(anny_body):
    """Four consecutive frames of a captured walk (30 fps), the person moving 4 cm a frame.
    Frames 1-3 fitted each from the previous frame's fit (warm_config, the first frame's shape
    held, smoothness towards the previous fit) are as near the true joints as fits from scratch,
    land near the keypoints, and take a tenth of the steps."""
    from cliffhmr.geometry.camera import perspective_project
    from cliffhmr.body import Estimate
    from cliffhmr.fitting.fit import warm_config
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat
    from cliffhmr.body import FACE_CAMERA
    from cliffhmr.synthetic.scenes import load_mocap_poses

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
