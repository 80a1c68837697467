"""The batched network path equals the official demo's loop, person by person; and its parts."""

import time

import numpy as np
import pytest
import torch

from cliffhmr.device import ThreadTuner, cpu_has_bf16
from cliffhmr.errors import CliffError
from cliffhmr.geometry import camera
from cliffhmr.inference.engine import EngineConfig, prefetch
from cliffhmr.inference.pipeline import Predictor, PredictorConfig, Request
from cliffhmr.perception import crop
from cliffhmr.synthetic.toy_smpl import write_toy_smpl


@pytest.fixture(scope="module")
def toy_smpl(tmp_path_factory):
    return write_toy_smpl(tmp_path_factory.mktemp("toy") / "toy_smpl.npz")


def scenes():
    """Images of three sizes and cameras; people in the middle, across the borders, far bigger
    and far smaller than the crop (anti-aliasing levels 0 to 3), and an image with nobody."""
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((240, 320, 3), (300, 200, 3), (150, 150, 3), (200, 260, 3))]
    boxes = [
        np.array([[100, 40, 180, 230], [-30, 10, 60, 200], [250, 150, 400, 330], [10, 10, 30, 50]], np.float32),
        np.array([[20, 20, 190, 290], [150, -40, 260, 120], [60, 100, 80, 140]], np.float32),
        np.zeros((0, 4), np.float32),
        np.array([[-100, -100, 300, 400]], np.float32),  # larger than the image: anti-aliased and padded
    ]
    cams = [None, camera.Intrinsics(500.0, 520.0, 90.0, 160.0), None, camera.Intrinsics.from_focal(300.0, 260, 200)]
    return images, boxes, cams


def reference(predictor, image, boxes, K):
    """As the official demo runs: each person cropped alone, then network, camera and body model."""
    K = K or camera.Intrinsics.default(image.shape[1], image.shape[0])
    net, rows = predictor.network, []
    for box in boxes:
        center, scale = crop.box_to_center_scale(torch.as_tensor(box[None, :4]), rescale=predictor.config.rescale)
        crops = crop.normalize(crop.crop_images(image, center, scale, net.model.crop_height))
        focal, principal = torch.tensor([K.focal]), torch.tensor([[K.cx, K.cy]])
        info = camera.bbox_info(center, 200 * scale, focal, principal, style=net.bbox_info)
        with torch.no_grad():
            out = net.model(crops, info)
            transl = camera.cam_crop_to_full(out.cam, center, 200 * scale, focal, principal)
            body = predictor.body(out.rotmat, out.betas, transl)
        rows.append({"rotmat": out.rotmat[0], "betas": out.betas[0], "cam": out.cam[0], "transl": transl[0], "vertices": body.vertices[0]})
    return rows


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batches_equal_the_per_person_loop(res50_ckpt, toy_smpl, batch_size):
    predictor = Predictor(PredictorConfig(checkpoint=str(res50_ckpt), body_model=str(toy_smpl), engine=EngineConfig(batch_size=batch_size)))
    images, boxes, cams = scenes()
    requests = [Request(im, boxes=b if len(b) else np.zeros((0, 4)), intrinsics=K) for im, b, K in zip(images, boxes, cams)]
    results = list(predictor.predict_many(requests))
    assert [r for r, _ in results] == requests
    for (_, result), image, b, K in zip(results, images, boxes, cams):
        expected = reference(predictor, image, b, K)
        assert len(result.people) == len(expected)
        for person, ref in zip(result.people, expected):
            for key, attr in (("rotmat", "rotmat"), ("betas", "betas"), ("cam", "pred_cam"), ("transl", "transl"), ("vertices", "vertices")):
                np.testing.assert_allclose(getattr(person, attr), ref[key].numpy(), rtol=1e-4, atol=1e-4, err_msg=key)
        one = predictor(image, boxes=b if len(b) else np.zeros((0, 4)), intrinsics=K)  # the single-image call
        for a, c in zip(one.people, result.people):
            np.testing.assert_allclose(a.vertices, c.vertices, atol=1e-4)


def test_a_bad_image_fails_alone(res50_ckpt, toy_smpl, tmp_path):
    predictor = Predictor(PredictorConfig(checkpoint=str(res50_ckpt), body_model=str(toy_smpl)))
    images, boxes, _ = scenes()
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    requests = [Request(images[0], boxes=boxes[0]), Request(tmp_path / "broken.jpg"), Request(images[1], boxes=np.array([[1e6, 0, 2e6, 10]]))]
    out = [r for _, r in predictor.predict_many(requests)]
    assert len(out[0].people) == 4
    assert isinstance(out[1], CliffError) and "broken.jpg" in str(out[1])
    assert isinstance(out[2], CliffError) and "outside" in str(out[2])


def test_batched_crops_equal_crops_one_by_one():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    center = torch.tensor([[45.0, 60.0], [0.0, 0.0], [80.0, 110.0], [45.0, 60.0]])
    scale = torch.tensor([0.5, 0.3, 2.5, 1.4])  # anti-aliasing levels 0, 0, 9 and 5 for 16-row crops
    together = crop.crop_images(image, center, scale, height=16)
    alone = torch.cat([crop.crop_images(image, center[i:i + 1], scale[i:i + 1], height=16) for i in range(4)])
    assert torch.equal(together, alone)
    assert not torch.equal(together[0], together[3])


def test_prefetch_keeps_order_and_hands_each_failure_to_its_item():
    def load(x):
        if x == 3:
            raise CliffError("three")
        time.sleep(0.01 * (5 - x))  # early items finish last
        return x * 10

    for depth in (0, 1, 4):
        got = []
        for item, future in prefetch(range(5), load, depth):
            try:
                got.append((item, future.result()))
            except CliffError as e:
                got.append((item, str(e)))
        assert got == [(0, 0), (1, 10), (2, 20), (3, "three"), (4, 40)]


def test_the_thread_tuner_follows_the_faster_count():
    cost = {1: 0.02, 2: 0.002}  # seconds per call on n threads: first 2 wins, then the machine gets busy

    def work(tuner):
        with tuner(1) as n:
            assert torch.get_num_threads() == n
            time.sleep(cost[n])
        return n

    tuner = ThreadTuner(candidates=(1, 2), every=4)
    before = torch.get_num_threads()
    used = [work(tuner) for _ in range(12)]
    assert torch.get_num_threads() == before  # restored after each call
    assert used[:2] == [2, 1] and used[2:].count(2) >= 7
    cost[1], cost[2] = 0.002, 0.02
    used = [work(tuner) for _ in range(12)]
    assert used[-4:].count(1) >= 3  # found again after the next look at the other count


def test_engine_settings_are_checked():
    for bad in ({"batch_size": 0}, {"prefetch": -1}, {"precision": "fp8"}, {"batch_size": 2.5}, {"threads": 0}):
        with pytest.raises(CliffError):
            EngineConfig(**bad)


def test_in_order_hands_back_results_in_order_and_stops_at_a_failure():
    from cliffhmr.inference.engine import InOrder

    calls = []

    def work(x):
        time.sleep(0.01 * (3 - x % 3))
        calls.append(x)
        if x == 4:
            raise CliffError("disk full")
        return x * x

    got = []
    with InOrder(depth=2) as steps:
        for x in range(4):
            got += list(steps.submit(x, work, x))
            assert len(steps.pending) <= 2
        got += list(steps.drain())
    assert got == [(0, 0), (1, 1), (2, 4), (3, 9)]
    with pytest.raises(CliffError, match="disk full"):
        with InOrder(depth=1) as steps:
            for x in range(4, 9):
                list(steps.submit(x, work, x))
    assert 8 not in calls  # queued after the failure: dropped


def test_precision_and_batch_size_from_the_command_line(res50_ckpt, toy_smpl, photo, tmp_path, capsys):
    """--precision bf16 runs the network in bfloat16 (close to fp32, not equal); --batch-size is checked."""
    from conftest import run

    image, boxes = photo
    common = ["predict", image, "--boxes", boxes, "--checkpoint", res50_ckpt, "--smpl", toy_smpl, "--no-render", "--no-mesh"]
    got = {}
    for precision in ("fp32", "bf16"):
        code, io = run([*common, "--out", tmp_path / precision, "--precision", precision, "--batch-size", "1"], capsys)
        assert code == 0, io.err
        got[precision] = np.load(tmp_path / precision / f"{image.stem}.npz")
        if precision == "bf16":  # said where the CPU would emulate it, and only there
            assert ("no bfloat16 instructions" in io.err) == (not cpu_has_bf16())
    rot32, rot16 = got["fp32"]["rotmat"], got["bf16"]["rotmat"]
    assert not np.array_equal(rot32, rot16) and np.abs(rot32 - rot16).max() < 0.2
    code, io = run([*common, "--out", tmp_path / "bad", "--batch-size", "0"], capsys)
    assert code == 2 and "batch size must be a whole number from 1 to 65536" in io.err and "Traceback" not in io.err
