"""cliffhmr/perception/leftright.py: whole-body left/right errors of the keypoint detector, found by a second
model in one image and fixed along a track."""

from pathlib import Path

import numpy as np

from cliffhmr.body import COCO17_NAMES
from cliffhmr.body.prior import mirror_names
from cliffhmr.perception.leftright import COCO17_MIRROR, consistent_left_right, mirror_world, mirrored_against, swap_left_right

DATA = Path(__file__).parent / "data"


def test_mirror_table_pairs_coco_names():
    assert list(COCO17_MIRROR) == mirror_names(list(COCO17_NAMES))
    k = np.arange(17 * 3, dtype=float).reshape(17, 3)
    np.testing.assert_array_equal(swap_left_right(swap_left_right(k)), k)


def _walker(T: int, seed: int = 0) -> np.ndarray:
    """(T, 17, 3) a front-facing person drifting across the image, left arm raised, right arm down."""
    x = np.array([0, 8, -8, 15, -15, 30, -30, 45, -40, 55, -42, 20, -20, 22, -22, 24, -24], float)
    y = np.array([-90, -95, -95, -90, -90, -60, -60, -90, -20, -120, 20, 30, 30, 90, 90, 150, 150], float)
    t = np.arange(T)[:, None]
    rng = np.random.default_rng(seed)
    pts = np.stack((400 + 3 * t + x, 300 + 0.5 * t + y + rng.normal(0, 1.5, (T, 17))), -1)
    return np.concatenate((pts, np.full((T, 17, 1), 0.9)), -1)


def test_mirrored_runs_are_found_even_when_the_track_starts_on_one():
    truth = _walker(60)
    mirrored = np.zeros(60, bool)
    mirrored[[0, 1, 2, 40]] = True  # the first frames, and a single frame
    mirrored[15:28] = True  # a run
    raw = np.where(mirrored[:, None, None], swap_left_right(truth), truth)
    raw[31:34] = 0.0  # the person missed for three frames
    swap = consistent_left_right(raw)
    present = np.ones(60, bool)
    present[31:34] = False
    np.testing.assert_array_equal(swap[present], mirrored[present])
    assert not swap[~present].any()
    fixed = np.where(swap[:, None, None], swap_left_right(raw), raw)
    np.testing.assert_array_equal(fixed[present], truth[present])


def test_a_consistent_track_is_left_alone():
    for k in (_walker(30), swap_left_right(_walker(30))):
        assert not consistent_left_right(k).any()


def test_blazepose_mirror_errors_on_a_real_video_are_undone():
    """BlazePose on the pose2sim demo's front view cam02 (100 frames; a man facing the camera
    throughout, checked by eye): left shoulder and hip are image-right of the right ones in a
    front view. BlazePose has them mirrored in 37 frames; none after the fix."""
    raw = np.load(DATA / "pose2sim_cam02_blazepose.npz")["keypoints"]

    def mirrored(k):
        return (k[:, 5, 0] - k[:, 6, 0]) + (k[:, 11, 0] - k[:, 12, 0]) < 0

    assert mirrored(raw).sum() == 37
    swap = consistent_left_right(raw)
    fixed = np.where(swap[:, None, None], swap_left_right(raw), raw)
    assert mirrored(fixed).sum() == 0


def test_a_reference_reading_the_body_the_other_way_flips_it():
    """Person 0 read the way the reference reads it, person 1 mirrored, person 2 seen from the
    side (left and right 2 px apart: either labelling is as near, so no flip), person 3 unseen by
    the reference, person 4 mirrored but the reference sure of only 7 keypoints (too few to
    overrule)."""
    front = _walker(1)[0]
    side = front.copy()  # arms down and legs together, seen side-on: each pair 2 px apart
    side[:, 0] = 400 + np.sign(np.arange(17) % 2 - 0.5) * 1.0  # left +1 px, right -1 px, nose -1 px
    side[:, 1] = 0.5 * (front[:, 1] + swap_left_right(front)[:, 1])
    people = np.stack([front, swap_left_right(front), side, front, swap_left_right(front)])
    reference = np.stack([front, front, swap_left_right(side), front, front])
    reference[3, :, 2] = 0.1
    reference[4, 7:, 2] = 0.1
    reference[:, :, :2] += np.random.default_rng(0).normal(0, 2.0, (5, 17, 2))
    np.testing.assert_array_equal(mirrored_against(people, reference), [False, True, False, False, False])


def test_mirror_world_is_the_body_reflected_through_the_image_plane():
    """A body facing the camera (nose in front of the hips, its left shoulder image-right) read
    as facing away: labels exchanged and depth reflected. mirror_world undoes it, twice is nothing."""
    facing = np.zeros((17, 3))
    facing[0] = [0.0, -0.6, -0.12]  # nose: up, towards the camera
    facing[5], facing[6] = [0.18, -0.45, 0.0], [-0.18, -0.45, 0.0]  # left shoulder at +x
    facing[11], facing[12] = [0.1, 0.0, 0.02], [-0.1, 0.0, -0.02]
    read_away = swap_left_right(facing) * np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(mirror_world(read_away), facing)
    np.testing.assert_allclose(mirror_world(mirror_world(facing)), facing)


def _front_view_mirrored(coco: np.ndarray) -> bool:
    """A person facing the camera has the left shoulder and hip image-right of the right ones."""
    return bool((coco[5, 0] - coco[6, 0]) + (coco[11, 0] - coco[12, 0]) < 0)


def test_movenet_undoes_blazepose_mirror_errors_in_single_images():
    """Two real frames of people facing the camera (checked by eye) that BlazePose reads mirrored;
    with MoveNet's check (the default) the labels, and the world landmarks' depth, come out right."""
    from PIL import Image

    from cliffhmr.perception.detect import PersonDetector
    from cliffhmr.perception.blazepose import PoseEstimator

    detector, alone, checked = PersonDetector(), PoseEstimator(check_left_right=False), PoseEstimator()
    for name in ("sports2d_f070.jpg", "pose2sim_cam02_f050.jpg"):
        image = np.asarray(Image.open(DATA / name).convert("RGB"))
        box = detector(image)[:1]
        assert _front_view_mirrored(alone(image, box).coco[0]), name  # the error this guards against
        fixed = checked(image, box)
        assert not _front_view_mirrored(fixed.coco[0]), name
        hips_z = fixed.world[0, [11, 12], 2].mean()
        assert fixed.world[0, 0, 2] < hips_z, name  # the nose in front of the hips
