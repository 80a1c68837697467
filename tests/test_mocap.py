"""tools/convert_mocap.py: the BVH reader, the retargeting, and the committed pose file."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cliffhmr.geometry.rotation import axis_angle_to_rotmat

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / "data/mocap/anny_poses.npz"


@pytest.fixture(scope="module")
def cm():
    return load_script(ROOT / "tools/convert_mocap.py")


TINY_BVH = """HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT B
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
1 2 3 90 0 0 0 90 0
0 0 0 90 90 0 0 0 0
"""


def test_bvh_parser_and_forward_kinematics(cm):
    bvh = cm.parse_bvh(TINY_BVH)
    assert bvh.names == ["A", "B", "B_end"] and bvh.parents == [-1, 0, 1]
    assert bvh.frame_time == 0.5 and bvh.motion.shape == (2, 9)
    pos = cm.bvh_positions(bvh)
    # Frame 0: root at (1,2,3) turned 90 deg about Z, so B's offset +Y -> -X; B turned 90 deg
    # about X sends the end's +Y to +Z (Z-turn leaves it).
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [0, 2, 3], [0, 2, 4]], atol=1e-9)
    # Frame 1: channels compose in the written order, R = Rz(90) Rx(90): +Y -> +Z (Rx Rz would give -X).
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [0, 0, 1], [0, 0, 2]], atol=1e-9)


def test_bvh_rejects_short_motion(cm):
    with pytest.raises(ValueError, match="expected 2 x 9"):
        cm.parse_bvh(TINY_BVH.rsplit("\n", 2)[0])


def test_retarget_round_trip(cm, anny_body):
    """Anny's own landmarks from modest random poses -> retarget -> legs within 10 mm, every
    landmark within 20 mm and every joint within 25 mm. Upper body looser by design: how a bend
    splits over the three spine joints and the clavicles, which no segment constrains (see the
    tool's docstring), is left to the prior, which moves the shoulders up to ~2 cm."""
    anny = cm.AnnyLandmarks(anny_body)
    g = torch.Generator().manual_seed(0)
    B = 6
    pose = 0.25 * torch.randn(B, 20, 3, generator=g)
    pose[:, 0] = torch.randn(B, 3, generator=g)  # any global orientation
    pose[:, [3, 6, 9, 10]] *= 0.3  # spine and neck: modest
    pose[:, [11, 12]] = 0  # clavicles: follow the prior
    pose[:, [4, 5], 0] = pose[:, [4, 5], 0].abs() + 0.2  # knees flexed, as a person's bend
    with torch.no_grad():
        lm, joints = anny(axis_angle_to_rotmat(pose))
    fitted = cm.retarget(anny, lm.numpy(), steps=300)
    with torch.no_grad():
        lm2, joints2 = anny(axis_angle_to_rotmat(fitted))
    legs = [cm.L[f"{n}_{s}"] for n in ("hip", "knee", "ankle", "toe") for s in "lr"]
    assert (lm2 - lm)[:, legs].norm(dim=-1).max() < 0.010
    assert (lm2 - lm).norm(dim=-1).max() < 0.020
    assert (joints2 - joints).norm(dim=-1).max() < 0.025


def test_facing_check_sees_a_mirrored_clip(cm, anny_body):
    anny = cm.AnnyLandmarks(anny_body)
    with torch.no_grad():
        lm, _ = anny(axis_angle_to_rotmat(torch.zeros(1, 20, 3)))
    x = lm.numpy().astype(np.float64)
    assert cm.facing_check(x)[0] > 0.9
    swapped = x.copy()
    for name in cm.LANDMARKS:
        if name.endswith("_l"):
            r = name[:-2] + "_r"
            swapped[:, [cm.L[name], cm.L[r]]] = x[:, [cm.L[r], cm.L[name]]]
    assert cm.facing_check(swapped)[0] < -0.9


def test_committed_pose_file():
    with np.load(NPZ, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    assert set(data) == {"pose", "clip", "clip_names", "source", "fps", "frame", "fit_error_mm", "split"}
    N, C = len(data["pose"]), len(data["clip_names"])
    assert data["pose"].shape == (N, 20, 3) and data["pose"].dtype == np.float32
    for key in ("clip", "frame", "fit_error_mm"):
        assert data[key].shape == (N,)
    assert np.issubdtype(data["clip"].dtype, np.integer) and np.issubdtype(data["frame"].dtype, np.integer)
    for key in ("clip_names", "source", "split"):
        assert data[key].shape == (C,) and data[key].dtype.kind == "U"
    assert data["fps"].shape == (C,)
    assert all(np.isfinite(data[k]).all() for k in ("pose", "fps", "fit_error_mm"))
    assert data["clip"].min() == 0 and data["clip"].max() == C - 1
    assert set(data["source"]) == {"cmu", "deepmimic", "holosoma"}
    assert set(data["split"]) == {"train", "test"}
    for source in ("cmu", "deepmimic", "holosoma"):  # held-out clips from every source
        assert "test" in data["split"][data["source"] == source]
    test_frac = np.isin(data["clip"], np.flatnonzero(data["split"] == "test")).mean()
    assert 0.15 < test_frac < 0.35
    licences = (ROOT / "cliffhmr/assets/LICENSES.md").read_text()
    listed = set(re.findall(r"`((?:cmu|deepmimic|holosoma)/\w+)`", licences))
    assert set(data["clip_names"]) <= listed


def test_sources_weigh_the_same_when_balanced():
    from cliffhmr.synthetic.scenes import MOCAP_FILE, load_mocap_poses, source_weights

    w = source_weights(np.array(["climb", "climb", "climb", "walk"]))
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0])  # each source sums to 2, mean 1

    # Balanced draws: every training source about a third of the frames (climbing is 82% as they come).
    with np.load(MOCAP_FILE) as z:
        train = (z["split"] == "train")[z["clip"]]
        source_of = {pose.tobytes(): src for pose, src in zip(z["pose"][train], z["source"][z["clip"][train]])}
    for balance, lo, hi in ((False, 0.75, 0.9), (True, 0.3, 0.37)):
        drawn = load_mocap_poses("train", balance=balance).numpy()
        share = np.mean([source_of[p.tobytes()] == "holosoma" for p in drawn])
        assert lo < share < hi, (balance, share)
