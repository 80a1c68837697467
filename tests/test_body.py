"""Body models: SMPL built from random SMPL-format files (no SMPL data is needed), and Anny."""

import copy
import os
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse
import torch

from cliffhmr.body import COCO17_NAMES, load_body_model, load_joint_regressor
from cliffhmr.body.anny import ANNY_JOINT_NAMES, CANONICAL_FROM_ANNY, PHENOTYPES, anny_model
from cliffhmr.body.pickle_safe import load_pickle
from cliffhmr.body.smpl import SMPLModel
from cliffhmr.errors import CliffError
from cliffhmr.geometry.rotation import axis_angle_to_rotmat
from smpl_files import SMPL_PARENTS, FakeCh, as_official_pickle, dump_with_fake_chumpy, random_smpl_arrays

COCO = {name: i for i, name in enumerate(COCO17_NAMES)}
ANNY = {name: i for i, name in enumerate(ANNY_JOINT_NAMES)}


def random_pose(B, J, seed, scale=0.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_rotmat((torch.randn(B, J, 3, generator=g) * scale).to(dtype))


def assert_gradients_match_finite_differences(body, aa, betas, transl, eps=1e-6):
    """Autograd against central differences along random directions, for each input, on a
    scalar that mixes vertices, joints and keypoints. Rotations enter as axis-angle so that
    perturbations stay rotations; the gradient reaches them through rotmats."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        out = body(axis_angle_to_rotmat(aa), betas, transl)
    mix = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (out.vertices, out.joints, out.keypoints)]

    def scalar(aa, betas, transl):
        out = body(axis_angle_to_rotmat(aa), betas, transl)
        return sum((t * w).sum() for t, w in zip((out.vertices, out.joints, out.keypoints), mix))

    inputs = {"aa": aa, "betas": betas, "transl": transl}
    for name, x in inputs.items():
        x = x.detach().requires_grad_(True)
        args = {**inputs, name: x}
        (grad,) = torch.autograd.grad(scalar(**args), x)
        assert grad.abs().sum() > 0, name
        for _ in range(2):
            d = torch.randn(x.shape, generator=g, dtype=x.dtype)
            with torch.no_grad():
                fd = (scalar(**{**args, name: x + eps * d}) - scalar(**{**args, name: x - eps * d})) / (2 * eps)
            torch.testing.assert_close((grad * d).sum(), fd, rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------- SMPL


@pytest.fixture(scope="module")
def smpl_arrays():
    return random_smpl_arrays()


@pytest.fixture(scope="module")
def smpl_npz(smpl_arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.npz"
    np.savez(path, **smpl_arrays)
    return path


@pytest.fixture(scope="module")
def smpl(smpl_npz):
    return load_body_model(smpl_npz)


@pytest.mark.parametrize("protocol", [2, 5])
def test_smpl_pkl_with_chumpy_and_sparse_loads_like_npz(smpl, smpl_arrays, tmp_path, protocol):
    path = tmp_path / "model.pkl"
    dump_with_fake_chumpy(as_official_pickle(smpl_arrays), path, protocol)
    from_pkl = load_body_model(path)
    assert "chumpy" not in sys.modules
    assert isinstance(from_pkl, SMPLModel) and from_pkl.name == "smpl"
    assert from_pkl.parents == SMPL_PARENTS and from_pkl.num_joints == 24 and from_pkl.num_betas == 10
    pkl_buffers, npz_buffers = dict(from_pkl.named_buffers()), dict(smpl.named_buffers())
    assert pkl_buffers.keys() == npz_buffers.keys()
    for key, value in npz_buffers.items():
        assert torch.equal(pkl_buffers[key], value), key


def test_restricted_unpickler_reads_old_protocols_and_csr(tmp_path):
    J = scipy.sparse.random(5, 9, density=0.3, format="csr", random_state=0)
    x = np.arange(6.0).reshape(2, 3)
    path = tmp_path / "old.pkl"
    dump_with_fake_chumpy({"x": FakeCh(x), "J": J, "s": np.float64(2.5)}, path, protocol=0)
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["x"], x)
    np.testing.assert_array_equal(loaded["J"], J.toarray())
    assert loaded["s"] == 2.5


def test_smpl_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Payload()}, protocol=2))
    with pytest.raises(CliffError, match=r"evil\.pkl.*system"):
        load_body_model(path)
    assert not marker.exists()


def test_smpl_pickle_with_unknown_class_is_refused(tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.")
    with pytest.raises(CliffError, match=r"odd\.pkl.*collections\.OrderedDict"):
        load_body_model(path)


def test_smpl_zero_pose_and_betas_give_the_template(smpl, smpl_arrays):
    transl = torch.tensor([[0.1, -0.2, 3.0]])
    out = smpl(torch.eye(3).expand(1, 24, 3, 3), torch.zeros(1, 10), transl)
    v_template = torch.as_tensor(smpl_arrays["v_template"])
    torch.testing.assert_close(out.vertices[0], v_template + transl)
    J = torch.as_tensor(smpl_arrays["J_regressor"], dtype=torch.float32)
    torch.testing.assert_close(out.joints[0], J @ v_template + transl)


def test_smpl_joints_are_regressed_from_the_shaped_mesh(smpl, smpl_arrays):
    betas = torch.randn(2, 10, generator=torch.Generator().manual_seed(1))
    out = smpl(torch.eye(3).expand(2, 24, 3, 3), betas)
    shapedirs = torch.as_tensor(smpl_arrays["shapedirs"][:, :, :10])
    expected = torch.as_tensor(smpl_arrays["v_template"]) + torch.einsum("vcl,bl->bvc", shapedirs, betas)
    torch.testing.assert_close(out.vertices, expected, atol=1e-5, rtol=1e-5)
    J = torch.as_tensor(smpl_arrays["J_regressor"], dtype=torch.float32)
    torch.testing.assert_close(out.joints, J @ out.vertices, atol=1e-5, rtol=1e-5)


def test_smpl_global_rotation_turns_everything_about_the_root(smpl):
    rotmats, betas = random_pose(2, 24, seed=2), torch.randn(2, 10, generator=torch.Generator().manual_seed(3))
    R = random_pose(2, 1, seed=4, scale=1.0)[:, 0]
    a = smpl(rotmats, betas)
    turned = rotmats.clone()
    turned[:, 0] = R @ rotmats[:, 0]
    b = smpl(turned, betas)
    root = a.joints[:, :1]
    torch.testing.assert_close(b.joints[:, :1], root)
    for x, y in ((a.vertices, b.vertices), (a.joints, b.joints), (a.keypoints, b.keypoints)):
        torch.testing.assert_close(y - root, (x - root) @ R.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_smpl_skinning_to_the_root_only_is_rigid():
    body = SMPLModel(random_smpl_arrays(seed=5, rigid_root=True))
    rotmats, transl = random_pose(2, 24, seed=6, scale=1.0), torch.randn(2, 3)
    out = body(rotmats, torch.zeros(2, 10), transl)
    rest = body.v_template
    root = body.J_regressor[0] @ rest
    expected = (rest - root) @ rotmats[:, 0].transpose(1, 2) + root + transl[:, None]
    torch.testing.assert_close(out.vertices, expected, atol=1e-5, rtol=1e-5)


def test_smpl_is_differentiable(smpl):
    body = copy.deepcopy(smpl).double()
    g = torch.Generator().manual_seed(8)
    aa = torch.randn(2, 24, 3, generator=g, dtype=torch.float64) * 0.4
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    assert_gradients_match_finite_differences(body, aa, betas, torch.randn(2, 3, generator=g, dtype=torch.float64))


def test_smpl_coco_keypoints(smpl):
    out = smpl(random_pose(1, 24, seed=9), torch.zeros(1, 10))
    v, j, k = out.vertices[0], out.joints[0], out.keypoints[0]
    face = {"nose": 332, "left_eye": 2800, "right_eye": 6260, "left_ear": 583, "right_ear": 4071}
    for name, vertex in face.items():
        torch.testing.assert_close(k[COCO[name]], v[vertex])
    body = {"left_shoulder": 16, "right_wrist": 21, "left_hip": 1, "right_knee": 5, "left_ankle": 7}
    for name, joint in body.items():
        torch.testing.assert_close(k[COCO[name]], j[joint])
    # SMPL-format files with another mesh (e.g. toys): the face keypoints fall back to the head joint.
    toy = SMPLModel(random_smpl_arrays(seed=10, V=300, F=500))
    out = toy(random_pose(1, 24, seed=9), torch.zeros(1, 10))
    torch.testing.assert_close(out.keypoints[0, :5], out.joints[0, 15].expand(5, 3))


def test_load_body_model_finds_files_and_reports_mistakes(smpl_arrays, tmp_path):
    np.savez(tmp_path / "SMPL_FEMALE.npz", **smpl_arrays)
    assert isinstance(load_body_model(tmp_path, gender="female"), SMPLModel)
    with pytest.raises(CliffError, match="SMPL_MALE"):
        load_body_model(tmp_path, gender="male")
    with pytest.raises(CliffError, match="gender"):
        load_body_model(tmp_path, gender="other")
    with pytest.raises(CliffError, match="not found"):
        load_body_model(tmp_path / "nowhere.pkl")
    (tmp_path / "model.obj").write_text("")
    with pytest.raises(CliffError, match=r"\.pkl or \.npz"):
        load_body_model(tmp_path / "model.obj")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in smpl_arrays.items() if k != "posedirs"})
    with pytest.raises(CliffError, match="missing posedirs"):
        load_body_model(tmp_path / "partial.npz")
    np.savez(tmp_path / "bad.npz", **{**smpl_arrays, "weights": smpl_arrays["weights"][:, :10]})
    with pytest.raises(CliffError, match="weights"):
        load_body_model(tmp_path / "bad.npz")


def test_joint_regressor(smpl, tmp_path):
    np.save(tmp_path / "J_regressor_h36m.npy", np.full((17, 6890), 1 / 6890))
    regressor = load_joint_regressor(tmp_path / "J_regressor_h36m.npy")
    vertices = smpl(torch.eye(3).expand(2, 24, 3, 3), torch.zeros(2, 10)).vertices
    expected = vertices.mean(1, keepdim=True).expand(2, 17, 3)
    torch.testing.assert_close(smpl.regress(vertices, regressor), expected)
    with pytest.raises(CliffError, match="6890"):
        smpl.regress(vertices, regressor[:, :100])
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(CliffError, match="K, V"):
        load_joint_regressor(tmp_path / "flat.npy")
    with pytest.raises(CliffError, match="no such joint regressor file"):
        load_joint_regressor(tmp_path / "missing.npy")
    # For a body and a row count (H36M's 17, SPIN's extra 9): the shape is checked when loaded.
    assert load_joint_regressor(tmp_path / "J_regressor_h36m.npy", smpl, rows=17).shape == (17, 6890)
    with pytest.raises(CliffError, match=r"shape \(9, 6890\) for the smpl body, got \(17, 6890\)"):
        load_joint_regressor(tmp_path / "J_regressor_h36m.npy", smpl, rows=9)
    np.save(tmp_path / "short.npy", np.zeros((17, 100)))
    with pytest.raises(CliffError, match=r"\(17, 6890\)"):
        load_joint_regressor(tmp_path / "short.npy", smpl, rows=17)


# ---------------------------------------------------------------- Anny


def rest(body, betas=None):
    B = 1 if betas is None else betas.shape[0]
    eye = torch.eye(3, dtype=body.v_template.dtype).expand(B, body.num_joints, 3, 3)
    with torch.no_grad():
        return body(eye, torch.zeros(B, body.num_betas) if betas is None else betas)


def height(out):
    return out.vertices[..., 1].amax(-1) - out.vertices[..., 1].amin(-1)


def test_anny_interface(anny_body):
    assert anny_body.name == "anny" and anny_body.num_joints == 20 and anny_body.num_betas == 6
    assert anny_body.joint_names == ANNY_JOINT_NAMES
    parents = anny_body.parents
    assert parents[0] == -1 and all(0 <= p < j for j, p in enumerate(parents) if j)
    assert [ANNY_JOINT_NAMES[p] for p in parents[1:4]] == ["root"] * 3
    assert ANNY_JOINT_NAMES[parents[ANNY["wrist.L"]]] == "lowerarm01.L"
    assert anny_body.faces.shape == (27420, 3) and int(anny_body.faces.max()) == anny_body.num_vertices - 1
    out = anny_body(random_pose(3, 20, seed=0), torch.zeros(3, 6), torch.zeros(3, 3))
    assert out.vertices.shape == (3, 13718, 3) and out.joints.shape == (3, 20, 3) and out.keypoints.shape == (3, 17, 3)
    assert anny_body.regress(out.vertices, torch.full((4, 13718), 1 / 13718)).shape == (3, 4, 3)


def test_anny_rest_pose_is_upright_in_the_canonical_frame(anny_body):
    out = rest(anny_body)
    v, j, k = out.vertices[0], out.joints[0], out.keypoints[0]
    assert 1.5 < float(height(out)) < 1.9
    torch.testing.assert_close(j[0], torch.zeros(3))  # the pelvis at the origin
    assert j[ANNY["head"], 1] > j[ANNY["spine01"], 1] > j[0, 1] > j[ANNY["lowerleg01.L"], 1] > j[ANNY["foot.L"], 1]
    assert k[COCO["nose"], 2] > k[COCO["left_ear"], 2] + 0.05  # facing +Z
    assert k[COCO["nose"], 1] > k[COCO["left_shoulder"], 1] > k[COCO["left_hip"], 1] > k[COCO["left_knee"], 1]
    for name in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):  # left side at +X
        assert k[COCO[f"left_{name}"], 0] > 0.02 and k[COCO[f"right_{name}"], 0] < -0.02
    assert all(j[i, 0] > 0.02 for n, i in ANNY.items() if n.endswith(".L"))
    assert v[:, 1].min() < j[ANNY["foot.L"], 1] - 0.05  # soles below the ankles
    # Outward-facing triangles: the frame change kept the handedness.
    tri = v[anny_body.faces]
    assert torch.linalg.det(tri).sum() / 6 > 0.03  # signed volume, m^3


def test_anny_betas_are_phenotype_offsets(anny_body):
    h = PHENOTYPES.index("height")
    betas = torch.zeros(4, 6)
    betas[:, h] = torch.tensor([-0.3, 0.0, 0.3, 5.0])
    heights = height(rest(anny_body, betas))
    assert heights[0] < heights[1] < heights[2] - 0.05
    at_limit = torch.zeros(1, 6)
    at_limit[0, h] = 0.5
    torch.testing.assert_close(heights[3], height(rest(anny_body, at_limit))[0])  # clamped to the valid range
    female, male = (float(height(rest(load_body_model("anny", gender=g)))) for g in ("female", "male"))
    assert female < male


def test_anny_gradients_match_finite_differences(anny_body):
    body = copy.deepcopy(anny_body).double()
    g = torch.Generator().manual_seed(1)
    aa = torch.randn(1, 20, 3, generator=g, dtype=torch.float64) * 0.4
    # Phenotypes interpolate piecewise-linearly between targets: stay off the kinks (0.5 + beta
    # not on an anchor) so that central differences are exact.
    betas = torch.tensor([[0.11, -0.07, 0.13, -0.09, 0.17, 0.05]], dtype=torch.float64)
    assert_gradients_match_finite_differences(body, aa, betas, torch.randn(1, 3, generator=g, dtype=torch.float64))


def test_anny_root_rotation_turns_everything_about_the_root(anny_body):
    rotmats, betas, transl = random_pose(2, 20, seed=3), torch.randn(2, 6) * 0.2, torch.randn(2, 3)
    R = random_pose(2, 1, seed=4, scale=1.0)[:, 0]
    a = anny_body(rotmats, betas, transl)
    turned = rotmats.clone()
    turned[:, 0] = R @ rotmats[:, 0]
    b = anny_body(turned, betas, transl)
    root = transl[:, None]
    torch.testing.assert_close(a.joints[:, :1], root)
    for x, y in ((a.vertices, b.vertices), (a.joints, b.joints), (a.keypoints, b.keypoints)):
        torch.testing.assert_close(y - root, (x - root) @ R.transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("posed", [False, True])
def test_anny_keypoints_sit_on_the_body(anny_body, posed):
    rotmats = random_pose(1, 20, seed=5, scale=0.3) if posed else torch.eye(3).expand(1, 20, 3, 3)
    with torch.no_grad():
        out = anny_body(rotmats, torch.zeros(1, 6))
    v, j, k = out.vertices[0], out.joints[0], out.keypoints[0]
    to_surface = torch.cdist(k, v).amin(1)
    assert to_surface[:5].max() < 0.01  # nose, eyes, ears: on the skin
    assert to_surface.max() < 0.1  # joints: inside the limbs
    near = {"shoulder": "upperarm01", "elbow": "lowerarm01", "wrist": "wrist", "knee": "lowerleg01", "ankle": "foot"}
    for keypoint, joint in near.items():
        for side, suffix in (("left", "L"), ("right", "R")):
            assert (k[COCO[f"{side}_{keypoint}"]] - j[ANNY[f"{joint}.{suffix}"]]).norm() < 0.04, (keypoint, side)


def test_anny_matches_annys_own_skinning(anny_body):
    """Against Anny's own forward pass (its 'world-orient' pose parameterisation, float64):
    each bone takes the world rotation of its nearest posed joint times its rest orientation."""
    body = copy.deepcopy(anny_body).double()
    model = anny_model()
    B = 2
    rotmats = random_pose(B, 20, seed=6, dtype=torch.float64)
    betas = torch.randn(B, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.3
    with torch.no_grad():
        ours = body(rotmats, betas)
        phenotype = {name: body.phenotype(betas)[:, i] for i, name in enumerate(PHENOTYPES)}
        world = [rotmats[:, 0]]
        for j in range(1, 20):
            world.append(world[body.parents[j]] @ rotmats[:, j])
        C = CANONICAL_FROM_ANNY
        world = C.T @ torch.stack(world, 1) @ C  # in Anny's frame
        bones = [model.bone_labels.index(name) for name in ANNY_JOINT_NAMES]
        owner = []
        for b in range(len(model.bone_labels)):
            while b not in bones:
                b = model.bone_parents[b]
            owner.append(bones.index(b))
        rest_orientations = model(phenotype_kwargs=phenotype)["rest_bone_poses"][..., :3, :3]
        deltas = torch.eye(4, dtype=torch.float64).repeat(B, len(owner), 1, 1)
        deltas[..., :3, :3] = world[:, owner] @ rest_orientations  # the root's head stays at 0
        theirs = model(pose_parameters=deltas, phenotype_kwargs=phenotype, pose_parameterization="world-orient")
    torch.testing.assert_close(ours.vertices, theirs["vertices"] @ C.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.joints, theirs["bone_poses"][:, bones, :3, 3] @ C.T, atol=1e-6, rtol=0)


def test_anny_blend_coefficients_match_annys_own(anny_body):
    from anny.models.phenotype import make_phenotype_anchors, phenotype_blendshape_weights

    from cliffhmr.body.anny import anny_model

    phenotype = anny_body.phenotype(torch.randn(8, 6, generator=torch.Generator().manual_seed(3)) * 0.4)
    reference = phenotype_blendshape_weights(
        phenotype.double(), anny_body.phenotype_labels, make_phenotype_anchors(torch.float64),
        anny_model().stacked_phenotype_blend_shapes_mask.double(), extrapolate=False,
    ) @ anny_body.blend_projection.double()  # fmt: skip
    torch.testing.assert_close(anny_body.blend_coefficients(phenotype), reference.float(), atol=1e-6, rtol=0)


# Keypoints from the skinned mesh against another path to them (metres): float32 sums taken in
# another order, as another CPU's kernels take them, differ by up to 2e-5.
SKINNED_ATOL = 5e-5

def test_anny_keypoints_only_equal_mesh_keypoints(anny_body):
    """The fit's keypoints without the mesh are the regressor applied to the skinned mesh, for
    any pose and shape (shapes beyond the valid range too), and so are their gradients."""
    from cliffhmr.synthetic.scenes import sample_rotmats

    gen = torch.Generator().manual_seed(4)
    rot = sample_rotmats(anny_body, 6, gen)
    betas = (torch.randn(6, 6, generator=gen) * 0.3).requires_grad_()
    transl = torch.randn(6, 3, generator=gen)
    full = anny_body(rot, betas, transl).keypoints
    fast = anny_body.keypoints_only(rot, betas, transl)
    torch.testing.assert_close(fast, full, atol=SKINNED_ATOL, rtol=0)
    weights = torch.randn(full.shape, generator=gen)
    grads = [torch.autograd.grad((weights * k).sum(), betas)[0] for k in (full, fast)]
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model", ["anny", "smpl"])
def test_the_root_rotation_turns_the_body_about_its_root_joint(model, anny_body):
    """What the fit's torso-only steps rely on: a body's keypoints under root rotation R0 and
    translation t are its keypoints with an identity root, turned by R0 about `root_position`
    and moved by t. Anny's root is at the origin for every shape; SMPL's is not."""
    from cliffhmr.body.base import BodyModel
    from cliffhmr.synthetic.scenes import sample_rotmats

    body = anny_body if model == "anny" else SMPLModel(random_smpl_arrays(seed=10, V=300, F=500))
    gen = torch.Generator().manual_seed(7)
    rot = sample_rotmats(body, 5, gen) if model == "anny" else random_pose(5, 24, seed=7)
    betas, transl = torch.randn(5, body.num_betas, generator=gen) * 0.3, torch.randn(5, 3, generator=gen)
    upright = rot.clone()
    upright[:, 0] = torch.eye(3)
    pivot = body.root_position(betas)[:, None]
    torch.testing.assert_close(pivot[:, 0], BodyModel.root_position(body, betas), atol=1e-6, rtol=0)
    turned = (body.keypoints_only(upright, betas) - pivot) @ rot[:, 0].transpose(1, 2) + pivot + transl[:, None]
    torch.testing.assert_close(turned, body(rot, betas, transl).keypoints, atol=SKINNED_ATOL, rtol=0)
    if model == "smpl":
        assert pivot.abs().max() > 0.01  # the case an origin-only shortcut would get wrong


def test_forward_kinematics_by_levels_equals_joint_by_joint_chaining():
    """A second computation: chain each joint onto its parent one at a time (G_j = G_p R_j,
    p_j = p_p + G_p (rest_j - rest_p)), on a branching tree given in non-level order."""
    from cliffhmr.body.base import forward_kinematics
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat

    parents = [-1, 0, 0, 1, 2, 3, 1, 6, 4, 0]
    gen = torch.Generator().manual_seed(0)
    R = axis_angle_to_rotmat(torch.randn(2, len(parents), 3, generator=gen))
    rest = torch.randn(2, len(parents), 3, generator=gen)
    posed, transforms = forward_kinematics(R, rest, parents)
    for b in range(2):
        G, p = {0: R[b, 0]}, {0: rest[b, 0]}
        for j in range(1, len(parents)):
            q = parents[j]
            G[j] = G[q] @ R[b, j]
            p[j] = p[q] + G[q] @ (rest[b, j] - rest[b, q])
        for j in range(len(parents)):
            torch.testing.assert_close(posed[b, j], p[j], atol=1e-5, rtol=0)
            torch.testing.assert_close(transforms[b, j, :, :3], G[j], atol=1e-5, rtol=0)
            x = torch.randn(3, generator=gen)  # a point attached to joint j
            torch.testing.assert_close(transforms[b, j, :, :3] @ x + transforms[b, j, :, 3], G[j] @ (x - rest[b, j]) + p[j], atol=1e-5, rtol=0)
