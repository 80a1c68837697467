"""cliffhmr/perception/track.py: the Hungarian method and the tracker, on synthetic boxes and keypoints."""

import itertools

import numpy as np

from cliffhmr.perception.leftright import swap_left_right
from cliffhmr.perception.track import Tracker, TrackerConfig, keypoint_similarity, linear_assignment


def _brute_force(cost: np.ndarray) -> float:
    """The least total cost of matching min(N, M) rows and columns, by trying every matching."""
    n, m = cost.shape
    if n <= m:
        return min(cost[range(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return min(cost[list(p), range(m)].sum() for p in itertools.permutations(range(n), m))


def test_linear_assignment_finds_the_cheapest_matching():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 3), (4, 6), (6, 4), (5, 5), (2, 7), (7, 1)]:
        for _ in range(20):
            cost = rng.normal(size=shape) * rng.choice([1, 100])
            cost[rng.random(shape) < 0.2] = 0.0  # ties
            pairs = linear_assignment(cost)
            assert len(pairs) == min(shape)
            assert len(set(pairs[:, 0])) == len(pairs) and len(set(pairs[:, 1])) == len(pairs)
            assert np.isclose(cost[pairs[:, 0], pairs[:, 1]].sum(), _brute_force(cost)), cost
    assert linear_assignment(np.zeros((0, 3))).shape == (0, 2)


def _person(cx: float, cy: float, h: float = 200.0, facing: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A box and COCO-17 keypoints of a standing person centred at (cx, cy), `h` pixels tall;
    facing=-1 is the same person seen from behind (left and right exchanged in the image)."""
    x = np.array([0, 5, -5, 10, -10, 20, -20, 30, -30, 35, -35, 12, -12, 13, -13, 14, -14]) * facing * h / 200
    y = np.array([-90, -95, -95, -92, -92, -60, -60, -25, -25, 5, 5, 0, 0, 45, 45, 90, 90]) * h / 200
    kp = np.stack((cx + x, cy + y, np.full(17, 0.9)), -1)
    box = np.array([cx - 0.25 * h, cy - 0.5 * h, cx + 0.25 * h, cy + 0.5 * h, 0.9])
    return box, kp


def test_two_people_crossing_keep_their_ids():
    """A walks right, B walks left, in front of one another at the middle; while they overlap
    the detector sees one box (the front person) for three frames, and a frame is missed
    entirely. Each keeps the ID it started with, and no third ID appears."""
    tracker = Tracker()
    seen = {"A": set(), "B": set()}
    for f in range(40):
        t = f / 30
        a, b = _person(300 + 12 * f, 300, facing=1), _person(768 - 12 * f, 310, facing=-1)
        people = {"A": a, "B": b}
        if 18 <= f <= 20:
            people.pop("B")  # hidden behind A
        if f == 25:
            people = {}
        names = list(people)
        rng = np.random.default_rng(f)
        boxes = np.array([people[n][0] + rng.normal(0, 2, 5) * [1, 1, 1, 1, 0] for n in names]).reshape(-1, 5)
        kps = np.array([people[n][1] for n in names]).reshape(-1, 17, 3)
        ids = tracker.update(t, boxes, kps)
        for n, i in zip(names, ids):
            seen[n].add(int(i))
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1 and seen["A"] != seen["B"], seen


def test_a_track_survives_missed_frames_then_ends_and_ids_are_never_reused():
    cfg = TrackerConfig(max_missed=10)
    tracker = Tracker(cfg)
    box, kp = _person(200, 200)
    first = tracker.update(0.0, box[None], kp[None])[0]
    for f in range(1, 11):  # ten frames without the person
        assert len(tracker.update(f / 30, np.zeros((0, 5)), np.zeros((0, 17, 3)))) == 0
    assert tracker.update(11 / 30, box[None], kp[None])[0] == first  # back within the limit: same person
    for f in range(12, 23):  # eleven frames: too long
        tracker.update(f / 30, np.zeros((0, 5)), np.zeros((0, 17, 3)))
    again = tracker.update(23 / 30, box[None], kp[None])[0]
    assert again != first and again > first
    assert [t.id for t in tracker.tracks] == [again]


def test_a_mirrored_reading_stays_on_its_track_and_keypoints_separate_overlapping_people():
    tracker = Tracker()
    box, kp = _person(200, 200)
    tracker.update(0.0, box[None], kp[None])
    moved = kp + [8, 0, 0]
    same = tracker.affinity(1 / 30, box[None], moved[None])
    assert same[0, 0] > 0.9
    np.testing.assert_array_equal(tracker.affinity(1 / 30, box[None], swap_left_right(moved)[None]), same)
    # Two people in the same box, one with the arms raised: only their keypoints tell them apart.
    box, down = _person(400, 300)
    up = down.copy()
    up[[7, 8, 9, 10], 1] -= 120  # elbows and wrists above the head
    t2 = Tracker()
    ids = t2.update(0.0, np.stack([box, box]), np.stack([down, up]))
    again = t2.update(1 / 30, np.stack([box, box]), np.stack([up, down]))
    np.testing.assert_array_equal(again, ids[::-1])


def test_keypoint_similarity_is_one_for_the_same_points_and_falls_with_distance():
    _, kp = _person(100, 100)
    area = np.array([100.0 * 200.0])
    same = keypoint_similarity(kp[None], kp[None], area)[0, 0]
    moved = kp.copy()
    moved[:, 0] += 10
    farther = kp.copy()
    farther[:, 0] += 30
    s10, s30 = keypoint_similarity(kp[None], moved[None], area)[0, 0], keypoint_similarity(kp[None], farther[None], area)[0, 0]
    assert same == 1.0 and 1.0 > s10 > s30 > 0
    # COCO's scale: with only the nose seen (sigma 0.026) in a box of area 100^2, a shift of
    # sqrt(2 ln 2) * 100 * 2 * 0.026 = 6.12 px halves the similarity.
    nose = np.zeros((17, 3))
    nose[0] = [50, 50, 1]
    shifted = nose + [np.sqrt(2 * np.log(2)) * 100 * 2 * 0.026, 0, 0]
    assert np.isclose(keypoint_similarity(nose[None], shifted[None], np.array([1e4]))[0, 0], 0.5)
    unseen = kp.copy()
    unseen[:, 2] = 0
    assert np.isnan(keypoint_similarity(kp[None], unseen[None], area)[0, 0])
