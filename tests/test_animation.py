"""Animated GLB and BVH per track (cliffhmr/inference/export.py), read back by minimal readers written here,
against the video results' npz and the body model."""

import json
import struct

import numpy as np
import pytest
import torch

from cliffhmr.inference.export import Y_UP, euler_zxy

COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
WIDTHS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def read_glb(path):
    """-> (the glTF JSON, accessor index -> numpy array (count, width))."""
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    js_len, js_kind = struct.unpack_from("<I4s", data, 12)
    assert js_kind == b"JSON"
    gltf = json.loads(data[20 : 20 + js_len])
    bin_len, bin_kind = struct.unpack_from("<I4s", data, 20 + js_len)
    assert bin_kind == b"BIN\0"
    binary = data[28 + js_len : 28 + js_len + bin_len]

    def accessor(i):
        a = gltf["accessors"][i]
        view = gltf["bufferViews"][a["bufferView"]]
        dtype = COMPONENTS[a["componentType"]]
        width = WIDTHS[a["type"]]
        raw = np.frombuffer(binary, dtype, a["count"] * width, view["byteOffset"] + a.get("byteOffset", 0))
        return raw.reshape(a["count"], width)

    return gltf, accessor


def quat_to_matrix(q):
    """(..., 4) (x, y, z, w) -> (..., 3, 3)."""
    x, y, z, w = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)  # fmt: skip


def glb_pose(gltf, accessor, frame):
    """Per joint node (skin order): the keyframed local rotation (3, 3) and the root's translation at `frame`."""
    joints = gltf["skins"][0]["joints"]
    anim = gltf["animations"][0]
    rot, root_t = {}, None
    for ch in anim["channels"]:
        out = accessor(anim["samplers"][ch["sampler"]]["output"])[frame]
        if ch["target"]["path"] == "rotation":
            rot[ch["target"]["node"]] = quat_to_matrix(out)
        else:
            assert ch["target"]["node"] == joints[0]
            root_t = out.astype(np.float64)
    return np.stack([rot[n] for n in joints]), root_t


def skinned_vertices(gltf, accessor, frame):
    """The mesh at `frame` as a glTF viewer skins it: joint world matrices from the node tree and the
    keyframes, times the inverse bind matrices, blended by JOINTS_0 / WEIGHTS_0."""
    joints = gltf["skins"][0]["joints"]
    R, root_t = glb_pose(gltf, accessor, frame)
    local = {}
    for k, n in enumerate(joints):
        M = np.eye(4)
        M[:3, :3] = R[k]
        M[:3, 3] = root_t if k == 0 else gltf["nodes"][n]["translation"]
        local[n] = M
    parent = {c: n for n in range(len(gltf["nodes"])) for c in gltf["nodes"][n].get("children", [])}
    world = {}
    for n in joints:  # parents come first in the skin's order here
        world[n] = local[n] if n not in parent else world[parent[n]] @ local[n]
    ibm = accessor(gltf["skins"][0]["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    skin = np.stack([world[n] @ ibm[k] for k, n in enumerate(joints)])
    prim = gltf["meshes"][0]["primitives"][0]
    pos = accessor(prim["attributes"]["POSITION"]).astype(np.float64)
    J, W = accessor(prim["attributes"]["JOINTS_0"]), accessor(prim["attributes"]["WEIGHTS_0"]).astype(np.float64)
    blended = (W[:, :, None, None] * skin[J]).sum(1)
    return (blended[:, :3, :3] @ pos[:, :, None])[:, :, 0] + blended[:, :3, 3]


def read_bvh(path):
    """-> (joint names in file order, frame count, frame time, values (frames, channels))."""
    lines = path.read_text().splitlines()
    names = [line.split()[1] for line in lines if line.strip().split()[:1] in (["ROOT"], ["JOINT"])]
    m = lines.index("MOTION")
    frames = int(lines[m + 1].split(":")[1])
    frame_time = float(lines[m + 2].split(":")[1])
    values = np.array([[float(v) for v in line.split()] for line in lines[m + 3 :]])
    assert values.shape == (frames, 6 + 3 * (len(names) - 1))
    return names, frames, frame_time, values


def zxy_matrix(angles_deg):
    z, x, y = np.radians(np.asarray(angles_deg, np.float64)).T
    c, s = np.cos, np.sin
    Rz = np.array([[c(z), -s(z), 0 * z], [s(z), c(z), 0 * z], [0 * z, 0 * z, 1 + 0 * z]]).transpose(2, 0, 1)
    Rx = np.array([[1 + 0 * x, 0 * x, 0 * x], [0 * x, c(x), -s(x)], [0 * x, s(x), c(x)]]).transpose(2, 0, 1)
    Ry = np.array([[c(y), 0 * y, s(y)], [0 * y, 1 + 0 * y, 0 * y], [-s(y), 0 * y, c(y)]]).transpose(2, 0, 1)
    return Rz @ Rx @ Ry


def test_euler_angles_rebuild_their_rotations():
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat

    R = axis_angle_to_rotmat(torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5).numpy()
    np.testing.assert_allclose(zxy_matrix(euler_zxy(R)), R, atol=1e-9)


def test_each_track_plays_back_as_the_npz_says(astronaut_clip, anny_body):
    """The astronaut's track as an animated GLB and a BVH, read back: one keyframe per frame she was
    seen in, every joint, the first and last poses those of the npz; the GLB's skinned mesh is
    the body model's (Y up), the BVH's root where the npz's root joint is, in centimetres."""
    _, _, out, _ = astronaut_clip
    d = np.load(out / "clip.npz")
    rows = np.flatnonzero(d["track_id"] == 0)
    J = d["rotmat"].shape[1]
    gltf, accessor = read_glb(out / "clip_track0.glb")
    times = accessor(gltf["animations"][0]["samplers"][0]["input"])[:, 0]
    np.testing.assert_allclose(times, d["time"][rows], atol=1e-6)
    assert len(gltf["skins"][0]["joints"]) == J == anny_body.num_joints
    names, frames, frame_time, values = read_bvh(out / "clip_track0.bvh")
    assert frames == len(rows) and sorted(names) == sorted(anny_body.joint_names) and frame_time == pytest.approx(0.1)
    order = [anny_body.joint_names.index(n) for n in names]
    for k in (0, len(rows) - 1):
        i = rows[k]
        expected = d["rotmat"][i].astype(np.float64)
        expected[0] = Y_UP @ expected[0]
        R, root_t = glb_pose(gltf, accessor, k)
        np.testing.assert_allclose(R, expected, atol=1e-4)
        root = Y_UP @ d["pred_joints"][i, 0]  # the root joint, translation applied
        np.testing.assert_allclose(root_t, root, atol=1e-4)
        np.testing.assert_allclose(values[k, :3] / 100, root, atol=1e-4)
        np.testing.assert_allclose(zxy_matrix(values[k, 3:].reshape(-1, 3)), expected[order], atol=1e-4)
        with torch.no_grad():
            body = anny_body(torch.as_tensor(d["rotmat"][i : i + 1]), torch.as_tensor(d["shape"][i : i + 1]),
                             torch.as_tensor(d["global_t"][i : i + 1]))  # fmt: skip
        truth = body.vertices[0].double().numpy() @ Y_UP.T
        skinned = skinned_vertices(gltf, accessor, k)
        few = (anny_body.weights > 0).sum(1).numpy() <= 4  # what four weights a vertex reproduce exactly
        assert few.mean() > 0.95
        np.testing.assert_allclose(skinned[few], truth[few], atol=1e-4)
        assert np.abs(skinned - truth).max() < 0.02
