"""`cliffhmr export` and exported networks: ONNX in onnxruntime gives what the torch network gives."""

import numpy as np
import pytest
import torch

from cliffhmr.models import OnnxCliff, load_checkpoint, load_network
from conftest import assert_one_line_error, official_checkpoint, run


@pytest.fixture(scope="module", params=["res50", "hr48"])
def exported(request, tmp_path_factory):
    """(torch checkpoint, its exported .onnx) for random weights of each backbone."""
    d = tmp_path_factory.mktemp(request.param)
    ckpt = official_checkpoint(d / f"{request.param}.pt", request.param)
    from cliffhmr.cli import main

    assert main(["export", "--checkpoint", str(ckpt), "--out", str(d / "net.onnx")]) == 0
    return ckpt, d / "net.onnx"


def test_onnx_outputs_equal_torch_at_any_batch_size(exported):
    """Random weights put outputs anywhere from 1 to 2e5 (HRNet's unnormalised features), so the
    1e-4 is relative to each output's scale; the rotation matrices are within 1e-4 absolute."""
    ckpt, onnx_path = exported
    reference, net = load_checkpoint(ckpt), load_network(onnx_path)
    assert isinstance(net.model, OnnxCliff)
    assert (net.backbone, net.bbox_info, net.mode, net.model.crop_height) == (reference.backbone, "official", "cliff", 256)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):  # exported at batch 2: the batch axis must really be free
        crops = torch.randn(batch, 3, 256, 192, generator=generator)
        info = torch.randn(batch, 3, generator=generator)
        with torch.no_grad():
            want = reference.model(crops, info)
        got = net.model(crops, info)
        for name in ("rotmat", "pose6d", "betas", "cam"):
            a, b = getattr(got, name), getattr(want, name)
            assert a.shape == b.shape, name
            scale = 1.0 if name == "rotmat" else float(b.abs().max())
            assert float((a - b).abs().max()) <= 1e-4 * scale, f"{name} at batch {batch}"


def test_predict_takes_the_exported_network(exported, photo, smpl_pkl, tmp_path, capsys):
    """The same photo through `--checkpoint net.pt` and `--checkpoint net.onnx`: the same people."""
    ckpt, onnx_path = exported
    image, boxes = photo
    results = {}
    for name, network in (("torch", ckpt), ("onnx", onnx_path)):
        out = tmp_path / name
        code, _ = run(["predict", image, "--boxes", boxes, "--checkpoint", network, "--smpl", smpl_pkl, "--out", out,
                       "--no-render", "--no-mesh"], capsys)  # fmt: skip
        assert code == 0
        results[name] = np.load(out / "scene.npz")
    for key in ("pose", "shape", "pred_cam", "global_t", "pred_joints", "vertices"):
        want, got = results["torch"][key], results["onnx"][key]
        assert got.shape == want.shape and len(want) == 2, key
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())), err_msg=key)


def test_bad_exports_and_foreign_files_are_one_line(res50_ckpt, photo, smpl_pkl, tmp_path, capsys):
    code, captured = run(["export", "--checkpoint", res50_ckpt, "--out", tmp_path / "net.pt"], capsys)
    assert_one_line_error(code, captured.err, "net.pt: an ONNX file is named .onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a network")
    image, boxes = photo
    code, captured = run(["predict", image, "--boxes", boxes, "--checkpoint", tmp_path / "junk.onnx", "--smpl", smpl_pkl,
                          "--out", tmp_path / "out"], capsys)  # fmt: skip
    assert_one_line_error(code, captured.err, "junk.onnx: not a readable ONNX network")
    # A real ONNX file that is not a CLIFF network: the bundled MoveNet.
    from cliffhmr.perception.blazepose import DEFAULT_MOVENET

    code, captured = run(["predict", image, "--boxes", boxes, "--checkpoint", DEFAULT_MOVENET, "--smpl", smpl_pkl,
                          "--out", tmp_path / "out"], capsys)  # fmt: skip
    assert_one_line_error(code, captured.err, "not a CLIFF network exported by `cliffhmr export`")
    assert not (tmp_path / "out").exists()


def test_the_bundled_keypoint_regressor_exports_and_agrees(tmp_path, capsys):
    from cliffhmr.models.keypoint_regressor import load_keypoint_regressor
    from cliffhmr.perception.onnx import ort_session

    code, io = run(["export", "--keypoint-regressor", "--out", tmp_path / "kp.onnx"], capsys)
    assert code == 0, io.err
    session = ort_session(tmp_path / "kp.onnx", "keypoint regressor")
    assert session.get_modelmeta().custom_metadata_map["network"] == "keypoint_regressor"
    model = load_keypoint_regressor()
    x = torch.randn(5, model.inp.in_features, generator=torch.Generator().manual_seed(2))  # batch 5: exported at 2
    with torch.no_grad():
        want = model(x)
    got = session.run(["rotmat", "betas", "cam"], {"x": x.numpy()})
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)
    code, io = run(["export", "--keypoint-regressor", "--checkpoint", "x.pt", "--out", tmp_path / "both.onnx"], capsys)
    assert code == 2 and "not allowed with" in io.err
