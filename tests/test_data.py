"""npz datasets: validation messages, augmentation consistency, the sample stream, the synthetic generator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from cliffhmr.data.augment import AugmentConfig, flip_smpl_pose
from cliffhmr.data.datasets import DatasetSpec, MixSampler, NpzDataset
from cliffhmr.data.joints import J24_FLIP_PERM, J24_HIPS
from cliffhmr.data.npz_format import load_annotations
from cliffhmr.errors import CliffError
from cliffhmr.geometry.rotation import axis_angle_to_rotmat, rotmat_to_axis_angle
from cliffhmr.perception import crop

W, H, F = 320, 240, 300.0


def _symmetric_points(seed: int = 0) -> np.ndarray:
    """(24, 3) body-frame points whose mirror image (x -> -x) is their J24 left/right permutation."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.3, (24, 3))
    for k, m in enumerate(J24_FLIP_PERM):
        if m == k:
            p[k, 0] = 0.0
        elif m > k:
            p[m] = p[k] * [-1, 1, 1]
    return p


def _write_dataset(tmp_path, n: int = 4, **changes) -> DatasetSpec:
    """n rows of one person, seen off-centre by a camera with focal F: S, part and pose agree exactly."""
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir(exist_ok=True)
    p = _symmetric_points()
    rows = {k: [] for k in ("imgname", "center", "scale", "part", "S", "pose", "shape", "focal_l")}
    for i in range(n):
        name = f"img/{i}.png"
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(tmp_path / name)
        aa = rng.normal(0, 0.8, 3)
        R = axis_angle_to_rotmat(torch.from_numpy(aa)).numpy()
        t = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-0.8, 0.8), 5.0])
        S = p @ R.T + t
        uv = S[:, :2] / S[:, 2:] * F + [W / 2, H / 2]
        pose = np.zeros(72)
        pose[:3] = aa
        pose[3:] = rng.normal(0, 0.2, 69)
        rows["imgname"].append(name)
        rows["center"].append(uv.mean(0))
        rows["scale"].append(np.ptp(uv[:, 1]) * 1.2 / 200)
        rows["part"].append(np.concatenate((uv, np.ones((24, 1))), 1))
        rows["S"].append(np.concatenate((S, np.ones((24, 1))), 1))
        rows["pose"].append(pose)
        rows["shape"].append(rng.normal(0, 1, 10))
        rows["focal_l"].append(F)
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / "ann.npz", **arrays)
    return DatasetSpec(str(tmp_path / "ann.npz"), str(tmp_path))


# ------------------------------------------------------------------------ validation


def test_valid_file_loads(tmp_path):
    ann = load_annotations(_write_dataset(tmp_path).npz)
    assert len(ann) == 4 and ann.has_smpl.all() and ann.focal[0] == F


def test_missing_key_names_the_file(tmp_path):
    spec = _write_dataset(tmp_path, center=None)
    with pytest.raises(CliffError, match=r"ann\.npz: missing key\(s\) center"):
        load_annotations(spec.npz)


def test_mismatched_lengths_name_the_key(tmp_path):
    spec = _write_dataset(tmp_path, scale=np.ones(3))
    with pytest.raises(CliffError, match=r"ann\.npz: 'scale' has 3 rows but 'imgname' has 4"):
        load_annotations(spec.npz)


def test_wrong_shape_is_reported(tmp_path):
    spec = _write_dataset(tmp_path, part=np.zeros((4, 17, 3)))
    with pytest.raises(CliffError, match=r"'part' must have shape \(N, 24, 3\), got \(4, 17, 3\)"):
        load_annotations(spec.npz)


def test_nan_names_file_and_index(tmp_path):
    S = np.ones((4, 24, 4))
    S[2, 5, 1] = np.nan
    spec = _write_dataset(tmp_path, S=S)
    with pytest.raises(CliffError, match=r"ann\.npz: index 2: NaN or infinite value in 'S'"):
        load_annotations(spec.npz)


def test_non_positive_scale(tmp_path):
    spec = _write_dataset(tmp_path, scale=np.array([1.0, 1.0, 1.0, 0.0]))
    with pytest.raises(CliffError, match=r"index 3: 'scale' must be positive"):
        load_annotations(spec.npz)


def test_missing_image_names_file_index_and_path(tmp_path):
    spec = _write_dataset(tmp_path)
    (tmp_path / "img/2.png").unlink()
    with pytest.raises(CliffError, match=r"ann\.npz: index 2: image not found: .*img/2\.png"):
        NpzDataset(spec)
    ds = NpzDataset(spec, check_images=False)  # found when the sample is read, with the same details
    with pytest.raises(CliffError, match=r"ann\.npz: index 2: .*img/2\.png"):
        ds[(2, 0)]


# ------------------------------------------------------------------------ augmentation


def _mirror_by_name(names) -> list[int]:
    """Each joint's left/right twin, read off the names alone ("left_eye" <-> "right_eye")."""
    twin = [n.replace("left", "#").replace("right", "left").replace("#", "right") for n in names]
    return [list(names).index(t) for t in twin]


def test_mirror_tables_pair_left_and_right_by_name():
    """The flip tables are written out by hand (as SPIN's); the names say what they must be."""
    from cliffhmr.body.smpl import SMPL_JOINT_NAMES
    from cliffhmr.data.joints import J24_NAMES, SMPL_FLIP_PERM

    assert J24_FLIP_PERM == _mirror_by_name(J24_NAMES)
    assert SMPL_FLIP_PERM == _mirror_by_name(SMPL_JOINT_NAMES)
    assert J24_FLIP_PERM[J24_NAMES.index("left_eye")] == J24_NAMES.index("right_eye")


def test_flip_pose_matches_spin_axis_angle_rule():
    aa = torch.randn(24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.7
    flipped = rotmat_to_axis_angle(flip_smpl_pose(axis_angle_to_rotmat(aa)))
    from cliffhmr.data.joints import SMPL_FLIP_PERM

    expected = aa[SMPL_FLIP_PERM] * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(flipped, expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_augmentation_keeps_every_label_consistent(tmp_path, seed):
    """After flip/roll/jitter: S projects onto the keypoints with the sample's camera, the pose
    rotates the body points onto S, and the box is still around the person."""
    spec = _write_dataset(tmp_path)
    cfg = AugmentConfig(flip_prob=0.5, rot_prob=1.0, rot_factor=40.0, occlusion_prob=0.0)
    ds = NpzDataset(spec, cfg)
    p = _symmetric_points()
    s = ds[(seed % 4, seed)]
    S = s["joints3d"][:, :3].double()
    uv = S[:, :2] / S[:, 2:] * s["focal"].double() + s["principal"].double()
    assert torch.allclose(uv, s["keypoints"][:, :2].double(), atol=1e-3)
    R0 = s["rotmat"][0].double()
    body = torch.from_numpy(p - p[0]) @ R0.T
    assert torch.allclose(body, S - S[0], atol=1e-4)
    offset = (s["keypoints"][:, :2].mean(0) - s["center"]).abs().max() / s["b"]
    assert offset < 0.3
    assert s["img"].shape == (3, crop.CROP_HEIGHT, crop.CROP_WIDTH)


def test_crop_follows_the_keypoints(tmp_path):
    """A bright dot drawn at a keypoint shows up in the augmented crop where the labels say it is."""
    spec = _write_dataset(tmp_path, n=1)
    arrays = dict(np.load(spec.npz))
    x, y = np.round(arrays["part"][0, 8, :2]).astype(int)
    arrays["part"][0, 8, :2] = x + 0.5, y + 0.5  # the label sits exactly on the dot's centre pixel (centred on k + 0.5)
    np.savez(spec.npz, **arrays)
    img = np.zeros((H, W, 3), np.uint8)
    img[y - 1 : y + 2, x - 1 : x + 2] = 255
    Image.fromarray(img).save(tmp_path / str(arrays["imgname"][0]))
    cfg = AugmentConfig(rot_prob=1.0, rot_factor=40.0, noise_factor=0.0, occlusion_prob=0.0, flip_prob=0.5)
    ds = NpzDataset(spec, cfg)
    flips, checked = set(), 0
    for seed in range(8):
        s = ds[(0, seed)]
        k = J24_FLIP_PERM[8] if s["flip"] else 8
        expected = crop.image_to_crop(s["keypoints"][None, k : k + 1, :2], s["center"][None], s["b"][None] / 200)[0, 0]
        reach = 1.5 * crop.CROP_HEIGHT / s["b"] + 1  # the 3 x 3 dot's half-width in crop pixels
        if (expected < reach).any() or (expected > torch.tensor([crop.CROP_WIDTH, crop.CROP_HEIGHT]) - reach).any():
            continue  # cut by the crop's edge: its centroid moves inwards
        weight = s["img"].sum(0) - s["img"].sum(0).min()
        ii, jj = torch.meshgrid(torch.arange(crop.CROP_HEIGHT), torch.arange(crop.CROP_WIDTH), indexing="ij")
        found = torch.stack(((weight * (jj + 0.5)).sum(), (weight * (ii + 0.5)).sum())) / weight.sum()
        assert (found - expected).norm() < 0.1, (seed, found, expected)  # a half-pixel slip is 0.5 x the zoom
        flips.add(bool(s["flip"]))
        checked += 1
    assert flips == {True, False} and checked >= 6


def test_training_crops_are_the_inference_crops(tmp_path):
    """Without augmentation a dataset sample's crop is, pixel for pixel, what inference crops from
    the same box (one sampler for both); with a flip it is that crop mirrored."""
    spec = _write_dataset(tmp_path, n=1)
    image = np.asarray(Image.open(tmp_path / "img/0.png"))
    ann = load_annotations(spec.npz)
    center, scale = torch.from_numpy(ann.center), torch.from_numpy(ann.scale)
    inference = crop.normalize(crop.crop_images(image, center, scale))[0]
    torch.testing.assert_close(NpzDataset(spec)[(0, 0)]["img"], inference, atol=1e-4, rtol=0)
    flip_only = AugmentConfig(flip_prob=1.0, rot_prob=0.0, scale_factor=0.0, trans_factor=0.0, noise_factor=0.0, occlusion_prob=0.0)
    mirrored = NpzDataset(spec, flip_only)[(0, 0)]
    assert mirrored["flip"] and mirrored["center"][0] == W - ann.center[0, 0]
    torch.testing.assert_close(mirrored["img"], inference.flip(-1), atol=1e-4, rtol=0)


def test_evaluation_samples_are_deterministic(tmp_path):
    ds = NpzDataset(_write_dataset(tmp_path))
    a, b = ds[(1, 0)], ds[(1, 99)]
    assert torch.equal(a["img"], b["img"]) and not a["flip"] and a["roll"] == 0


# ------------------------------------------------------------------------ sample stream


def test_mix_sampler_ratios_ranks_and_resume():
    sizes, ratios = [10, 1000], [0.25, 0.75]
    full = list(itertools.islice(iter(MixSampler(sizes, ratios, seed=3)), 8000))
    share = np.mean([d == 0 for d, _, _ in full])
    assert abs(share - 0.25) < 0.03
    assert all(0 <= i < sizes[d] for d, i, _ in full)
    r0 = list(itertools.islice(iter(MixSampler(sizes, ratios, 3, rank=0, world=2)), 4000))
    r1 = list(itertools.islice(iter(MixSampler(sizes, ratios, 3, rank=1, world=2)), 4000))
    assert r0 == full[0::2] and r1 == full[1::2]
    resumed = list(itertools.islice(iter(MixSampler(sizes, ratios, 3, start=5000)), 100))
    assert resumed == full[5000:5100]
    assert len({seed for _, _, seed in full}) == len(full)  # every sample draws its own augmentation


def test_mix_sampler_rejects_bad_ratios():
    with pytest.raises(CliffError, match="ratios"):
        MixSampler([5, 5], [0.0, -1.0], seed=0)


# ------------------------------------------------------------------------ synthetic generator


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic
    from cliffhmr.synthetic.toy_smpl import write_toy_smpl
    from cliffhmr.body import load_smpl

    root = tmp_path_factory.mktemp("gen")
    write_toy_smpl(root / "toy_smpl.npz")
    cfg = SyntheticConfig(train=10, test=2, width=240, height=180, seed=5)
    paths = generate_synthetic(root, root / "toy_smpl.npz", cfg)
    return root, paths, load_smpl(str(root / "toy_smpl.npz"), torch.device("cpu")), cfg


def test_flipped_pose_mirrors_the_body(toy):
    """The SMPL pose mirroring matches the mirrored body: J24[perm] with x negated (the toy is symmetric)."""
    from cliffhmr.data.joints import body_to_j24

    body = toy[2]
    aa = torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2)) * 0.5
    R = axis_angle_to_rotmat(aa)
    betas = torch.randn(3, 10, generator=torch.Generator().manual_seed(3))
    a, b = body(R, betas), body(torch.stack([flip_smpl_pose(r) for r in R]), betas)
    ja, jb = body_to_j24(a.joints, a.keypoints), body_to_j24(b.joints, b.keypoints)
    mirrored = ja[:, J24_FLIP_PERM] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored - mirrored[:, 14:15], jb - jb[:, 14:15], atol=1e-5)


def test_generator_writes_consistent_full_frame_labels(toy):
    """Pose, shape and translation reproduce S; S projects onto `part`; people sit anywhere, lenses vary."""
    from cliffhmr.data.joints import body_to_j24

    root, paths, body, cfg = toy
    ann = load_annotations(paths["train"])
    assert len(ann) == 10 and len(load_annotations(paths["test"])) == 2
    posed = body(axis_angle_to_rotmat(torch.from_numpy(ann.pose).reshape(-1, 24, 3)), torch.from_numpy(ann.shape),
                 torch.from_numpy(ann.transl))
    S = torch.from_numpy(ann.S[..., :3])
    assert torch.allclose(body_to_j24(posed.joints, posed.keypoints), S, atol=1e-4)
    uv = S[..., :2] / S[..., 2:] * torch.from_numpy(ann.focal)[:, None, None] + torch.from_numpy(ann.principal)[:, None]
    assert torch.allclose(uv, torch.from_numpy(ann.part[..., :2]), atol=1e-2)
    off_axis = np.degrees(np.arctan(np.linalg.norm(ann.center - ann.principal, axis=1) / ann.focal))
    assert off_axis.max() > 15 and np.ptp(ann.focal) > 20
    img = np.asarray(Image.open(root / ann.imgname[0]))
    assert img.shape == (cfg.height, cfg.width, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("heading_from", ["ray", "axis"])
def test_headings_follow_the_chosen_reference(tmp_path, heading_from):
    """max_yaw 0: people face along the line of sight ("ray") or along the optical axis ("axis"),
    up to the generator's ~7 deg tilt noise. The body's front is canonical +z."""
    from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic
    from cliffhmr.synthetic.toy_smpl import write_toy_smpl

    write_toy_smpl(tmp_path / "toy_smpl.npz")
    cfg = SyntheticConfig(train=8, test=0, width=160, height=120, hfov_deg=(90.0, 100.0), max_yaw_deg=0.0,
                          heading_from=heading_from, seed=3)
    ann = load_annotations(generate_synthetic(tmp_path, tmp_path / "toy_smpl.npz", cfg)["train"])
    front = axis_angle_to_rotmat(torch.from_numpy(ann.pose[:, :3]).double())[:, :, 2]  # where +z ends up
    pelvis = torch.from_numpy(ann.S[:, list(J24_HIPS), :3]).double().mean(1)
    towards_camera = -torch.nn.functional.normalize(pelvis, dim=-1) if heading_from == "ray" else torch.tensor([0.0, 0, -1])
    angle = torch.rad2deg(torch.arccos((front * towards_camera).sum(-1).clamp(-1, 1)))
    assert angle.max() < 30
    off_axis = torch.rad2deg(torch.arccos(torch.nn.functional.normalize(pelvis, dim=-1)[:, 2]))
    assert off_axis.max() > 25  # the two references really differ for these people
    with pytest.raises(CliffError, match="heading_from"):
        SyntheticConfig(heading_from="sideways")
