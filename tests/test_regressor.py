"""The learned initial estimate: weights I/O, accuracy against the geometric one, the training command."""

import pytest
import torch

from cliffhmr.errors import CliffError
from cliffhmr.geometry.camera import perspective_project, ray_rotation
from cliffhmr.geometry.rotation import geodesic_angle
from cliffhmr.models.initial import geometric_estimate, initial_estimate
from cliffhmr.models.keypoint_regressor import (
    DEFAULT_WEIGHTS, KeypointRegressor, keypoint_crop, load_keypoint_regressor, regressor_inputs, save_keypoint_regressor,
)  # fmt: skip
from cliffhmr.perception.crop import box_to_center_scale
from cliffhmr.synthetic.scenes import load_mocap_poses, make_scenes
from cliffhmr.train.keypoint_regressor import main


def _inputs(scenes):
    center, scale = box_to_center_scale(scenes.boxes)
    return scenes.keypoints_2d, center, scale, scenes.focal[:, None].expand(-1, 2), scenes.principal


def _errors(body, scenes, est):
    """(root orientation error in degrees, mean keypoint reprojection error / box height), each (N,)."""
    root = torch.rad2deg(geodesic_angle(est.rotmat[:, 0], scenes.rotmat[:, 0]))
    with torch.no_grad():
        proj = perspective_project(body.keypoints_only(est.rotmat, est.betas, est.transl), scenes.focal, scenes.principal)
    height = scenes.boxes[:, 3] - scenes.boxes[:, 1]
    return root, (proj - scenes.clean_2d).norm(dim=-1).mean(-1) / height


def test_weights_round_trip(tmp_path):
    model = KeypointRegressor(20, 6, hidden=32, blocks=1)
    torch.nn.init.normal_(model.out.weight, std=0.1)  # away from the mean, so outputs differ by input
    save_keypoint_regressor(model, tmp_path / "r.pt")
    loaded = load_keypoint_regressor(tmp_path / "r.pt")
    assert loaded.config == model.config and not loaded.training
    x = torch.randn(5, 54)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b)
    R = model(x)[0]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)


def test_inputs_are_crop_normalised_and_ignore_unseen_keypoints():
    kp = torch.zeros(1, 17, 3)
    kp[0, 0] = torch.tensor([150.0, 100.0, 0.9])  # 50 px right of the centre, b = 100
    kp[0, 1] = torch.tensor([float("nan"), 0.0, 0.9])
    kp[0, 2] = torch.tensor([500.0, 500.0, 0.1])  # below min_conf
    x = regressor_inputs(kp, torch.tensor([[100.0, 100.0]]), torch.tensor([0.5]), torch.full((1, 2), 1000.0), torch.tensor([[100.0, 50.0]]))
    torch.testing.assert_close(x[0, :3], torch.tensor([1.0, 0.0, 0.9]))
    assert (x[0, 3:51] == 0).all()
    torch.testing.assert_close(x[0, 51:], torch.tensor([0.0, 0.05, 0.1]))  # bbox_info 'plain'


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no trained weights in cliffhmr/assets")
def test_learned_estimate_beats_geometric(anny_body):
    # Real poses from clips the regressor never saw, as it is meant to meet them.
    scenes = make_scenes(anny_body, 96, seed=123, noise=0.0, dropout=0.0, poses=load_mocap_poses("test"))
    args = _inputs(scenes)
    learned_root, learned_kp = _errors(anny_body, scenes, initial_estimate(anny_body, *args))
    geo_root, geo_kp = _errors(anny_body, scenes, geometric_estimate(anny_body, *args))
    far = scenes.off_center_deg() > 20
    assert far.sum() >= 10
    assert learned_root.median() < 0.8 * geo_root.median()
    assert learned_root[far].median() < 0.7 * geo_root[far].median()
    assert learned_kp.median() < 0.7 * geo_kp.median()
    assert learned_kp[far].median() < 0.7 * geo_kp[far].median()


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no trained weights in cliffhmr/assets")
def test_crop_only_reading_undoes_the_ray_rotation(anny_body):
    scenes = make_scenes(anny_body, 4, seed=3)
    args = _inputs(scenes)
    full = initial_estimate(anny_body, *args)
    crop = initial_estimate(anny_body, *args, full_frame=False)
    # Relative to the ray through the centre of the crop the regressor reads.
    R_ray = ray_rotation(keypoint_crop(args[0], args[1])[0], args[3], args[4])
    torch.testing.assert_close(R_ray @ crop.rotmat[:, 0], full.rotmat[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(crop.rotmat[:, 1:], full.rotmat[:, 1:])


def test_training_command_writes_a_loadable_file(anny_body, tmp_path, monkeypatch):
    monkeypatch.setattr("cliffhmr.train.keypoint_regressor.load_body_model", lambda _: anny_body)
    threads = torch.get_num_threads()
    try:
        assert main(["--out", str(tmp_path / "r.pt"), "--steps", "3", "--batch-size", "8", "--pool", "16"]) == 0
    finally:
        torch.set_num_threads(threads)  # main() sets one thread for itself
    scenes = make_scenes(anny_body, 3, seed=1)
    est = initial_estimate(anny_body, *_inputs(scenes), learned=True, weights=tmp_path / "r.pt")
    assert est.rotmat.shape == (3, 20, 3, 3) and est.betas.shape == (3, 6)
    assert torch.isfinite(est.transl).all() and (est.transl[:, 2] > 0).all()


def test_missing_wrong_or_corrupt_weights(anny_body, tmp_path):
    scenes = make_scenes(anny_body, 2, seed=4)
    args = _inputs(scenes)
    geo = geometric_estimate(anny_body, *args)

    missing = tmp_path / "missing.pt"
    est = initial_estimate(anny_body, *args, weights=missing)  # default: fall back
    torch.testing.assert_close(est.rotmat, geo.rotmat)
    torch.testing.assert_close(est.transl, geo.transl)
    with pytest.raises(CliffError, match="not found"):
        initial_estimate(anny_body, *args, learned=True, weights=missing)

    other = tmp_path / "smpl.pt"
    save_keypoint_regressor(KeypointRegressor(24, 10, body="smpl", hidden=8, blocks=1), other)
    torch.testing.assert_close(initial_estimate(anny_body, *args, weights=other).rotmat, geo.rotmat)
    with pytest.raises(CliffError, match="trained for the smpl body"):
        initial_estimate(anny_body, *args, learned=True, weights=other)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    wrong = tmp_path / "wrong.pt"
    torch.save({"config": {"format": 99}, "state_dict": {}}, wrong)
    for path in (corrupt, wrong):
        with pytest.raises(CliffError, match="not a keypoint regressor"):
            initial_estimate(anny_body, *args, weights=path)


def test_mixed_parts_come_from_other_frames(anny_body):
    """Two captured frames, A at rest and B with every joint turned: with arms mixed for
    everyone, each person's arm joints are one frame's and the rest another's (mirroring keeps
    a frame's joints nonzero or zero, so the origin shows); without mixing, one frame each."""
    from cliffhmr.geometry.rotation import rotmat_to_axis_angle
    from cliffhmr.synthetic.scenes import BODY_PARTS, sample_mocap_rotmats

    names = [n.lower() for n in anny_body.joint_names]
    arms = torch.tensor([any(w in n for w in BODY_PARTS["arms"]) for n in names])
    poses = torch.zeros(2, len(names), 3)
    poses[1, 1:] = torch.tensor([0.3, 0.2, 0.1])

    def moved(mix):
        R = sample_mocap_rotmats(anny_body, poses, 400, torch.Generator().manual_seed(0), mix)
        return rotmat_to_axis_angle(R[:, 1:]).norm(dim=-1) > 1e-3  # (n, J - 1): joint not at rest

    for mix in (None, {"arms": 0.0}):
        m = moved(mix)
        assert (m == m[:, :1]).all()  # every joint from the same frame
    m = moved({"arms": 1.0})
    arm, rest = m[:, arms[1:]], m[:, ~arms[1:]]
    assert (arm == arm[:, :1]).all() and (rest == rest[:, :1]).all()  # each part from one frame
    mixed = (arm[:, 0] != rest[:, 0]).float().mean()
    assert 0.35 < mixed < 0.65  # another random frame of two: half the time the other one
