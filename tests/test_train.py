"""Training engine on a tiny synthetic dataset: train -> eval end to end, DDP on CPU, exact resume, NaN stop."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cliffhmr import cli
from cliffhmr.body import load_smpl
from cliffhmr.data.datasets import DatasetSpec, NpzDataset
from cliffhmr.data.joints import body_to_j24
from cliffhmr.errors import CliffError
from cliffhmr.geometry.camera import cam_full_to_crop
from cliffhmr.models import CLIFF, CliffOutput, load_checkpoint
from cliffhmr.synthetic.images import SyntheticConfig, generate_synthetic, write_upright_mean_params
from cliffhmr.synthetic.toy_smpl import write_toy_smpl
from cliffhmr.train.checkpoint import load_pretrained_backbone
from cliffhmr.train.config import RunConfig, load_config
from cliffhmr.train.engine import train
from cliffhmr.train.losses import LossConfig, compute_losses, project_crop, project_full, to_box_units

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_toy_smpl(root / "toy_smpl.npz")
    write_upright_mean_params(root / "mean_params.npz")
    generate_synthetic(root, root / "toy_smpl.npz", SyntheticConfig(train=8, test=4, width=200, height=150, seed=1))
    return root


def _overrides(data: Path, out: Path, steps: int, **extra) -> list[str]:
    items = {
        "data.datasets": f"[{{name: synth, npz: '{data / 'train.npz'}', root: '{data}'}}]",
        "data.batch_size": 2,
        "data.num_workers": 0,
        "body.smpl": f"'{data / 'toy_smpl.npz'}'",
        "model.mean_params": f"'{data / 'mean_params.npz'}'",
        "train.out_dir": f"'{out}'",
        "train.steps": steps,
        "train.progress": "false",
        "train.precision": "fp32",
        "train.device": "cpu",
        **extra,
    }
    return [f"{k}={v}" for k, v in items.items()]


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ------------------------------------------------------------------------ config


@pytest.mark.parametrize("name", ["cliff_res50", "hmr_res50", "synthetic_tiny"])
def test_shipped_configs_load(name):
    cfg = load_config(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    assert cfg.loss.mode == ("hmr" if name.startswith("hmr") else "cliff")
    assert cfg.data.datasets and cfg.body.smpl


def test_config_errors_are_one_clear_line(tmp_path):
    good = ["data.datasets=[{npz: a.npz, root: r}]", "body.smpl=s.pkl"]
    assert load_config(None, [*good, "optim.lr=1", "train.steps=7"]).optim.lr == 1.0
    with pytest.raises(CliffError, match=r"unknown key optim\.lrr"):
        load_config(None, [*good, "optim.lrr=1"])
    with pytest.raises(CliffError, match=r"train\.steps must be int"):
        load_config(None, [*good, "train.steps=many"])
    with pytest.raises(CliffError, match="loss.mode"):
        load_config(None, [*good, "loss.mode=spin"])
    with pytest.raises(CliffError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------ losses


def test_full_frame_loss_is_exact_for_the_true_camera(synthetic):
    """Ground-truth body + the crop camera equivalent to its true translation reprojects onto the
    labels exactly in the full image; the HMR crop camera cannot, for off-centre people."""
    body = load_smpl(str(synthetic / "toy_smpl.npz"), torch.device("cpu"))
    ann = np.load(synthetic / "train.npz")
    ds = NpzDataset(DatasetSpec(str(synthetic / "train.npz"), str(synthetic)))
    batch = torch.utils.data.default_collate([ds[(i, 0)] for i in range(4)])
    posed = body(batch["rotmat"], batch["betas"], None)
    joints = body_to_j24(posed.joints, posed.keypoints)
    transl = torch.from_numpy(ann["transl"][:4])
    cam = cam_full_to_crop(transl, batch["center"], batch["b"], batch["focal"], batch["principal"])
    full = project_full(joints, cam, batch["center"], batch["b"], batch["focal"], batch["principal"])
    assert torch.allclose(full, batch["keypoints"][..., :2], atol=1e-2)
    gt = to_box_units(batch["keypoints"][..., :2], batch["center"], batch["b"])
    cfg = LossConfig()
    crop = project_crop(joints, cam, 2 * cfg.hmr_focal / cfg.hmr_crop)
    assert (crop - gt).abs().max() > 0.05


@pytest.mark.parametrize("mode", ["cliff", "hmr"])
def test_negative_camera_scale_gives_a_bounded_loss_that_pushes_it_back(synthetic, mode):
    """One bad step can send s below zero (body behind the camera, unbounded reprojection); the loss
    must stay moderate and its gradient must raise s again."""
    body = load_smpl(str(synthetic / "toy_smpl.npz"), torch.device("cpu"))
    ds = NpzDataset(DatasetSpec(str(synthetic / "train.npz"), str(synthetic)))
    batch = torch.utils.data.default_collate([ds[(i, 0)] for i in range(2)])
    cam = torch.tensor([[-0.4, 0.0, 0.0], [0.9, 0.0, 0.0]], requires_grad=True)
    out = CliffOutput(rotmat=batch["rotmat"], pose6d=torch.zeros(2, 144), betas=batch["betas"], cam=cam)
    total, parts = compute_losses(out, body, batch, LossConfig(mode=mode))
    total.backward()
    assert torch.isfinite(total) and parts["keypoints_2d"] < 10  # unguarded: ~1e7
    assert cam.grad[0, 0] < 0 and torch.isfinite(cam.grad).all()


def test_pretrained_backbone_loads_imagenet_layout(tmp_path):
    model = CLIFF("res50")
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.encoder.state_dict().items()}
    torch.save({"state_dict": {**sd, "fc.weight": torch.zeros(1000, 2048)}}, tmp_path / "imagenet.pth")
    load_pretrained_backbone(model, str(tmp_path / "imagenet.pth"))
    assert torch.equal(model.encoder.conv1.weight, sd["conv1.weight"])
    torch.save({"_orig_mod.module.encoder." + k: 2 * v for k, v in sd.items()}, tmp_path / "compiled.pth")  # torch.compile + DDP
    load_pretrained_backbone(model, str(tmp_path / "compiled.pth"))
    assert torch.equal(model.encoder.conv1.weight, 2 * sd["conv1.weight"])
    torch.save({k: v for k, v in sd.items() if not k.startswith("layer4")}, tmp_path / "partial.pth")
    with pytest.raises(CliffError, match=r"partial\.pth: does not fit the res50 encoder"):
        load_pretrained_backbone(model, str(tmp_path / "partial.pth"))


# ------------------------------------------------------------------------ engine


def test_train_then_eval_end_to_end(synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--config", str(Path(__file__).parents[1] / "configs/synthetic_tiny.yaml"),
                     *_overrides(synthetic, out, 3, **{"model.crop_height": 128})]) == 0
    losses = _losses(out)
    assert len(losses) == 3 and all(np.isfinite(losses))
    ckpt = load_checkpoint(out / "final.pt")  # the official layout: loads like the released weights
    assert (ckpt.backbone, ckpt.bbox_info, ckpt.model.crop_height) == ("res50", "official", 128)
    assert cli.main(["eval", "--checkpoint", str(out / "final.pt"), "--dataset", "synthetic", "--root", str(synthetic),
                     "--smpl", str(synthetic / "toy_smpl.npz"), "--out", str(out), "--workers", "0"]) == 0
    res = json.loads((out / "synthetic_results.json").read_text())
    assert res["overall"]["n"] == 4 and res["protocol"]["boxes"] == {"projected ground truth": 4}
    for key in ("mpjpe", "pa_mpjpe", "pve", "root_orient_deg"):
        assert np.isfinite(res["overall"][key])
    assert res["overall"]["pa_mpjpe"] <= res["overall"]["mpjpe"]
    assert "| synthetic | 4 |" in (out / "synthetic_results.md").read_text()
    per = np.load(out / "synthetic_per_sample.npz")
    assert list(per["imgname"]) == list(np.load(synthetic / "test.npz")["imgname"])
    for key in ("mpjpe", "pa_mpjpe", "pve", "root_orient_deg"):
        assert per[key].mean() == pytest.approx(res["overall"][key])
    bins = {"0-10 deg": (0, 10), "10-20 deg": (10, 20), "20-30 deg": (20, 30), ">=30 deg": (30, 180)}
    for name, st in res["by_off_center"].items():
        lo, hi = bins[name]
        rows = (per["off_center_deg"] >= lo) & (per["off_center_deg"] < hi)
        assert rows.sum() == st["n"] and per["mpjpe"][rows].mean() == pytest.approx(st["mpjpe"])
    # A user mistake is one line and exit code 2.
    assert cli.main(["eval", "--checkpoint", str(out / "final.pt"), "--dataset", "synthetic", "--root", str(tmp_path / "x"),
                     "--smpl", str(synthetic / "toy_smpl.npz")]) == 2
    assert "dataset root not found" in capsys.readouterr().err


def test_hmr_baseline_is_one_flag(synthetic, tmp_path):
    """loss.mode=hmr trains without bbox_info; its checkpoint says so and evaluation feeds zeros."""
    from cliffhmr.evaluation.evaluate import EvalSettings, evaluate

    out = tmp_path / "hmr"
    train(load_config(None, _overrides(synthetic, out, 1, **{"loss.mode": "hmr"})))
    assert torch.load(out / "final.pt", map_location="cpu", weights_only=True)["mode"] == "hmr"
    res = evaluate(EvalSettings(str(out / "final.pt"), "synthetic", str(synthetic), smpl=str(synthetic / "toy_smpl.npz"), workers=0))
    assert res["mode"] == "hmr" and res["bbox_info"].startswith("zeros")


def test_bf16_autocast_trains_and_keeps_float32_weights(synthetic, tmp_path, monkeypatch):
    """The GPU default (bf16 autocast) on the CPU: the network runs in bf16, the regressor's outputs and the
    losses stay float32, and the saved weights are float32 and moved."""
    import cliffhmr.train.engine as train_mod

    real, seen = train_mod.compute_losses, []

    def spy(pred, *args, **kwargs):
        seen.append((pred.rotmat.dtype, pred.cam.dtype, torch.is_autocast_enabled("cpu")))
        return real(pred, *args, **kwargs)

    real_autocast, contexts = train_mod._autocast, []

    @contextlib.contextmanager
    def autocast_spy(run, device):
        with real_autocast(run, device):
            contexts.append((torch.get_autocast_dtype("cpu"), torch.is_autocast_enabled("cpu")))
            yield

    monkeypatch.setattr(train_mod, "compute_losses", spy)
    monkeypatch.setattr(train_mod, "_autocast", autocast_spy)
    out = tmp_path / "bf16"
    train_mod.train(load_config(None, _overrides(synthetic, out, 2, **{"train.precision": "bf16"})))
    assert seen == [(torch.float32, torch.float32, False)] * 2
    assert contexts == [(torch.bfloat16, True)] * 2  # the network's forward ran under bf16 autocast
    assert all(np.isfinite(_losses(out)))
    weights = _weights(out / "final.pt")
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert not torch.equal(weights["fc1.weight"], CLIFF("res50").fc1.weight)
    # The same autocast does run the network in bf16; fp32 turns it off.
    net, img = CLIFF("res50", crop_height=64).encoder, torch.zeros(1, 3, 64, 48)
    cpu = torch.device("cpu")
    with train_mod._autocast(RunConfig(precision="bf16"), cpu):
        assert net(img).dtype == torch.bfloat16
    with train_mod._autocast(RunConfig(precision="fp32"), cpu):
        assert net(img).dtype == torch.float32


def test_nan_loss_stops_with_step_and_batch(synthetic, tmp_path, monkeypatch):
    """A non-finite loss stops every rank before the update; the last checkpoint stays the last good one."""
    import cliffhmr.train.engine as train_mod

    real, calls = train_mod.compute_losses, []

    def poisoned(*args, **kwargs):
        total, parts = real(*args, **kwargs)
        calls.append(1)
        return (total * float("nan"), parts) if len(calls) == 3 else (total, parts)

    monkeypatch.setattr(train_mod, "compute_losses", poisoned)
    out = tmp_path / "run"
    cfg = load_config(None, _overrides(synthetic, out, 5, **{"train.checkpoint_every": 1}))
    with pytest.raises(CliffError, match=r"non-finite loss at step 3 .*batch: synth\[\d+\], synth\[\d+\]") as err:
        train_mod.train(cfg)
    assert str(out / "last.pt") in str(err.value)
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert len(_losses(out)) == 2
    assert not list(out.glob(".*partial*"))  # no half-written file left behind


def test_unreadable_image_in_a_loader_worker_is_one_line(synthetic, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    (data / "images/train/000003.png").write_bytes(b"not a png")
    cfg = load_config(None, _overrides(data, tmp_path / "run", 8, **{"data.num_workers": 1}))
    with pytest.raises(CliffError) as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{data / 'train.npz'}: index 3: {data / 'images/train/000003.png'}: not a readable image")


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def test_kill_and_resume_reproduce_the_uninterrupted_run(synthetic, tmp_path):
    """SIGKILL (resume from the last periodic checkpoint) then SIGTERM (checkpoint on the way out), then
    finish: the loss curve and the final weights equal those of one uninterrupted run, bit for bit."""
    steps = 6
    extra = {"train.checkpoint_every": 2, "data.augment.rot_prob": 0.5}
    base = ["-m", "cliffhmr.cli", "train", "--config", str(Path(__file__).parents[1] / "configs/synthetic_tiny.yaml")]

    straight = tmp_path / "straight"
    proc = _start([*base, *_overrides(synthetic, straight, steps, **extra)], tmp_path)
    assert proc.wait(timeout=300) == 0, proc.communicate()[0]

    out = tmp_path / "interrupted"
    args = [*base, *_overrides(synthetic, out, steps, **extra)]
    proc = _start(args, tmp_path)
    _wait_for(proc, lambda: (out / "log.jsonl").exists() and len(_losses(out)) >= 3 and (out / "last.pt").exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_losses(out)) < steps

    proc = _start(args, tmp_path)  # resumes from step 2 (the last checkpoint), drops the later log lines
    _wait_for(proc, lambda: len(_losses(out)) >= 4)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, text
    assert "resumed from" in text and "SIGTERM: stopped at step" in text
    stopped = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"]
    assert 4 <= stopped < steps

    proc = _start(args, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.communicate()[0]
    assert _losses(out) == _losses(straight)
    a, b = _weights(straight / "final.pt"), _weights(out / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_cpu_ranks_end_with_identical_weights(synthetic, tmp_path):
    out = tmp_path / "ddp"
    script = tmp_path / "ddp_train.py"
    # `torchrun -m cliffhmr.cli train ...` as documented (runpy is how -m runs a module), keeping each
    # rank's final weights on the side.
    script.write_text(textwrap.dedent(f"""
        import os, runpy, sys, torch
        import cliffhmr.train.engine as engine
        real = engine.train
        def train_and_keep(cfg):
            result = real(cfg)
            torch.save(result.model.state_dict(), os.path.join({str(out)!r}, f"rank{{os.environ['RANK']}}.pt"))
            return result
        engine.train = train_and_keep
        sys.argv = ["cliffhmr", "train", *sys.argv[1:]]
        runpy.run_module("cliffhmr.cli", run_name="__main__")
    """))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           "--config", str(Path(__file__).parents[1] / "configs/synthetic_tiny.yaml"), *_overrides(synthetic, out, 3, **{"data.batch_size": 1})]
    run = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    r0, r1 = torch.load(out / "rank0.pt", weights_only=True), torch.load(out / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert not torch.equal(r0["fc1.weight"], CLIFF("res50").fc1.weight)  # they did train
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 3


def _damaged(ckpt: dict, case: str) -> str:
    """Damage one part of a training checkpoint in place; returns the message expected on resume."""
    state = ckpt["optimizer"]["state"]
    first = next(iter(state))
    if case == "moment of another shape":
        state[first]["exp_avg"] = torch.zeros(3)
        return f"optimizer state 'exp_avg' of parameter {first} has shape (3,)"
    if case == "NaN moment":
        state[first]["exp_avg_sq"] = torch.full_like(state[first]["exp_avg_sq"], torch.nan)
        return "optimizer state 'exp_avg_sq' of parameter"
    if case == "other parameters":
        ckpt["optimizer"]["param_groups"][0]["params"] = [0, 1]
        return "its optimizer state is for other parameters"
    if case == "string learning rate":
        ckpt["optimizer"]["param_groups"][0]["lr"] = "fast"
        return "learning rate is not a finite number"
    if case == "scheduler":
        ckpt["scheduler"]["base_lrs"] = ["0.1"]
        return "damaged learning-rate scheduler state"
    if case == "random state":
        ckpt["rng"] = [{"cpu": torch.zeros(5)}]
        return "damaged random-number state"
    ckpt["step"] = "12"
    return "its step is '12', not a count"


def test_resume_refuses_damaged_training_state(synthetic, tmp_path):
    """Each damage torch would accept on load and fail on later (the first update, the first
    learning-rate step) is one line naming the file, before any step runs."""
    out = tmp_path / "run"
    train(load_config(None, _overrides(synthetic, out, 1)))
    good = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    cases = ["moment of another shape", "NaN moment", "other parameters", "string learning rate", "scheduler",
             "random state", "step"]  # fmt: skip
    for case in cases:
        ckpt = copy.deepcopy(good)
        expected = _damaged(ckpt, case)
        torch.save(ckpt, tmp_path / "damaged.pt")
        cfg = load_config(None, _overrides(synthetic, tmp_path / case.replace(" ", "_"), 2,
                                           **{"train.resume": f"'{tmp_path / 'damaged.pt'}'"}))  # fmt: skip
        with pytest.raises(CliffError, match=re.escape(expected)) as err:
            train(cfg)
        assert "damaged.pt: cannot resume from it" in str(err.value) and "\n" not in str(err.value), case
