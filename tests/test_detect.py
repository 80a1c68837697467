"""Person detectors (NanoDet default, SSDLite previous; ONNX) on the bundled photos and on real
frames of the detection fixture (benchmarks/fixtures/detection/)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliffhmr.errors import CliffError
from cliffhmr.perception.detect import (
    DEFAULT_DETECTOR, DETECTORS, PASSES, PersonDetector, as_rgb_uint8, boxes_from_view, nms, sort_people, view_image,
)  # fmt: skip

ROOT = Path(__file__).parent.parent
DATA = ROOT / "examples"
FIXTURE = ROOT / "benchmarks" / "fixtures" / "detection"

# Person regions read off the images by eye (see examples/README.md).
ASTRONAUT_REGION = np.array([15, 15, 365, 512], float)
HOPPER_REGION = np.array([10, 15, 512, 600], float)


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"))


def two_people() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Astronaut (512x512) left, Grace Hopper scaled to height 512 right; and their regions."""
    a = load("astronaut.jpg")
    g = Image.open(DATA / "grace_hopper.jpg").convert("RGB")
    scale = 512 / g.height
    g = np.asarray(g.resize((round(g.width * scale), 512), Image.BICUBIC))
    hop = HOPPER_REGION * scale + np.array([512, 0, 512, 0])
    return np.concatenate([a, g], axis=1), ASTRONAUT_REGION, hop


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detector():
    return PersonDetector()


def check_contract(boxes: np.ndarray, image: np.ndarray):
    h, w = image.shape[:2]
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert np.all(np.diff(boxes[:, 4] * np.sqrt(area)) <= 1e-3), "sorted by score x sqrt(area), descending"
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= w)
    assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= h)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def fixture_entries() -> dict:
    return {e["file"]: e for e in json.loads((FIXTURE / "boxes.json").read_text())["images"]}


def test_model_assets_present():
    assert DEFAULT_DETECTOR == DETECTORS["nanodet"]
    for path in DETECTORS.values():
        assert path.is_file()
        assert path.stat().st_size < 10 * 2**20


def test_astronaut_one_person(detector):
    img = load("astronaut.jpg")
    boxes = detector(img)
    check_contract(boxes, img)
    assert len(boxes) == 1
    assert boxes[0, 4] >= 0.5
    assert iou(boxes[0, :4], ASTRONAUT_REGION) > 0.75


def test_grace_hopper_one_person(detector):
    img = load("grace_hopper.jpg")
    boxes = detector(img)
    check_contract(boxes, img)
    assert len(boxes) == 1
    assert iou(boxes[0, :4], HOPPER_REGION) > 0.75


def test_two_people_side_by_side(detector):
    img, left, right = two_people()
    boxes = detector(img)
    check_contract(boxes, img)
    assert len(boxes) == 2
    assert max(iou(b[:4], left) for b in boxes[:2]) > 0.7
    assert max(iou(b[:4], right) for b in boxes[:2]) > 0.7
    # one box per person, not one box over both
    centres = np.sort((boxes[:2, 0] + boxes[:2, 2]) / 2)
    assert centres[0] < 512 < centres[1]


def test_no_person_in_blank_or_noise(detector):
    rng = np.random.default_rng(0)
    for img in (
        np.full((480, 640, 3), 128, np.uint8),
        np.zeros((300, 200, 3), np.uint8),
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    ):
        boxes = detector(img)
        assert boxes.shape == (0, 5) and boxes.dtype == np.float32


def test_threshold_and_gray_input(detector):
    img = load("astronaut.jpg")
    assert len(PersonDetector(score_threshold=0.99)(img)) == 0
    gray = np.asarray(Image.fromarray(img).convert("L"))
    boxes = detector(gray)  # gray is accepted and replicated to RGB
    assert len(boxes) >= 1 and iou(boxes[0, :4], ASTRONAUT_REGION) > 0.6


def test_nms_keeps_best_of_overlapping():
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    s = np.array([0.6, 0.9, 0.5])
    assert nms(b, s, 0.5).tolist() == [1, 2]
    assert nms(b, s, 0.95).tolist() == [1, 0, 2]
    first = np.array([True, False, False])  # box 0 goes first despite its lower score
    assert nms(b, s, 0.5, first=first).tolist() == [0, 2]
    assert nms(b, s, 0.95, first=first).tolist() == [0, 1, 2]


def test_bad_inputs():
    with pytest.raises(CliffError, match="uint8"):
        as_rgb_uint8(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(CliffError, match="shape"):
        as_rgb_uint8(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(CliffError):
        PersonDetector(score_threshold=1.5)


def test_missing_model_names_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    det = PersonDetector(model_path=str(missing))  # lazy: nothing loaded yet
    with pytest.raises(CliffError, match="nope.onnx"):
        det(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg", "two_people.jpg"])
def test_bundled_photos_every_person_within_iou_07_of_the_fixture(detector, name):
    """The default detector finds exactly the people drawn by eye in the fixture, each box close."""
    entry = fixture_entries()[f"examples/{name}"]
    img = load(name)
    boxes = detector(img)
    check_contract(boxes, img)
    assert len(boxes) == len(entry["people"])
    for truth in entry["people"]:
        assert max(iou(b[:4], truth) for b in boxes) > 0.7
    if name == "two_people.jpg":  # why the threshold is 0.4: at 0.35 a patch of the flag is a third
        assert len(PersonDetector(score_threshold=0.35, passes=())(img)) == 3


# Portrait lab frames the previous detector (SSDLite) found nobody in; the people in them are
# a man seen from behind, and a man with a bystander at the back of the room.
PORTRAIT_FRAMES = ["p2s_single_cam02_f050.jpg", "p2s_single_cam03_f090.jpg", "p2s_single_cam04_f010.jpg"]


@pytest.mark.parametrize("name", PORTRAIT_FRAMES)
def test_portrait_frames_the_old_detector_missed(detector, name):
    entry = fixture_entries()[f"benchmarks/fixtures/detection/{name}"]
    img = np.asarray(Image.open(FIXTURE / name).convert("RGB"))
    assert img.shape[0] > img.shape[1]  # portrait
    boxes = detector(img)
    check_contract(boxes, img)
    for truth in entry["people"]:
        assert max(iou(b[:4], truth) for b in boxes) >= 0.5, truth
    assert len(boxes) == len(entry["people"])  # and nothing else (no false positive)
    assert len(PersonDetector(kind="ssdlite", passes=())(img)) == 0  # why these frames are here


def test_people_sorted_by_prominence_and_all_kept(detector):
    """Three people: the woman in front first, the man, then the small bystander at the wall."""
    name = "benchmarks/fixtures/detection/p2s_multi_cam01_f020.jpg"
    img = np.asarray(Image.open(ROOT / name).convert("RGB"))
    truth = fixture_entries()[name]["people"]  # bystander, man, woman in front
    boxes = detector(img)
    assert len(boxes) == 3
    order = [int(np.argmax([iou(b[:4], t) for t in truth])) for b in boxes]
    assert order == [2, 1, 0]


def test_sort_people_rule():
    boxes = np.array(
        [
            [0, 0, 10, 20, 0.9],  # small, confident: 0.9 * sqrt(200) = 12.7
            [0, 0, 100, 200, 0.4],  # large, doubtful: 0.4 * sqrt(20000) = 56.6
            [0, 0, 50, 100, 0.9],  # medium, confident: 0.9 * sqrt(5000) = 63.6
        ],
        np.float32,
    )
    out = sort_people(boxes)
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.4, 0.9])
    assert out[:, 2].tolist() == [50, 100, 10]
    assert len(sort_people(np.zeros((0, 5), np.float32))) == 0


def test_mirrored_image_gives_mirrored_boxes(detector):
    """Decoding is symmetric (cell centres, row-major cells, letterbox): flip the photo, flip the boxes."""
    img = np.asarray(Image.open(FIXTURE / "p2s_multi_cam02_f020.jpg").convert("RGB"))
    w = img.shape[1]
    a = detector(img)
    b = detector(np.ascontiguousarray(img[:, ::-1]))
    assert len(a) == len(b) >= 2
    mirrored = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1)
    for box in a:
        assert max(iou(box[:4], m) for m in mirrored) > 0.85


def test_previous_detector_still_selectable():
    det = PersonDetector(kind="ssdlite")
    assert det.model_path == DETECTORS["ssdlite"] and det.score_threshold == 0.5
    boxes = det(load("astronaut.jpg"))
    assert len(boxes) == 1 and iou(boxes[0, :4], ASTRONAUT_REGION) > 0.75
    with pytest.raises(CliffError, match="unknown detector"):
        PersonDetector(kind="yolo")


def test_command_line_chooses_the_detector(monkeypatch):
    """`--detector ssdlite` reaches the pipeline's config, which builds that detector (lazily)."""
    import cliffhmr.inference.pipeline as pipeline
    from cliffhmr import cli

    made = {}
    Predictor = pipeline.Predictor
    monkeypatch.setattr(pipeline, "Predictor", lambda config: made.setdefault("config", config))
    for argv, kind, passes in ((["predict", "examples", "--out", "o"], "nanodet", None),
                               (["predict", "examples", "--out", "o", "--detection-passes", "none"], "nanodet", ()),
                               (["annotate", "examples", "--out", "o.npz", "--detector", "ssdlite",
                                 "--detection-passes", "turns, flip"], "ssdlite", ("flip", "turns"))):  # fmt: skip
        made.clear()
        cli._predictor(cli.build_parser().parse_args(argv), refine=False)
        assert made["config"].detector == kind and made["config"].detection_threshold is None
        assert made["config"].detection_passes == passes
    predictor = Predictor.__new__(Predictor)  # its detector property alone, without loading a body model
    predictor.config, predictor._detectors = made["config"], {}
    assert predictor.detector.kind == "ssdlite" and predictor.detector.score_threshold == 0.5
    assert predictor.detector.passes == predictor.frame_detector.passes == ("flip", "turns")  # as asked, photos and video
    predictor.config, predictor._detectors = pipeline.PredictorConfig(), {}
    assert predictor.detector.passes == PASSES and predictor.frame_detector.passes == ()  # defaults: photos, video frames


@pytest.mark.parametrize("view", ["flip", "left", "right"])
def test_boxes_from_a_view_round_trip(view):
    """A box painted into an image, found in the view of it, maps back to itself exactly."""
    rng = np.random.default_rng(1)
    h, w = 37, 53
    for _ in range(20):
        x1, x2 = np.sort(rng.choice(w + 1, 2, replace=False))
        y1, y2 = np.sort(rng.choice(h + 1, 2, replace=False))
        mask = np.zeros((h, w, 1), np.uint8)
        mask[y1:y2, x1:x2] = 1
        seen = view_image(mask, view)[..., 0]
        assert seen.shape == ((h, w) if view == "flip" else (w, h))
        rows, cols = np.nonzero(seen)
        in_view = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], float)
        assert boxes_from_view(in_view, view, h, w).tolist() == [[x1, y1, x2, y2]]


# People the whole image alone misses and one view finds: a small bystander at the back of the
# lab (the tiles draw them larger), a bystander cut by the frame's left edge (the mirror image).
ONLY_A_VIEW_FINDS = [("p2s_single_cam02_f090.jpg", 1, "tiles"), ("p2s_multi_cam01_f070.jpg", 0, "flip")]


@pytest.mark.parametrize("name,person,view", ONLY_A_VIEW_FINDS)
def test_people_only_a_view_finds(detector, name, person, view):
    truth = fixture_entries()[f"benchmarks/fixtures/detection/{name}"]["people"][person]
    img = np.asarray(Image.open(FIXTURE / name).convert("RGB"))

    def found(boxes):
        return max((iou(b[:4], truth) for b in boxes), default=0.0) >= 0.5

    assert not found(PersonDetector(passes=())(img))
    assert found(PersonDetector(passes=(view,))(img))
    assert found(detector(img))


def test_a_person_lying_across_the_image_is_found_by_the_turned_views():
    """The astronaut turned a quarter: no box from the image as it is, the turned views find her
    where the turned region of the photo is."""
    img = view_image(load("astronaut.jpg"), "left")
    (x1, y1, x2, y2), w = ASTRONAUT_REGION, 512
    lying = [y1, w - x2, y2, w - x1]  # the region in the turned image (a view's point (x, y) is the photo's (W - y, x))
    assert len(PersonDetector(passes=())(img)) == 0
    for passes in (("turns",), PASSES):
        boxes = PersonDetector(passes=passes)(img)
        assert len(boxes) == 1 and iou(boxes[0, :4], lying) > 0.75


@pytest.mark.parametrize("name", ["p2s_single_cam01_f010.jpg", "p2s_single_cam03_f010.jpg"])
def test_turned_views_need_a_surer_score(detector, name):
    """In these lab frames the turned views read an upright person's parts as a lying one at
    scores between the threshold and threshold + TURNED_MARGIN: kept, they would be false positives."""
    entry = fixture_entries()[f"benchmarks/fixtures/detection/{name}"]
    img = np.asarray(Image.open(FIXTURE / name).convert("RGB"))
    boxes = detector(img)
    assert len(boxes) == len(entry["people"])
    for truth in entry["people"]:
        assert max(iou(b[:4], truth) for b in boxes) >= 0.5


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg", "two_people.jpg"])
def test_views_add_people_and_keep_the_whole_images_boxes(detector, name):
    """The views find the people of the bundled photos again, in two_people.jpg with a higher
    score and other boxes; the whole image's boxes stand, as a moved box moves the keypoints
    and the fitted body (Grace Hopper's torso tilts from 2 to 10 degrees)."""
    img = load(name)
    alone = PersonDetector(passes=())(img)
    assert len(alone) == len(fixture_entries()[f"examples/{name}"]["people"])
    np.testing.assert_array_equal(detector(img), alone)
    if name == "two_people.jpg":
        boxes, scores, whole = detector._passes(img)
        assert scores[~whole].max() > scores[whole].max()


def test_detection_passes_are_checked():
    assert PersonDetector(passes=["turns", "flip"]).passes == ("flip", "turns")  # PASSES order
    assert PersonDetector().passes == PASSES == ("flip", "tiles", "turns")
    with pytest.raises(CliffError, match="unknown detection pass 'rot'"):
        PersonDetector(passes=("flip", "rot"))
