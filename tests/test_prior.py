"""The pose prior, joint limits and shape prior learned from real motion (cliffhmr.body.prior)."""

import math

import pytest
import torch

from cliffhmr.body.anny import ANNY_JOINT_NAMES
from cliffhmr.body.prior import PRIOR_FILE, PosePrior, load_pose_prior, mirror_names, mirror_pose, read_prior_file
from cliffhmr.geometry.rotation import axis_angle_to_rotmat
from cliffhmr.synthetic.scenes import load_mocap_poses

BODY = ANNY_JOINT_NAMES[1:]


@pytest.fixture(scope="module")
def prior() -> PosePrior:
    return read_prior_file(PRIOR_FILE)


def _small_prior(D=6):
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, D, D, generator=gen, dtype=torch.float64)
    cov = A @ A.transpose(-1, -2) / D + 0.1 * torch.eye(D, dtype=torch.float64)
    means = torch.randn(3, D, generator=gen, dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    names = ["root", "a.L", "a.R"]
    lim = torch.ones(2, 3, dtype=torch.float64)
    return PosePrior(weights, means, cov, -lim, lim, names, torch.ones(6, dtype=torch.float64)), (weights, means, cov)


def test_mixture_density_matches_torch_distributions():
    prior, (w, mu, cov) = _small_prior()
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    comps = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=w), comps)
    expected = mix.log_prob(x.reshape(7, 6))
    torch.testing.assert_close(prior.log_prob(x.float()), expected.float(), atol=1e-4, rtol=1e-5)


def test_joint_limit_penalty_is_zero_inside_and_grows_outside():
    prior, _ = _small_prior()
    inside = torch.tensor([[[0.5, -0.9, 0.0], [0.99, 0.0, -1.0]]])
    assert prior.limit_penalty(inside).item() == 0.0
    assert prior.within_limits(torch.cat((torch.eye(3)[None, None], axis_angle_to_rotmat(inside)), 1)).item()
    out = [prior.limit_penalty(torch.tensor([[[1.0 + d, 0.0, 0.0], [0.0, 0.0, 0.0]]])).item() for d in (0.1, 0.2, 0.4)]
    assert out == pytest.approx([0.01, 0.04, 0.16])  # squared excess, hand-computed
    far = torch.tensor([[[2.0, -3.0, 0.2], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(prior.project(far), torch.tensor([[[1.0, -1.0, 0.2], [0.0, 0.0, 0.0]]]))
    assert prior.limit_penalty(prior.project(far)).item() == 0.0


def test_mirror_twins_and_double_mirror():
    assert [ANNY_JOINT_NAMES[i] for i in mirror_names(ANNY_JOINT_NAMES)][:3] == ["root", "upperleg01.R", "upperleg01.L"]
    coco = ["nose", "left_eye", "right_eye"]
    assert mirror_names(coco) == [0, 2, 1]
    aa = torch.randn(4, 20, 3)
    torch.testing.assert_close(mirror_pose(mirror_pose(aa, ANNY_JOINT_NAMES), ANNY_JOINT_NAMES), aa)


def test_mirrored_pose_poses_the_mirror_image_of_the_body(anny_body):
    """A second computation of the mirror: reflect the posed joints in x and swap left/right."""
    gen = torch.Generator().manual_seed(1)
    aa = torch.randn(3, 20, 3, generator=gen) * 0.3
    betas = torch.zeros(3, 6)
    with torch.no_grad():
        joints = anny_body(axis_angle_to_rotmat(aa), betas).joints
        mirrored = anny_body(axis_angle_to_rotmat(mirror_pose(aa, anny_body.joint_names)), betas).joints
    expected = joints[:, mirror_names(anny_body.joint_names)] * torch.tensor([-1.0, 1.0, 1.0])
    assert (mirrored - expected).norm(dim=-1).max() < 0.01  # Anny's rest skeleton is symmetric to mm


def test_prior_ranks_held_out_real_poses_above_implausible_ones(prior):
    test = load_mocap_poses("test")[:, 1:]
    gen = torch.Generator().manual_seed(0)
    random = torch.randn(test.shape, generator=gen) * 0.35
    hyper = test.clone()
    for knee in ("lowerleg01.L", "lowerleg01.R"):
        hyper[:, BODY.index(knee), 0] = -math.radians(40)  # bent 40 degrees backwards
    real, rnd, bad = (prior.log_prob(x).median() for x in (test, random, hyper))
    assert real > rnd + 50 and real > bad + 10  # measured: 18 vs -146 and 0.6 nats
    # Hyper-extension is also outside the limits, where real poses are not.
    assert (prior.limit_penalty(hyper) > 0).all()
    assert (prior.limit_penalty(test) == 0).float().mean() > 0.85  # measured 87%: held-out clips go beyond the training range


def test_knees_and_elbows_bend_one_way(prior, anny_body):
    """The knee's limits allow flexion (the shin swings backwards) and forbid the same angle the
    other way; checked on the posed body, not on the numbers of the limits alone."""
    knee = BODY.index("lowerleg01.L")
    assert prior.lower[knee, 0] < 0.2 and prior.upper[knee, 0] > 1.8  # about +X, radians
    rot = torch.eye(3).repeat(2, 20, 1, 1)
    for i, angle in enumerate((1.2, -1.2)):
        rot[i, knee + 1] = axis_angle_to_rotmat(torch.tensor([angle, 0.0, 0.0]))
    with torch.no_grad():
        j = anny_body(rot, torch.zeros(2, 6)).joints
    ankle = anny_body.joint_names.index("foot.L")
    knee_j = anny_body.joint_names.index("lowerleg01.L")
    shin = j[:, ankle] - j[:, knee_j]
    assert shin[0, 2] < 0 < shin[1, 2]  # +1.2 rad: the shin goes back (-Z, the body faces +Z)
    assert prior.within_limits(rot).tolist() == [True, False]


def test_default_prior_is_for_anny_only(prior):
    assert load_pose_prior(ANNY_JOINT_NAMES) is not None
    assert load_pose_prior(["pelvis", "left_hip"]) is None
    assert prior.num_components >= 2 and prior.means.shape[1] == 3 * len(BODY)
