import math

import torch

from cliffhmr.geometry import rotation as rot


def _random_rotmats(n, seed=0):
    aa = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)) * math.pi
    return rot.axis_angle_to_rotmat(aa), aa


def test_axis_angle_hand_computed():
    R = rot.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(R @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0], dtype=torch.float64))
    torch.testing.assert_close(rot.axis_angle_to_rotmat(torch.zeros(3)), torch.eye(3))


def test_rotmats_are_proper():
    R, _ = _random_rotmats(100)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))


def test_axis_angle_round_trip_including_near_zero_and_pi():
    R, aa = _random_rotmats(200)
    torch.testing.assert_close(rot.rotmat_to_axis_angle(R), aa, atol=1e-7, rtol=1e-7)
    tiny = torch.tensor([[1e-9, -2e-9, 3e-9]], dtype=torch.float64)
    torch.testing.assert_close(rot.rotmat_to_axis_angle(rot.axis_angle_to_rotmat(tiny)), tiny, atol=1e-12, rtol=0)
    # At pi the axis sign is ambiguous; the rotation must still round-trip.
    near_pi = torch.tensor([[0.0, math.pi - 1e-7, 0.0], [math.pi / math.sqrt(2), math.pi / math.sqrt(2), 0]], dtype=torch.float64)
    R = rot.axis_angle_to_rotmat(near_pi)
    torch.testing.assert_close(rot.axis_angle_to_rotmat(rot.rotmat_to_axis_angle(R)), R, atol=1e-6, rtol=0)


def test_rot6d_round_trip_and_gram_schmidt():
    R, _ = _random_rotmats(50)
    torch.testing.assert_close(rot.rot6d_to_rotmat(rot.rotmat_to_rot6d(R)), R)
    # The official layout: x.view(-1, 3, 2) -> columns are the first two columns of R.
    x = torch.tensor([[2.0, 0.0, 0.0, 3.0, 0.0, 0.0]])  # col0 = (2, 0, 0), col1 = (0, 3, 0)
    torch.testing.assert_close(rot.rot6d_to_rotmat(x)[0], torch.eye(3))


def test_gradient_finite_at_identity():
    aa = torch.zeros(4, 3, requires_grad=True)
    (rot.axis_angle_to_rotmat(aa) * torch.randn(4, 3, 3)).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_geodesic_angle():
    R, aa = _random_rotmats(30)
    torch.testing.assert_close(rot.geodesic_angle(torch.eye(3, dtype=torch.float64).expand(30, 3, 3), R), aa.norm(dim=-1), atol=1e-6, rtol=0)


def test_skew_is_cross_product():
    v, u = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close((rot.skew(v) @ u[..., None])[..., 0], torch.cross(v, u, dim=-1))
