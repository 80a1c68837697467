"""3DPW sequence files -> npz, on files in the official format with random content."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cliffhmr import cli
from cliffhmr.body import load_smpl
from cliffhmr.data.npz_format import load_annotations
from cliffhmr.geometry.rotation import axis_angle_to_rotmat
from smpl_files import write_random_smpl_pkl


def _rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One sequence, two actors (m, f), 4 frames (frame 2 of actor 0 without a valid camera pose),
    a moving camera 3-5 m from the actors. Joint positions come from the same SMPL files."""
    root = tmp_path_factory.mktemp("3dpw")
    smpl = root / "smpl"
    smpl.mkdir()
    write_random_smpl_pkl(smpl / "SMPL_MALE.pkl", seed=1, V=300, F=500)
    write_random_smpl_pkl(smpl / "SMPL_FEMALE.pkl", seed=2, V=300, F=500)
    rng = np.random.default_rng(0)
    n = 4
    cam = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        cam[i, :3, :3] = _rotation(rng)
        cam[i, :3, 3] = -cam[i, :3, :3] @ rng.normal(0, 0.3, 3) + [0, 0, 4 + i * 0.3]  # actors ~ in front
    seq = {"sequence": "downtown_walk_00", "genders": ["m", "f"], "cam_poses": cam, "img_frame_ids": np.arange(10, 10 + n),
           "cam_intrinsics": np.array([[1960.0, 0, 540], [0, 1970.0, 960], [0, 0, 1]]),
           "poses": [], "betas": [], "trans": [], "jointPositions": [], "campose_valid": [],
           "v_template_clothed": [None, None], "texture_maps": [None, None]}  # fmt: skip
    for p, gender in enumerate(("male", "female")):
        body = load_smpl(str(smpl), torch.device("cpu"), gender=gender)
        poses = rng.normal(0, 0.3, (n, 72))
        poses[:, :3] = rng.normal(0, 1.5, (n, 3))
        betas, trans = rng.normal(0, 1, 10), rng.normal(0, 0.3, (n, 3))
        world = body(axis_angle_to_rotmat(torch.from_numpy(poses).float().reshape(n, 24, 3)),
                     torch.from_numpy(betas).float().expand(n, 10), torch.from_numpy(trans).float())
        seq["poses"].append(poses)
        seq["betas"].append(betas)
        seq["trans"].append(trans)
        seq["jointPositions"].append(world.joints[:, :24].reshape(n, 72).double().numpy())
        seq["campose_valid"].append(np.array([1, 1, 0, 1] if p == 0 else [1, 1, 1, 1]))
    folder = root / "sequenceFiles" / "test"
    folder.mkdir(parents=True)
    (folder / "downtown_walk_00.pkl").write_bytes(pickle.dumps(seq, protocol=2))
    return root, smpl, seq


def test_rows_put_the_world_mesh_into_the_camera_frame(dataset, tmp_path):
    root, smpl, seq = dataset
    assert cli.main(["convert", "3dpw", "--root", str(root), "--smpl", str(smpl), "--out", str(tmp_path / "t.npz")]) == 0
    ann = load_annotations(tmp_path / "t.npz")
    assert len(ann) == 7 and list(ann.gender) == ["m"] * 3 + ["f"] * 4
    assert ann.imgname[2] == "imageFiles/downtown_walk_00/image_00013.jpg"  # frame 2 skipped: invalid camera pose
    np.testing.assert_allclose(ann.focal, np.sqrt(1960.0 * 1970.0), rtol=1e-6)

    frames = [0, 1, 3, 0, 1, 2, 3]
    for row, (p, i) in enumerate(zip([0] * 3 + [1] * 4, frames)):
        body = load_smpl(str(smpl), torch.device("cpu"), gender="male" if p == 0 else "female")
        pose = lambda aa: axis_angle_to_rotmat(torch.from_numpy(np.asarray(aa, np.float32)).reshape(1, 24, 3))  # noqa: E731
        world = body(pose(seq["poses"][p][i]), torch.tensor(seq["betas"][p], dtype=torch.float32)[None],
                     torch.tensor(seq["trans"][p][i], dtype=torch.float32)[None]).vertices[0].double()
        R, T = torch.from_numpy(seq["cam_poses"][i, :3, :3]), torch.from_numpy(seq["cam_poses"][i, :3, 3])
        expected = world @ R.T + T
        got = body(pose(ann.pose[row]), torch.from_numpy(ann.shape[row])[None], torch.from_numpy(ann.transl[row])[None]).vertices[0]
        torch.testing.assert_close(got.double(), expected, atol=2e-4, rtol=0)
        # The box holds every projected joint, with the protocol's 1.2 margin.
        joints = seq["jointPositions"][p][i].reshape(24, 3) @ R.numpy().T + T.numpy()
        K = seq["cam_intrinsics"]
        uv = joints[:, :2] / joints[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        half = 100.0 * ann.scale[row] / 1.2  # half the tight box's height (or width x 4/3)
        assert np.abs(uv - ann.center[row]).max(0)[1] <= half * 1.0001
        assert np.isclose(max(np.ptp(uv[:, 1]), np.ptp(uv[:, 0]) * 4 / 3), 2 * half, rtol=1e-4)


def test_bad_inputs_are_one_line(dataset, tmp_path, capsys):
    root, smpl, _ = dataset
    assert cli.main(["convert", "3dpw", "--root", str(tmp_path), "--smpl", str(smpl), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no 3DPW sequence files" in capsys.readouterr().err
    folder = tmp_path / "sequenceFiles" / "test"
    folder.mkdir(parents=True)
    (folder / "broken.pkl").write_bytes(pickle.dumps({"poses": []}, protocol=2))
    assert cli.main(["convert", "3dpw", "--root", str(tmp_path), "--smpl", str(smpl), "--out", str(tmp_path / "x.npz")]) == 2
    assert "missing betas" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
