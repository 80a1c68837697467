"""The CLIFF+ annotator: photos -> a SPIN/CLIFF npz that loads, trains, and holds what the fit found."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cliffhmr.body import COCO17_NAMES
from cliffhmr.data.datasets import DatasetSpec, NpzDataset
from cliffhmr.data.joints import COCO17_TO_J24, coco17_to_j24
from cliffhmr.data.joints import J24_NAMES
from cliffhmr.data.npz_format import load_annotations
from cliffhmr.synthetic.toy_smpl import write_toy_smpl

from conftest import ASTRONAUT_KEYPOINTS, run

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_coco_keypoints_land_in_the_j24_slots_of_the_same_name():
    assert [J24_NAMES[j] for j in COCO17_TO_J24] == list(COCO17_NAMES)
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, 0] = np.arange(17)
    kp[0, :, 2] = 0.9
    kp[0, 3, 2] = 0.1  # left ear: too unsure
    kp[0, 4] = np.nan  # right ear: missing
    j24 = coco17_to_j24(kp, min_confidence=0.2)
    assert j24[0, J24_NAMES.index("right_ankle")].tolist() == pytest.approx([16, 0, 0.9])
    assert j24[0, J24_NAMES.index("nose")].tolist() == pytest.approx([0, 0, 0.9])
    assert (j24[0, [J24_NAMES.index("left_ear"), J24_NAMES.index("right_ear")]] == 0).all()
    coco_free = [J24_NAMES.index(n) for n in ("neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m")]
    assert (j24[0, coco_free] == 0).all()


@pytest.fixture(scope="module")
def scene_dir(photo, tmp_path_factory):
    image, boxes = photo
    d = tmp_path_factory.mktemp("scene")
    shutil.copy(image, d / image.name)
    return d, boxes


@pytest.fixture(scope="module")
def toy_smpl(tmp_path_factory):
    """A human-shaped body in SMPL's layout, so that fitting real keypoints means something."""
    return write_toy_smpl(tmp_path_factory.mktemp("toy") / "toy_smpl.npz")


def test_cliff_plus_starts_the_fit_from_the_network_and_improves_on_it(toy_smpl, res50_ckpt, tmp_path, capsys):
    (tmp_path / "boxes.json").write_text(json.dumps({"astronaut.jpg": [[40, 60, 400, 512, 0.9]]}))
    common = ["--checkpoint", res50_ckpt, "--smpl", toy_smpl, "--boxes", tmp_path / "boxes.json"]
    image = EXAMPLES / "astronaut.jpg"
    code, io = run(["predict", image, "--out", tmp_path / "net", "--no-render", "--no-mesh", *common], capsys)
    assert code == 0, io.err
    net = np.load(tmp_path / "net" / "astronaut.npz")

    # No fitting steps: the row is the network's own estimate, packed in SPIN's layout.
    code, io = run(["annotate", image, "--out", tmp_path / "start.npz", "--fit-iterations", "0", *common], capsys)
    assert code == 0, io.err
    assert "1 person from 1 image (cliff+fit, smpl)" in io.out
    start = np.load(tmp_path / "start.npz")
    # --refine none is that: the network's estimate, with the keypoints and their agreement.
    code, io = run(["annotate", image, "--out", tmp_path / "none.npz", "--refine", "none", *common], capsys)
    assert code == 0 and "(cliff, smpl)" in io.out, io.err
    none = np.load(tmp_path / "none.npz")
    assert none.files == start.files and all(np.array_equal(none[k], start[k]) for k in start.files)
    assert list(start["imgname"]) == ["astronaut.jpg"]
    np.testing.assert_allclose(start["pose"], net["pose"][:, :72], atol=1e-4)
    np.testing.assert_allclose(start["shape"], net["shape"][:, :10], atol=1e-6)
    np.testing.assert_allclose(start["transl"], net["global_t"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(start["focal_l"], net["focal_l"], rtol=1e-6)
    # A random network's guess agrees poorly with the keypoints: not pseudo ground truth at the default bar.
    assert start["quality"][0] < 0.5 and not start["has_smpl"].any()
    assert not load_annotations(tmp_path / "start.npz").has_smpl.any()
    # The box is the given one brought to the crop's 3:4 aspect (360 x 452 is too wide: height 360 / 0.75), x1.2.
    assert start["center"][0] == pytest.approx([220.0, 286.0]) and start["scale"][0] == pytest.approx(480 * 1.2 / 200)

    # Fitting from there brings the body's keypoints onto the detected ones.
    code, io = run(["annotate", image, "--out", tmp_path / "fit.npz", "--fit-iterations", "120", "--min-quality", "0.1", *common], capsys)
    assert code == 0, io.err
    fit = np.load(tmp_path / "fit.npz")
    # Quality counts the keypoints BlazePose calls visible (confidence >= 0.5): from a random
    # network 0.043 -> 0.21 here (it was 0.050 -> 0.26 counting every keypoint >= 0.2).
    assert fit["quality"][0] > max(0.1, 4 * start["quality"][0]), (fit["quality"], start["quality"])
    assert fit["has_smpl"].tolist() == [1.0]
    np.testing.assert_array_equal(fit["part"], start["part"])  # the same detected keypoints


def test_annotated_file_trains_a_model(scene_dir, res50_ckpt, smpl_pkl, tmp_path, capsys):
    """The annotator's output is a training dataset like any other: it loads, crops and trains."""
    from cliffhmr.train.config import load_config
    from cliffhmr.train.engine import train

    folder, boxes = scene_dir
    code, io = run(["annotate", folder / "scene.png", "--out", tmp_path / "mine.npz", "--checkpoint", res50_ckpt,
                    "--smpl", smpl_pkl, "--boxes", boxes, "--fit-iterations", "10", "--min-quality", "0.0"], capsys)  # fmt: skip
    assert code == 0, io.err
    sample = NpzDataset(DatasetSpec(str(tmp_path / "mine.npz"), str(folder)), crop_height=64)[0]
    assert sample["img"].shape == (3, 64, 48) and sample["has_smpl"] == 1
    overrides = {
        "data.datasets": f"[{{name: mine, npz: '{tmp_path / 'mine.npz'}', root: '{folder}'}}]",
        "data.batch_size": 2, "data.num_workers": 0, "model.crop_height": 64, "body.smpl": f"'{smpl_pkl}'",
        "train.out_dir": f"'{tmp_path / 'run'}'", "train.steps": 2, "train.progress": "false",
        "train.precision": "fp32", "train.device": "cpu", "train.tensorboard": "false",
    }  # fmt: skip
    result = train(load_config(None, [f"{k}={v}" for k, v in overrides.items()]))
    assert result.step == 2 and (tmp_path / "run" / "final.pt").is_file()


def test_default_path_writes_2d_supervision(tmp_path, capsys):
    """Anny's parameters are not SMPL's: without --smpl the file holds boxes, keypoints and camera."""
    out = tmp_path / "astronaut.npz"
    code, io = run(["annotate", EXAMPLES / "astronaut.jpg", "--out", out, "--fit-iterations", "40"], capsys)
    assert code == 0, io.err
    assert "1 person from 1 image (fit, anny), 2D keypoints only" in io.out
    ann = load_annotations(out)
    assert list(ann.imgname) == ["astronaut.jpg"] and not ann.has_smpl.any()
    assert "pose" not in np.load(out).files
    part = ann.part[0]
    seen = part[:, 2] > 0
    assert seen[[J24_NAMES.index(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_hip")]].all()
    # Every keypoint kept lies in the training crop.
    half = 200 * ann.scale[0] / 2
    assert (np.abs(part[seen, :2] - ann.center[0]) < half).all()
    assert ann.focal[0] == pytest.approx(np.hypot(512, 512))  # no EXIF: the image diagonal


def test_coco_keypoints_file_drives_a_folder_without_the_detector(tmp_path, capsys, monkeypatch):
    """CLIFF+ on a labelled dataset: its 2D keypoints, not BlazePose's, and boxes around them."""
    import cliffhmr.perception.detect

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector must not run when keypoints are given")

    monkeypatch.setattr(cliffhmr.perception.detect.PersonDetector, "__init__", no_detector)
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("astronaut.jpg", "grace_hopper.jpg"):
        shutil.copy(EXAMPLES / name, folder / name)
    coco = {
        "images": [{"id": 1, "file_name": "astronaut.jpg"}, {"id": 2, "file_name": "grace_hopper.jpg"}],
        "annotations": [{"id": 5, "image_id": 1, "keypoints": sum(ASTRONAUT_KEYPOINTS, []), "num_keypoints": 17}],
    }
    (tmp_path / "person_keypoints.json").write_text(json.dumps(coco))
    out = tmp_path / "gt.npz"
    code, io = run(["annotate", folder, "--out", out, "--keypoints", tmp_path / "person_keypoints.json", "--fit-iterations", "40"], capsys)
    assert code == 0, io.err
    assert "1 person from 1 image" in io.out and "1 item skipped" in io.out
    log = json.loads((tmp_path / "gt.skipped.json").read_text())
    assert log == [{"item": "grace_hopper.jpg", "reason": "no keypoints for this image in the keypoint file"}]
    ann = load_annotations(out)
    assert list(ann.imgname) == ["astronaut.jpg"]
    given = np.array(ASTRONAUT_KEYPOINTS, np.float32)
    kept = given[:, 2] >= 0.2
    np.testing.assert_allclose(ann.part[0, COCO17_TO_J24][kept], given[kept])
    assert (ann.part[0, COCO17_TO_J24][~kept] == 0).all()


def test_annotator_mistakes_are_one_line(tmp_path, capsys, res50_ckpt):
    for out, fragment in ((tmp_path / "x.json", "must end in .npz"), (tmp_path, "is a folder")):
        code, io = run(["annotate", EXAMPLES / "astronaut.jpg", "--out", out], capsys)
        assert code == 2 and "Traceback" not in io.err and fragment in io.err
    code, io = run(["annotate", EXAMPLES / "astronaut.jpg", "--out", tmp_path / "a.npz", "--checkpoint", res50_ckpt], capsys)
    assert code == 2 and "--smpl" in io.err
    from PIL import Image

    Image.fromarray(np.full((120, 160, 3), 127, np.uint8)).save(tmp_path / "empty.png")
    code, io = run(["annotate", tmp_path / "empty.png", "--out", tmp_path / "empty.npz"], capsys)
    assert code == 2 and "no person found" in io.err and not (tmp_path / "empty.npz").exists()
