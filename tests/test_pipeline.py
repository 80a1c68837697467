"""The main job through the CLI: the CLIFF network path (random official-format checkpoints and a
random SMPL-format file) and the default path (Anny + bundled models, network blocked)."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliffhmr.body import load_body_model
from cliffhmr.geometry.camera import cam_crop_to_full, perspective_project
from conftest import ASTRONAUT_KEYPOINTS, official_checkpoint, run

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("backbone", ["res50", "hr48"])
def test_network_path_writes_consistent_outputs(backbone, smpl_pkl, photo, tmp_path, capsys):
    image, boxes = photo
    ckpt = official_checkpoint(tmp_path / f"{backbone}.pt", backbone)
    out = tmp_path / "out"
    code, io = run(["predict", image, "--checkpoint", ckpt, "--smpl", smpl_pkl, "--boxes", boxes, "--out", out], capsys)
    assert code == 0, io.err
    names = {p.name for p in out.iterdir()}
    assert names == {
        "scene.npz", "scene.json", "scene_overlay.png", "scene_side.png",
        "scene_person0.obj", "scene_person0.glb", "scene_person1.obj", "scene_person1.glb",
    }  # fmt: skip
    d = np.load(out / "scene.npz")
    n = 2
    assert d["pose"].shape == (n, 72) and d["shape"].shape == (n, 10) and d["global_t"].shape == (n, 3)
    assert d["pred_cam"].shape == (n, 3) and d["center"].shape == (n, 2) and d["scale"].shape == (n,)
    assert d["detection_all"].shape == (n, 6) and d["focal_l"].shape == (n,) and len(d["imgname"]) == n
    assert d["detection_all"][1, 1:5].tolist() == [330, 40, 395, 240]

    W, H = 400, 300
    f = float(np.hypot(W, H))
    np.testing.assert_allclose(d["focal_l"], f, rtol=1e-6)
    # pred_joints are camera-frame with global_t applied: projecting them with focal_l and the
    # image centre gives pred_keypoints_2d.
    joints = torch.as_tensor(d["pred_joints"])
    proj = perspective_project(joints, torch.as_tensor(d["focal_l"]), torch.tensor([[W / 2, H / 2]]).expand(n, 2))
    # A random network may put a body behind the camera (crop scale <= 0): its pixels are NaN.
    # These random res50 weights put both people in front, the hr48 ones both behind.
    front = d["pred_cam"][:, 0] > 0
    assert front.all() == (backbone == "res50") and front.any() == (backbone == "res50")
    np.testing.assert_allclose(proj.numpy()[front], d["pred_keypoints_2d"][front], atol=1e-3)
    assert np.isnan(d["pred_keypoints_2d"][~front]).all()
    # global_t is the crop camera converted to the full frame (CLIFF's formula).
    center, b = torch.as_tensor(d["center"]), torch.as_tensor(d["scale"]) * 200
    full = cam_crop_to_full(torch.as_tensor(d["pred_cam"]), center, b, torch.full((n,), f), torch.tensor([[W / 2, H / 2]]).expand(n, 2))
    np.testing.assert_allclose(full.numpy(), d["global_t"], rtol=1e-4, atol=1e-5)
    # Recomputing SMPL independently from the saved parameters reproduces the saved joints and mesh.
    body = load_body_model(smpl_pkl)
    rot = torch.as_tensor(d["rotmat"])
    again = body(rot, torch.as_tensor(d["shape"]), torch.as_tensor(d["global_t"]))
    np.testing.assert_allclose(again.joints.numpy(), d["pred_joints"][:, :24], atol=1e-4)
    np.testing.assert_allclose(again.vertices.numpy(), d["vertices"], atol=1e-4)
    assert list(d["joint_names"][:24]) == body.joint_names and len(d["joint_names"]) == 24 + 17

    summary = json.loads((out / "scene.json").read_text())
    assert summary["body_model"] == "smpl" and summary["method"] == "cliff" and len(summary["people"]) == 2
    overlay = np.asarray(Image.open(out / "scene_overlay.png"))
    assert overlay.shape == (H, W, 3)


def test_default_path_runs_offline_and_fits_the_person(tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    out = tmp_path / "out"
    code, io = run(["predict", EXAMPLES / "astronaut.jpg", "--out", out, "--fit-iterations", "80", "--profile"], capsys)
    assert code == 0, io.err
    assert "fitting:" in io.out  # --profile prints stage timings
    d = np.load(out / "astronaut.npz")
    assert len(d["global_t"]) == 1 and np.isfinite(d["vertices"]).all()
    assert d["quality"][0] > 0.7
    # The fitted body's COCO keypoints land on the detected ones that were confident.
    det = d["detected_keypoints"][0]
    fitted = d["pred_keypoints_2d"][0][-17:]
    conf = det[:, 2] > 0.5
    x1, y1, x2, y2 = d["detection_all"][0, 1:5]
    err = np.linalg.norm(fitted[conf] - det[conf, :2], axis=1) / (y2 - y1)
    assert np.median(err) < 0.05
    summary = json.loads((out / "astronaut.json").read_text())
    assert summary["body_model"] == "anny" and summary["method"] == "fit"
    assert 0.5 < summary["people"][0]["distance_m"] < 5


def test_no_person_gives_empty_valid_outputs(tmp_path, capsys):
    Image.fromarray(np.full((120, 160, 3), 127, np.uint8)).save(tmp_path / "empty.png")
    code, io = run(["predict", tmp_path / "empty.png", "--out", tmp_path / "out"], capsys)
    assert code == 0, io.err
    assert "no person found" in io.out
    d = np.load(tmp_path / "out" / "empty.npz")
    assert d["pose"].shape[0] == 0 and d["global_t"].shape == (0, 3)
    assert json.loads((tmp_path / "out" / "empty.json").read_text())["people"] == []


def test_images_sharing_a_stem_get_their_own_results(tmp_path, capsys):
    # photo.jpg and photo.png used to write photo.npz/.json twice, the second over the first.
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((120, 160, 3), 127, np.uint8)).save(folder / "photo.png")
    Image.fromarray(np.full((90, 100, 3), 60, np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(np.full((80, 80, 3), 200, np.uint8)).save(folder / "other.png")
    code, io = run(["predict", folder, "--out", tmp_path / "out", "--no-render"], capsys)
    assert code == 0, io.err
    assert "photo.jpg shares its name with another image: its results are photo_jpg.*" in io.err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["other.json", "other.npz", "photo_jpg.json", "photo_jpg.npz", "photo_png.json", "photo_png.npz"]
    sizes = {json.loads((tmp_path / "out" / f"photo_{s}.json").read_text())["width"] for s in ("jpg", "png")}
    assert sizes == {100, 160}  # each result is its own image's


def test_a_rerun_replaces_the_whole_result_set(tmp_path, capsys, photo, res50_ckpt, smpl_pkl):
    image, boxes = photo  # two people by the boxes file
    out = tmp_path / "out"
    common = ["--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--out", out]
    # Not this image's: a file whose name merely starts with its stem.
    out.mkdir()
    (out / "scene_person1_person0.obj").write_text("another image's mesh")
    code, io = run(["predict", image, "--boxes", boxes, *common], capsys)
    assert code == 0, io.err
    assert {"scene_person0.glb", "scene_person1.glb", "scene_overlay.png"} <= {p.name for p in out.iterdir()}
    # Rerun with one person and no images: the second mesh and the old pictures go, and the run says so.
    one = tmp_path / "one.json"
    one.write_text(json.dumps({k: v[:1] for k, v in json.loads(boxes.read_text()).items()}))
    code, io = run(["predict", image, "--boxes", one, "--no-render", *common], capsys)
    assert code == 0, io.err
    assert "removed scene_overlay.png, scene_person1.glb, scene_person1.obj, scene_side.png" in io.out
    assert sorted(p.name for p in out.iterdir()) == [
        "scene.json", "scene.npz", "scene_person0.glb", "scene_person0.obj", "scene_person1_person0.obj"]  # fmt: skip
    assert len(np.load(out / "scene.npz")["global_t"]) == 1


def expect_user_error(args, capsys, *fragments, one_line=True):
    code, io = run(args, capsys)
    assert code == 2
    assert "Traceback" not in io.err and "cliffhmr: error: " in io.err, io.err
    if one_line:
        assert len(io.err.strip().splitlines()) == 1, io.err
    for fragment in fragments:
        assert fragment in io.err
    return io


def test_bad_inputs_get_one_line_and_exit_2(tmp_path, capsys, photo, res50_ckpt, smpl_pkl):
    image, boxes = photo
    out = tmp_path / "out"
    (tmp_path / "notes.jpg").write_text("not an image")
    expect_user_error(["predict", tmp_path / "notes.jpg", "--out", out, "--boxes", boxes], capsys, "not a readable image")
    expect_user_error(["predict", tmp_path / "nothing.jpg", "--out", out], capsys, "no such file")
    expect_user_error(["predict", image, "--out", out, "--checkpoint", tmp_path / "x.pt", "--smpl", smpl_pkl], capsys, "x.pt")
    expect_user_error(["predict", image, "--out", out, "--checkpoint", res50_ckpt], capsys, "--smpl")
    expect_user_error(["predict", image, "--out", out, "--checkpoint", res50_ckpt, "--smpl", tmp_path / "SMPL.pkl"], capsys, "SMPL")
    expect_user_error(
        ["predict", image, "--out", out, "--checkpoint", res50_ckpt, "--backbone", "hr48", "--smpl", smpl_pkl], capsys, "res50"
    )
    (tmp_path / "far.json").write_text(json.dumps({"scene.png": [[900, 900, 950, 990]]}))
    expect_user_error(
        ["predict", image, "--out", out, "--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--boxes", tmp_path / "far.json"],
        capsys, "outside",
    )  # fmt: skip
    expect_user_error(["predict", image, "--out", out, "--intrinsics", "1,2,3"], capsys, "fx,fy,cx,cy")
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_a_body_behind_the_camera_is_flagged_not_given_pixels(tmp_path, capsys, photo, smpl_pkl):
    image, boxes = photo
    ckpt = torch.load(official_checkpoint(tmp_path / "c.pt", "res50"), weights_only=True)
    ckpt["model"]["module.init_cam"] = -ckpt["model"]["module.init_cam"]  # crop scale about -0.9
    torch.save(ckpt, tmp_path / "behind.pt")
    out = tmp_path / "out"
    code, io = run(["predict", image, "--out", out, "--checkpoint", tmp_path / "behind.pt", "--smpl", smpl_pkl,
                    "--boxes", boxes, "--no-render", "--no-mesh"], capsys)  # fmt: skip
    assert code == 0, io.err
    d = np.load(out / "scene.npz")
    assert (d["pred_cam"][:, 0] <= 0).all() and np.isnan(d["pred_keypoints_2d"]).all()
    summary = json.loads((out / "scene.json").read_text())
    assert all("behind_camera" in p["flags"] for p in summary["people"]) and len(summary["people"]) == 2


def test_devices_that_are_not_there_get_one_line(tmp_path, capsys, photo):
    from cliffhmr.device import resolve_device
    from cliffhmr.errors import CliffError
    from cliffhmr.inference.pipeline import Predictor, PredictorConfig

    image, _ = photo
    missing = ["bogus", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    for name in missing:
        expect_user_error(["predict", image, "--out", tmp_path / "out", "--device", name], capsys, repr(name))
        with pytest.raises(CliffError, match=repr(name)):  # the API says the same
            Predictor(PredictorConfig(device=name))
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_folder_with_a_bad_image_runs_the_others(tmp_path, capsys, photo, res50_ckpt, smpl_pkl):
    image, boxes = photo
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scene.png").write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    args = ["predict", folder, "--out", out, "--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--boxes", boxes, "--no-render", "--no-mesh"]
    io = expect_user_error(args, capsys, "broken.jpg", "1 of 2 images failed", one_line=False)  # with a progress bar
    assert sorted(p.name for p in out.iterdir()) == ["scene.json", "scene.npz"]
    assert "scene.png: 2 people" in io.out


def test_keypoints_file_drives_the_fit_and_a_mismatch_names_the_file(tmp_path, capsys):
    good = tmp_path / "coco_results.json"
    good.write_text(json.dumps([{"image_id": 1, "category_id": 1, "keypoints": sum(ASTRONAUT_KEYPOINTS, []), "score": 0.9}]))
    out = tmp_path / "out"
    code, io = run(["predict", EXAMPLES / "astronaut.jpg", "--out", out, "--keypoints", good, "--no-render", "--no-mesh"], capsys)
    assert code == 0, io.err
    d = np.load(out / "astronaut.npz")
    used = np.array(ASTRONAUT_KEYPOINTS, np.float32)
    used[13:17, 2] = 0  # knees and ankles lie below the 512-pixel image: missing, whatever their confidence
    np.testing.assert_allclose(d["detected_keypoints"][0], used, atol=1e-5)
    assert d["quality"][0] > 0.7
    # Keypoints made for a 10x larger image do not belong to this one.
    wrong = tmp_path / "other_image.json"
    scaled = [[x * 10, y * 10, c] for x, y, c in ASTRONAUT_KEYPOINTS]
    wrong.write_text(json.dumps([{"image_id": 1, "keypoints": sum(scaled, []), "score": 0.9}]))
    expect_user_error(["predict", EXAMPLES / "astronaut.jpg", "--out", out, "--keypoints", wrong], capsys, "other_image.json", "outside")
