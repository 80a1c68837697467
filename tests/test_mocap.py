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
    assert set(data["source"]) == {"cmu", "deepmimic", "holosoma", "vicon"}
    assert set(data["split"]) == {"train", "test"}
    for source in ("cmu", "deepmimic", "holosoma"):  # held-out clips from every source but the marker captures (all train)
        assert "test" in data["split"][data["source"] == source]
    test_frac = np.isin(data["clip"], np.flatnonzero(data["split"] == "test")).mean()
    assert 0.15 < test_frac < 0.35
    licences = (ROOT / "cliffhmr/assets/LICENSES.md").read_text()
    listed = set(re.findall(r"`((?:cmu|deepmimic|holosoma|vicon)/\w+)`", licences))
    assert set(data["clip_names"]) <= listed


def test_sources_weigh_the_same_when_balanced():
    from cliffhmr.synthetic.scenes import MOCAP_FILE, load_mocap_poses, source_weights

    w = source_weights(np.array(["climb", "climb", "climb", "walk"]))
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0])  # each source sums to 2, mean 1

    # Balanced draws: each of the four training sources about a quarter of the frames (climbing is 80% as they come).
    with np.load(MOCAP_FILE) as z:
        train = (z["split"] == "train")[z["clip"]]
        source_of = {pose.tobytes(): src for pose, src in zip(z["pose"][train], z["source"][z["clip"][train]])}
    for balance, lo, hi in ((False, 0.75, 0.9), (True, 0.22, 0.28)):
        drawn = load_mocap_poses("train", balance=balance).numpy()
        share = np.mean([source_of[p.tobytes()] == "holosoma" for p in drawn])
        assert lo < share < hi, (balance, share)


def _c3d_bytes(end: str, points: np.ndarray, labels: list[str], rate: float, scale: float) -> bytes:
    """A minimal C3D file written by hand: header, one POINT group, point data (no analog).
    points: (T, P, 4) x, y, z, residual; float32 when scale < 0, else int16 (coordinates / scale)."""
    import struct

    def entry(gid: int, name: str, body: bytes) -> bytes:  # the int16 offset counts from itself to the next entry
        return struct.pack("bb", len(name), gid) + name.encode() + struct.pack(end + "h", 2 + len(body)) + body

    def param(name: str, kind: int, dims: list[int], data: bytes) -> bytes:
        return entry(1, name, struct.pack("bB", kind, len(dims)) + bytes(dims) + data + b"\x00")

    T, P = points.shape[:2]
    width = max(len(s) for s in labels)
    section = b"\x01\x50\x01" + bytes([84 if end == "<" else 86])
    section += entry(-1, "POINT", b"\x00")
    section += param("USED", 2, [], struct.pack(end + "h", P))
    section += param("SCALE", 4, [], struct.pack(end + "f", scale))
    section += param("DATA_START", 2, [], struct.pack(end + "h", 3))
    section += param("RATE", 4, [], struct.pack(end + "f", rate))
    section += param("LABELS", -1, [width, P], "".join(s.ljust(width) for s in labels).encode())
    section += b"\x00\x00"  # an empty name: the end of the parameters
    header = bytes([2, 0x50]) + struct.pack(end + "hhHH", P, 0, 1, T)
    data = (points / 1.0).astype(end + "f4") if scale < 0 else np.round(points / [scale, scale, scale, 1]).astype(end + "i2")
    return header.ljust(512, b"\x00") + section.ljust(512, b"\x00") + data.tobytes()


@pytest.mark.parametrize("end", ["<", ">"])
@pytest.mark.parametrize("scale", [-0.1, 0.5])
def test_c3d_reader(cm, end, scale):
    pts = np.zeros((3, 2, 4))
    pts[..., :3] = np.arange(18).reshape(3, 2, 3) * 2.0 + 1
    pts[1, 0, 3] = -1  # a negative residual: missing
    pts[2, 1, :3] = 0  # all coordinates 0: missing
    labels, xyz, rate = cm.read_c3d(_c3d_bytes(end, pts, ["subj:LKNE", "LKNI"], 120.0, scale))
    assert labels == ["LKNE", "LKNI"] and rate == 120.0 and xyz.shape == (3, 2, 3)
    want = pts[..., :3].copy()
    want[1, 0] = want[2, 1] = np.nan
    np.testing.assert_allclose(xyz, want)


def test_c3d_reader_rejects_short_data(cm):
    data = _c3d_bytes("<", np.ones((3, 2, 4)), ["A", "B"], 100.0, -1.0)
    with pytest.raises(ValueError, match="short"):
        cm.read_c3d(data[:-8])


def test_csm_reader(cm):
    text = "$Filename x.csm\n$Rate 60\n$Order\nLKNE LKNI\n$Points\n1 1 2 3 4 5 6\n2 DROPOUT DROPOUT DROPOUT 0 0 0\n"
    names, xyz, rate = cm.read_csm(text)
    assert names == ["LKNE", "LKNI"] and rate == 60.0
    np.testing.assert_array_equal(xyz[0], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(xyz[1]).all()
    with pytest.raises(ValueError, match="3 x 2"):
        cm.read_csm(text.replace("4 5 6", "4 5"))


def test_marker_rules(cm):
    one = lambda *v: np.array([v], float)  # noqa: E731  one frame, mm
    m = {"LKNE": one(100, 400, 0), "LKNI": one(0, 400, 20),
         "LFWT": one(120, 0, 100), "RFWT": one(-120, 0, 100), "LBWT": one(50, 0, -60), "RBWT": one(-50, 0, -60)}  # fmt: skip
    lm = cm.markers_to_landmarks(m, "y")[0] * 1000  # mm
    L = cm.L
    np.testing.assert_allclose(lm[L["knee_l"]], [50, 400, 10])  # the midpoint of KNE and KNI
    # Harrington: width 240, depth 160, facing +Z, left +X: front mid + (-0.24*160-9.9) forward
    # + (-0.30*240-10.9) up + (0.33*240+7.3) left.
    np.testing.assert_allclose(lm[L["hip_l"]], [86.5, -82.9, 51.7], atol=1e-9)
    np.testing.assert_allclose(lm[L["hip_r"]], [-86.5, -82.9, 51.7], atol=1e-9)
    np.testing.assert_allclose(lm[L["pelvis"]], [0, -82.9, 51.7], atol=1e-9)
    assert np.isnan(lm[L["knee_r"]]).all() and np.isnan(lm[L["head"]]).all()  # no markers, no joint
    # Z-up files: (x, y, z) -> (x, z, -y).
    z_up = {k: v[:, [0, 2, 1]] * [1, -1, 1] for k, v in m.items()}
    np.testing.assert_allclose(cm.markers_to_landmarks(z_up, "z")[0] * 1000, lm, atol=1e-9)


def test_fill_gaps(cm):
    x = np.arange(10.0)[:, None, None].repeat(3, -1)
    x[[0, 3, 4, 6, 7, 8]] = np.nan  # the start, a gap of 2, a gap of 3
    out = cm.fill_gaps(x, max_gap=2)
    np.testing.assert_array_equal(out[[1, 2, 3, 4, 5, 9], 0, 0], [1, 2, 3, 4, 5, 9])
    assert np.isnan(out[[0, 6, 7, 8]]).all()
