"""2D keypoints (BlazePose, ONNX) on public-domain photos, and the COCO / OpenPose JSON loaders."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliffhmr.errors import CliffError
from cliffhmr.perception.blazepose import DEFAULT_POSE, DEFAULT_POSE_DETECTOR, PoseEstimator, refine_from_heatmap, warp_square
from cliffhmr.perception.keypoint_files import load_coco_keypoints, load_keypoints_file, load_openpose_keypoints
from cliffhmr.perception.keypoints import COCO17_NAMES, Keypoints

DATA = Path(__file__).parent.parent / "examples"
J = {n: i for i, n in enumerate(COCO17_NAMES)}

# Boxes as the detector gives them (fixed here so these tests do not depend on the detector).
ASTRONAUT_BOX = np.array([[3.0, 33.5, 378.8, 507.9, 0.89]])
HOPPER_BOX = np.array([[1.2, 12.5, 508.8, 600.0, 0.99]])
# Nose positions read off the images by eye.
ASTRONAUT_NOSE = (222, 130)
HOPPER_NOSE = (262, 225)


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"))


@pytest.fixture(scope="module")
def estimator():
    return PoseEstimator()


@pytest.fixture(scope="module")
def astronaut(estimator):
    return estimator(load("astronaut.jpg"), ASTRONAUT_BOX)


@pytest.fixture(scope="module")
def hopper(estimator):
    return estimator(load("grace_hopper.jpg"), HOPPER_BOX)


def test_model_assets_present():
    for p in (DEFAULT_POSE, DEFAULT_POSE_DETECTOR):
        assert p.is_file() and p.stat().st_size < 10 * 2**20


def test_names():
    assert len(COCO17_NAMES) == 17
    assert COCO17_NAMES[0] == "nose" and COCO17_NAMES[5] == "left_shoulder" and COCO17_NAMES[16] == "right_ankle"


def test_output_shapes(astronaut):
    assert isinstance(astronaut, Keypoints) and len(astronaut) == 1
    assert astronaut.coco.shape == (1, 17, 3) and astronaut.coco.dtype == np.float32
    assert astronaut.world.shape == (1, 17, 3) and astronaut.world.dtype == np.float32
    assert astronaut.score.shape == (1,) and astronaut.score[0] > 0.5
    c = astronaut.coco[0, :, 2]
    assert np.all((c >= 0) & (c <= 1))


def assert_upright_facing_camera(kp: np.ndarray, nose_xy, box):
    nose = kp[J["nose"], :2]
    assert np.hypot(*(nose - nose_xy)) < 25, f"nose at {nose}, expected near {nose_xy}"
    sh_y = kp[[J["left_shoulder"], J["right_shoulder"]], 1].mean()
    hip_y = kp[[J["left_hip"], J["right_hip"]], 1].mean()
    eye_y = kp[[J["left_eye"], J["right_eye"]], 1].mean()
    assert eye_y < nose[1] < sh_y < hip_y
    # Facing the camera: the person's left side is on the image right.
    for side in ("shoulder", "eye", "ear", "hip"):
        assert kp[J["left_" + side], 0] > kp[J["right_" + side], 0], side
    # Confident keypoints lie inside the box (5% slack).
    x1, y1, x2, y2 = box[:4]
    sx, sy = 0.05 * (x2 - x1), 0.05 * (y2 - y1)
    conf = kp[:, 2] > 0.5
    assert conf[[J["nose"], J["left_shoulder"], J["right_shoulder"]]].all()
    pts = kp[conf, :2]
    assert np.all((pts[:, 0] > x1 - sx) & (pts[:, 0] < x2 + sx) & (pts[:, 1] > y1 - sy) & (pts[:, 1] < y2 + sy))


def test_astronaut_keypoints(astronaut):
    kp = astronaut.coco[0]
    assert_upright_facing_camera(kp, ASTRONAUT_NOSE, ASTRONAUT_BOX[0])
    # Shoulders are the suit's shoulders, well apart (image is 512 wide).
    assert kp[J["left_shoulder"], 0] - kp[J["right_shoulder"], 0] > 120


def test_hopper_keypoints(hopper):
    kp = hopper.coco[0]
    assert_upright_facing_camera(kp, HOPPER_NOSE, HOPPER_BOX[0])
    # Hips are below the bottom of this head-and-shoulders portrait and the model knows it.
    assert kp[J["left_hip"], 2] < 0.5 and kp[J["right_hip"], 2] < 0.5


@pytest.mark.parametrize("which", ["astronaut", "hopper"])
def test_world_landmarks(which, request):
    w = request.getfixturevalue(which).world[0]
    shoulder_width = np.linalg.norm(w[J["left_shoulder"]] - w[J["right_shoulder"]])
    assert 0.25 < shoulder_width < 0.5
    hips = w[[J["left_hip"], J["right_hip"]]]
    assert np.linalg.norm(hips.mean(0)) < 0.05  # origin between the hips
    assert w[J["nose"], 1] < w[J["left_shoulder"], 1] < hips[:, 1].mean()  # y down
    assert w[J["left_shoulder"], 0] > w[J["right_shoulder"], 0]  # x to the image right
    assert w[J["nose"], 2] < 0  # the face is nearer the camera than the hips (z away)


def test_two_people_rows_follow_boxes(estimator):
    a = load("astronaut.jpg")
    g = Image.open(DATA / "grace_hopper.jpg").convert("RGB")
    s = 512 / g.height
    img = np.concatenate([a, np.asarray(g.resize((round(g.width * s), 512)))], axis=1)
    boxes = np.concatenate([HOPPER_BOX[:, :4] * s + [512, 0, 512, 0], ASTRONAUT_BOX[:, :4]])
    kps = estimator(img, boxes)
    assert kps.coco.shape == (2, 17, 3)
    assert kps.coco[0, J["nose"], 0] > 512 > kps.coco[1, J["nose"], 0]
    assert np.hypot(*(kps.coco[1, J["nose"], :2] - ASTRONAUT_NOSE)) < 25


def test_keypoints_outside_the_image_are_missing(estimator, astronaut):
    # The astronaut cut above her hips (about y 500 in the full photo): BlazePose still places
    # the hips below the edge, with confidence about 0.8. They count as not seen.
    h = 420
    kps = estimator(load("astronaut.jpg")[:h], np.array([[3.0, 33.5, 378.8, h - 1.0]])).coco[0]
    outside = kps[:, 1] > h
    assert outside[[J["left_hip"], J["right_hip"]]].all()
    assert (kps[outside, 2] == 0).all()
    # What stays inside keeps its confidence: the face and shoulders as in the whole photo.
    upper = [J[n] for n in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder")]
    assert (kps[upper, 2] > 0.9).all() and (astronaut.coco[0, upper, 2] > 0.9).all()


def test_outside_missing_by_hand():
    from cliffhmr.perception.keypoints import outside_missing

    kp = np.array([[[5, 5, 0.9], [-1, 5, 0.9], [5, 31, 0.8], [40, 30, 0.7], [np.nan, 5, 0.9], [1e30, 5, 1.0]]])
    np.testing.assert_array_equal(outside_missing(kp, 40, 30)[..., 2], np.float32([[0.9, 0, 0, 0.7, 0, 0]]))
    np.testing.assert_array_equal(outside_missing(kp, 40, 30)[..., :2], kp[..., :2].astype(np.float32))  # only confidences change


def test_unconfirmed_limbs_of_cut_people_by_hand():
    """A 100 px person in a 400 x 300 image: their wrist, confident for the first model, is
    missing only when the person is cut by the border AND the reference neither sees it nor puts
    it within 25 px; the face is never touched."""
    from cliffhmr.perception.keypoints import unconfirmed_missing

    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, :2], kp[0, :, 2] = 150.0, 0.9
    kp[0, 9, :2] = (150.0, 120.0)  # left wrist
    ref = kp.copy()
    ref[0, 9] = (150.0, 170.0, 0.1)  # 50 px away, barely seen
    ref[0, 0] = (150.0, 250.0, 0.1)  # the nose too: not a limb
    inside, cut = np.array([[100.0, 100, 200, 200]]), np.array([[100.0, 200, 200, 300]])  # the second reaches the bottom

    def conf(keypoints, reference, box):
        return unconfirmed_missing(keypoints, reference, box, 400, 300)[0, :, 2]

    assert conf(kp, ref, cut)[9] == 0 and (np.delete(conf(kp, ref, cut), 9) == np.float32(0.9)).all()
    assert conf(kp, ref, inside)[9] == np.float32(0.9)  # wholly in the frame: left alone
    seen, near = ref.copy(), ref.copy()
    seen[0, 9, 2], near[0, 9, 1] = 0.2, 140.0  # the reference sees it (elsewhere) / puts it 20 px away
    assert conf(kp, seen, cut)[9] == np.float32(0.9) and conf(kp, near, cut)[9] == np.float32(0.9)
    left = np.array([[1.0, 100, 101, 200]])  # within 2% of the longer side (2 px) of the left border
    assert conf(kp, ref, left)[9] == 0
    np.testing.assert_array_equal(unconfirmed_missing(kp, ref, cut, 400, 300)[..., :2], kp[..., :2])
    assert unconfirmed_missing(kp[:0], ref[:0], cut[:0], 400, 300).shape == (0, 17, 3)


def test_rotated_person_follows_rotation(estimator, astronaut):
    """A person lying sideways (image turned 90 degrees) gets the same keypoints, turned too."""
    im = Image.fromarray(load("astronaut.jpg")).rotate(90, expand=True)  # counter-clockwise
    # PIL's rotation by +90 (y down): (x, y) -> (y, 512 - x)
    turn = lambda p: np.stack([p[..., 1], 512 - p[..., 0]], axis=-1)
    x1, y1, x2, y2 = ASTRONAUT_BOX[0, :4]
    c = turn(np.array([[x1, y1], [x2, y2]]))
    box = np.array([[c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()]])
    kps = estimator(np.asarray(im), box)
    ref = astronaut.coco[0]
    conf = ref[:, 2] > 0.5
    err = np.hypot(*(kps.coco[0, :, :2] - turn(ref[:, :2].astype(float))).T)
    assert np.median(err[conf]) < 15
    # World landmarks are image-aligned: they turn with the image as well.
    w0, w = astronaut.world[0], kps.world[0]
    turned = np.stack([w0[:, 1], -w0[:, 0], w0[:, 2]], axis=1)
    assert np.median(np.abs(w - turned)) < 0.05


def test_box_crop_fallback_runs():
    kps = PoseEstimator(use_pose_detector=False)(load("astronaut.jpg"), ASTRONAUT_BOX)
    kp = kps.coco[0]
    assert kp.shape == (17, 3)
    assert kp[J["left_shoulder"], 0] > kp[J["right_shoulder"], 0]
    assert kp[J["nose"], 1] < kp[J["left_shoulder"], 1]


def test_empty_and_bad_boxes(estimator):
    img = load("astronaut.jpg")
    empty = estimator(img, np.zeros((0, 5)))
    assert empty.coco.shape == (0, 17, 3) and empty.world.shape == (0, 17, 3)
    with pytest.raises(CliffError, match="box 0 is empty"):
        estimator(img, np.array([[10, 10, 10, 50]]))
    with pytest.raises(CliffError, match="shape"):
        estimator(img, np.array([1, 2, 3]))


def test_missing_model_names_file(tmp_path):
    with pytest.raises(CliffError, match="missing_pose.onnx"):
        PoseEstimator(model_path=str(tmp_path / "missing_pose.onnx"), use_pose_detector=False)(
            load("astronaut.jpg"), ASTRONAUT_BOX
        )


def test_warp_square_mapping():
    # Smooth image: the crop's pixel at crop coordinates (u, v) equals the image at A(u, v).
    yy, xx = np.mgrid[0:200, 0:300]
    img = np.stack([xx * 255 // 299, yy * 255 // 199, np.full_like(xx, 7)], axis=2).astype(np.uint8)
    pil = Image.fromarray(img)
    for side, theta in ((100.0, 0.0), (120.0, 0.4), (180.0, -0.3)):
        crop, a = warp_square(pil, 150.0, 100.0, side, theta, 64)
        for u, v in ((10, 20), (32, 32), (50, 5)):
            x, y = a[:, :2] @ np.array([u + 0.5, v + 0.5]) + a[:, 2]
            for ch in (0, 1):
                assert abs(int(crop[v, u, ch]) - int(img[int(y), int(x), ch])) <= 3
    # Outside the image is black.
    crop, _ = warp_square(pil, 0.0, 0.0, 100.0, 0.0, 32)
    assert crop[:8, :8].max() == 0


def test_refine_from_heatmap_moves_to_peak():
    hm = np.full((64, 64, 2), -10.0, np.float32)
    hm[30, 40, 0] = 10.0  # confident peak for landmark 0 near its regressed point
    hm[10, 10, 1] = -1.0  # landmark 1: window peak sigmoid(-1) = 0.27 < 0.5, so no refinement
    uv = np.array([[41.5 / 64, 31.5 / 64], [10.2 / 64, 10.2 / 64]])
    out = refine_from_heatmap(uv, hm)
    assert np.allclose(out[0], [40 / 64, 30 / 64], atol=1e-3)
    assert np.allclose(out[1], uv[1])  # not confident enough: unchanged


# ------------------------------------------------------------------------------------------
# JSON loaders
# ------------------------------------------------------------------------------------------


def write(tmp_path, name, obj) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def person(offset: float, third=None) -> list:
    """51 numbers: joint j at (offset + j, 100 + j), third value given or 0.9."""
    out = []
    for j in range(17):
        out += [offset + j, 100.0 + j, 0.9 if third is None else third[j]]
    return out


def expected(offset: float, conf) -> np.ndarray:
    j = np.arange(17, dtype=float)
    return np.stack([offset + j, 100 + j, np.broadcast_to(conf, (17,))], axis=1).astype(np.float32)


def test_coco_results_list(tmp_path):
    third = [1.3] + [0.5] * 15 + [-0.1]  # scores outside [0, 1] get clipped
    p = write(tmp_path, "res.json", [
        {"image_id": 397133, "category_id": 1, "keypoints": person(0, third), "score": 0.9},
        {"image_id": 397133, "category_id": 1, "keypoints": person(50), "score": 0.8},
    ])
    k = load_coco_keypoints(p)
    assert k.shape == (2, 17, 3) and k.dtype == np.float32
    exp0 = expected(0, 0.5)
    exp0[0, 2], exp0[16, 2] = 1.0, 0.0
    np.testing.assert_allclose(k[0], exp0)
    np.testing.assert_allclose(k[1], expected(50, 0.9))
    # image_id matched against the image's stem (COCO zero-padded names)
    assert load_coco_keypoints(p, "/photos/000000397133.jpg").shape == (2, 17, 3)
    # A file about one single image is applied to the image it is given with (never silently
    # empty); whether the points fit that image is checked against its size by the pipeline.
    assert load_coco_keypoints(p, "000000000001.jpg").shape == (2, 17, 3)


def test_coco_results_list_several_images(tmp_path):
    p = write(tmp_path, "res.json", [
        {"image_id": 1, "keypoints": person(0)},
        {"image_id": 2, "keypoints": person(10)},
        {"file_name": "c.jpg", "keypoints": [[x, y] for x, y, _ in np.asarray(person(20)).reshape(17, 3)],
         "keypoint_scores": [0.25] * 17},
    ])
    with pytest.raises(CliffError, match="res.json"):
        load_coco_keypoints(p)
    np.testing.assert_allclose(load_coco_keypoints(p, "2.jpg")[0], expected(10, 0.9))
    np.testing.assert_allclose(load_coco_keypoints(p, "some/dir/c.jpg")[0], expected(20, 0.25))


def test_coco_wholebody_takes_body_points(tmp_path):
    wb = person(0) + [5.0, 5.0, 0.5] * 116  # 133 points, body first
    p = write(tmp_path, "wb.json", [
        {"image_id": 3, "keypoints": wb},
        {"image_id": 3, "keypoints": np.asarray(wb).reshape(133, 3)[:, :2].tolist(), "keypoint_scores": [0.4] * 133},
    ])
    k = load_coco_keypoints(p)
    np.testing.assert_allclose(k[0], expected(0, 0.9))
    np.testing.assert_allclose(k[1], expected(0, 0.4))


def test_coco_annotation_file(tmp_path):
    vis = [2] * 10 + [1] * 5 + [0] * 2  # COCO visibility flags -> confidence 1, 1, 0
    p = write(tmp_path, "person_keypoints_val.json", {
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "keypoints": person(0, vis), "num_keypoints": 15},
            {"id": 2, "image_id": 8, "category_id": 1, "keypoints": person(30, vis), "num_keypoints": 15},
            {"id": 3, "image_id": 8, "category_id": 1, "keypoints": [0] * 51, "num_keypoints": 0},
            {"id": 4, "image_id": 8, "category_id": 1, "keypoints": person(60, vis), "iscrowd": 1},
            {"id": 5, "image_id": 8, "category_id": 1, "keypoints": person(90, vis), "num_keypoints": 15},
        ],
        "categories": [{"id": 1, "name": "person"}],
    })
    conf = np.array([1.0] * 15 + [0.0] * 2)
    k = load_coco_keypoints(p, "b.jpg")
    assert k.shape == (2, 17, 3)
    np.testing.assert_allclose(k[0], expected(30, conf))
    np.testing.assert_allclose(k[1], expected(90, conf))
    np.testing.assert_allclose(load_coco_keypoints(p, "/data/val/a.jpg")[0], expected(0, conf))
    with pytest.raises(CliffError, match="person_keypoints_val.json.*2 images"):
        load_coco_keypoints(p)
    with pytest.raises(CliffError, match="no image named 'zzz.jpg'"):
        load_coco_keypoints(p, "zzz.jpg")


def test_openpose_body25(tmp_path):
    flat = []
    for j in range(25):
        flat += [float(j), 100.0 + j, 0.5 if j != 0 else 1.5]
    p = write(tmp_path, "img_keypoints.json", {"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": []},
    ]})
    k = load_openpose_keypoints(p)
    body25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    assert k.shape == (1, 17, 3)
    np.testing.assert_allclose(k[0, :, 0], body25)
    np.testing.assert_allclose(k[0, :, 1], np.array(body25) + 100)
    np.testing.assert_allclose(k[0, :, 2], [1.0] + [0.5] * 16)


def test_openpose_coco18_and_empty(tmp_path):
    people = []
    for off in (0, 1000):
        flat = []
        for j in range(18):
            flat += [off + j, 200.0 + j, 0.0 if j == 17 else 0.75]
        people.append({"pose_keypoints_2d": flat})
    k = load_openpose_keypoints(write(tmp_path, "c18.json", {"people": people}))
    coco18 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])
    assert k.shape == (2, 17, 3)
    np.testing.assert_allclose(k[1, :, 0], coco18 + 1000)
    np.testing.assert_allclose(k[0, :, 1], coco18 + 200)
    assert k[0, J["left_ear"], 2] == 0.0 and k[0, J["right_ear"], 2] == 0.75
    assert load_openpose_keypoints(write(tmp_path, "none.json", {"people": []})).shape == (0, 17, 3)


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    '{"foo": 1}',
    '"just a string"',
    '[{"image_id": 1, "keypoints": [1, 2, 3]}]',
    '[{"image_id": 1, "keypoints": ["a", "b"]}]',
    '[{"image_id": 1}]',
    '{"images": [], "annotations": {}}',
    '{"images": [{"id": [1], "file_name": "a.jpg"}], "annotations": [{"image_id": [1], "keypoints": []}]}',
    '[{"image_id": 1, "keypoints": [[1, 2], [3, 4]]}]',
])
def test_coco_malformed(tmp_path, content):
    p = write(tmp_path, "broken_coco.json", content)
    with pytest.raises(CliffError, match="broken_coco.json"):
        load_coco_keypoints(p)


@pytest.mark.parametrize("content", [
    "{not json",
    "[]",
    '{"people": {}}',
    '{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}',
    '{"people": [{"face_keypoints_2d": []}]}',
    '{"people": [{"pose_keypoints_2d": ["x"]}]}',
    '{"people": [5]}',
])
def test_openpose_malformed(tmp_path, content):
    p = write(tmp_path, "broken_openpose.json", content)
    with pytest.raises(CliffError, match="broken_openpose.json"):
        load_openpose_keypoints(p)


def test_load_keypoints_file_dispatches(tmp_path):
    op = write(tmp_path, "op.json", {"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 25}]})
    co = write(tmp_path, "co.json", [{"image_id": 5, "keypoints": person(0)}])
    np.testing.assert_allclose(load_keypoints_file(op), load_openpose_keypoints(op))
    np.testing.assert_allclose(load_keypoints_file(co, "5.jpg"), load_coco_keypoints(co, "5.jpg"))
    with pytest.raises(CliffError, match="odd.json"):
        load_keypoints_file(write(tmp_path, "odd.json", {"what": 1}))


@pytest.mark.parametrize("flag", ["--boxes", "--keypoints"])
def test_json_inputs_that_cannot_be_boxes_or_keypoints_get_one_line(tmp_path, capsys, flag):
    from conftest import run

    image = tmp_path / "p.png"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(image)
    cases = {
        "folder": (tmp_path / "adir", "is a folder"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "latin1.json": (b"{\"caf\xe9.png\": []}", "not UTF-8"),
        "cut.json": ('{"p.png": [[1, 2, 3', "not valid JSON"),
        "absent.json": (None, "no such"),
    }  # fmt: skip
    (tmp_path / "adir").mkdir()
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path = content
        code, io = run(["predict", image, "--out", tmp_path / "out", flag, path], capsys)
        assert code == 2, (name, io.err)
        lines = io.err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], (name, io.err)
    assert not (tmp_path / "out").exists()


def test_missing_files(tmp_path):
    with pytest.raises(CliffError, match="absent.json"):
        load_coco_keypoints(tmp_path / "absent.json")
    with pytest.raises(CliffError, match="absent.json"):
        load_openpose_keypoints(tmp_path / "absent.json")
    with pytest.raises(CliffError, match="absent.json"):
        load_keypoints_file(tmp_path / "absent.json")


def test_coco_file_about_many_images_is_read_once_and_looked_up_by_name_or_id(tmp_path):
    from cliffhmr.perception.keypoint_files import coco_keypoints_by_image, keypoints_for_image

    def person(x):
        return [x, 10, 2] * 17

    annotations = {
        "images": [{"id": 397133, "file_name": "000000397133.jpg"}, {"id": 2, "file_name": "val/b.jpg"}, {"id": 3, "file_name": "c.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 397133, "keypoints": person(1), "num_keypoints": 17},
            {"id": 11, "image_id": 2, "keypoints": person(2), "num_keypoints": 17},
            {"id": 12, "image_id": 2, "keypoints": person(3), "num_keypoints": 17},
            {"id": 13, "image_id": 2, "keypoints": person(4), "iscrowd": 1},
            {"id": 14, "image_id": 3, "keypoints": [0] * 51, "num_keypoints": 0},
        ],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(annotations))
    table = coco_keypoints_by_image(tmp_path / "ann.json")
    assert keypoints_for_image(table, "000000397133.jpg")[:, 0, 0].tolist() == [1]
    assert keypoints_for_image(table, "images/b.jpg")[:, 0, 0].tolist() == [2, 3]  # the crowd is skipped
    assert keypoints_for_image(table, "c.jpg").shape == (0, 17, 3)  # nobody labelled
    assert keypoints_for_image(table, "unlisted.jpg").shape == (0, 17, 3)
    assert keypoints_for_image(table, "b.jpg")[0, 0].tolist() == [2, 10, 1]  # visibility 2 -> confidence 1

    # A results list (ViTPose / mmpose) names images by image_id only: matched against the stem's number.
    results = [{"image_id": 397133, "category_id": 1, "keypoints": person(5), "score": 0.9},
               {"image_id": 7, "category_id": 1, "keypoints": person(6), "score": 0.8}]  # fmt: skip
    (tmp_path / "res.json").write_text(json.dumps(results))
    table = coco_keypoints_by_image(tmp_path / "res.json")
    assert keypoints_for_image(table, "000000397133.jpg")[:, 0, 0].tolist() == [5]
    assert keypoints_for_image(table, "7.png")[:, 0, 0].tolist() == [6]
    (tmp_path / "anonymous.json").write_text(json.dumps([{"keypoints": person(1)}]))
    with pytest.raises(CliffError, match="entry 0 names no image"):
        coco_keypoints_by_image(tmp_path / "anonymous.json")
