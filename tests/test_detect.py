"""Person detector (SSDLite-MobileNetV2, ONNX) on public-domain photos shipped in examples/."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliffhmr.detect import DEFAULT_DETECTOR, PersonDetector, as_rgb_uint8, nms
from cliffhmr.errors import CliffError

DATA = Path(__file__).parent.parent / "examples"

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
    assert np.all(np.diff(boxes[:, 4]) <= 0), "sorted by descending score"
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= w)
    assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= h)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def test_model_asset_present():
    assert DEFAULT_DETECTOR.is_file()
    assert DEFAULT_DETECTOR.stat().st_size < 10 * 2**20


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


def test_two_people_side_by_side():
    img, left, right = two_people()
    boxes = PersonDetector(score_threshold=0.3)(img)
    check_contract(boxes, img)
    assert len(boxes) == 2
    best_left = max(iou(b[:4], left) for b in boxes)
    best_right = max(iou(b[:4], right) for b in boxes)
    assert best_left > 0.7 and best_right > 0.7
    # one box per person, not one box over both
    centres = np.sort((boxes[:, 0] + boxes[:, 2]) / 2)
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
