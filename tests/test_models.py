"""CLIFF networks: official state_dict layout, forward contract, checkpoint loading and saving."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest
import torch

from cliffhmr.errors import CliffError
from cliffhmr.models import CLIFF, detect_backbone, load_checkpoint, save_checkpoint
from cliffhmr.models.checkpoint import strip_wrapper_prefixes

# state_dict entries (incl. BN num_batches_tracked and the regressor buffers) and parameters in millions.
EXPECTED = {"res50": (331, 27.0), "hr48": (1967, 78.9)}


@pytest.fixture(scope="module")
def build():
    """Build each backbone at most once per module: HRNet-W48 takes a while."""
    cache: dict[str, CLIFF] = {}

    def get(backbone: str) -> CLIFF:
        if backbone not in cache:
            torch.manual_seed(0)
            cache[backbone] = CLIFF(backbone).eval()
        return cache[backbone]

    return get


@pytest.fixture(params=list(EXPECTED))
def model(request, build) -> CLIFF:
    return build(request.param)


def random_state_dict(model: CLIFF) -> dict[str, torch.Tensor]:
    return {
        k: torch.randn_like(v) if v.is_floating_point() else torch.randint_like(v, 1000)
        for k, v in model.state_dict().items()
    }


def save_official(path, state_dict: dict[str, torch.Tensor], prefix: str = "") -> str:
    torch.save({"model": {prefix + k: v for k, v in state_dict.items()}}, path)
    return str(path)


def test_entry_and_parameter_counts(model):
    entries, params_m = EXPECTED[model.backbone]
    assert len(model.state_dict()) == entries
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == params_m


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_checkpoint_loads_strictly(model, tmp_path, prefix):
    sd = random_state_dict(model)
    path = save_official(tmp_path / "official.pt", sd, prefix)
    loaded = load_checkpoint(path)
    assert (loaded.backbone, loaded.bbox_info) == (model.backbone, "official")
    assert not loaded.model.training
    got = loaded.model.state_dict()
    assert got.keys() == sd.keys()
    assert all(torch.equal(got[k], v) for k, v in sd.items())


def test_wrapper_prefixes_are_one_rule():
    """DataParallel/DDP's `module.` and torch.compile's `_orig_mod.`, alone, nested either way, on every key."""
    w = torch.zeros(1)
    sd = {"module._orig_mod.fc1.weight": w, "_orig_mod.module.fc2.bias": w, "module.encoder.conv1.weight": w,
          "_orig_mod.decpose.weight": w, "deccam.bias": w}  # fmt: skip
    assert list(strip_wrapper_prefixes(sd)) == ["fc1.weight", "fc2.bias", "encoder.conv1.weight", "decpose.weight", "deccam.bias"]
    assert list(strip_wrapper_prefixes({"modules.x": w, "module_y": w})) == ["modules.x", "module_y"]  # not prefixes


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod."])
def test_compiled_model_checkpoint_loads(build, tmp_path, prefix):
    """A checkpoint saved from a torch.compile'd (and DDP-wrapped) model loads like any other."""
    model = build("res50")
    sd = random_state_dict(model)
    loaded = load_checkpoint(save_official(tmp_path / "compiled.pt", sd, prefix)).model.state_dict()
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], v) for k, v in sd.items())


def test_forward_shapes_and_proper_rotations(model):
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 256, 192), torch.randn(2, 3))
    assert out.rotmat.shape == (2, 24, 3, 3)
    assert out.pose6d.shape == (2, 144)
    assert out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3)
    R = out.rotmat
    assert torch.allclose(R.transpose(-1, -2) @ R, torch.eye(3).expand_as(R), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, 24), atol=1e-5)


def test_default_initial_estimate(build):
    model = build("res50")
    assert torch.equal(model.init_pose, torch.tensor([[1.0, 0, 0, 1, 0, 0] * 24]))
    assert torch.equal(model.init_shape, torch.zeros(1, 10))
    assert torch.equal(model.init_cam, torch.tensor([[0.9, 0, 0]]))


def test_regressor_adds_to_running_estimate():
    model = CLIFF("res50").eval()
    for head in (model.decpose, model.decshape, model.deccam):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    for buf in (model.init_pose, model.init_shape, model.init_cam):
        buf.normal_()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 192), torch.randn(1, 3))
    assert torch.equal(out.pose6d, model.init_pose)
    assert torch.equal(out.betas, model.init_shape)
    assert torch.equal(out.cam, model.init_cam)


def test_mean_params_file(tmp_path):
    pose6d = np.random.default_rng(0).normal(size=144).astype(np.float32)
    np.savez(tmp_path / "mean6d.npz", pose=pose6d, shape=np.arange(10.0), cam=np.array([0.8, 0.1, 0.2]))
    model = CLIFF("res50", mean_params=tmp_path / "mean6d.npz")
    assert torch.equal(model.init_pose[0], torch.from_numpy(pose6d))
    assert torch.equal(model.init_shape[0], torch.arange(10.0))
    assert torch.allclose(model.init_cam[0], torch.tensor([0.8, 0.1, 0.2]))

    np.savez(tmp_path / "mean_aa.npz", pose=np.zeros(72), shape=np.zeros(10), cam=np.zeros(3))
    assert torch.equal(CLIFF("res50", mean_params=tmp_path / "mean_aa.npz").init_pose, CLIFF("res50").init_pose)

    np.savez(tmp_path / "bad.npz", pose=np.zeros(10), shape=np.zeros(10), cam=np.zeros(3))
    with pytest.raises(CliffError, match="sizes"):
        CLIFF("res50", mean_params=tmp_path / "bad.npz")


def test_unknown_backbone():
    with pytest.raises(CliffError, match="unknown backbone"):
        CLIFF("vit")


@pytest.fixture(scope="module")
def res50_sd(build) -> dict[str, torch.Tensor]:
    return build("res50").state_dict()


def test_wrong_backbone_names_the_files_backbone(res50_sd, tmp_path):
    path = save_official(tmp_path / "r.pt", res50_sd)
    with pytest.raises(CliffError, match="holds a res50 checkpoint"):
        load_checkpoint(path, backbone="hr48")
    assert load_checkpoint(path, backbone="res50").backbone == "res50"


def test_missing_unexpected_and_misshaped_keys_are_named(res50_sd, tmp_path):
    missing = {k: v for k, v in res50_sd.items() if k != "fc1.bias"}
    with pytest.raises(CliffError, match=r"1 missing key \(fc1\.bias\)"):
        load_checkpoint(save_official(tmp_path / "m.pt", missing))

    unexpected = {**res50_sd, "encoder.fc.weight": torch.zeros(1000, 2048)}
    with pytest.raises(CliffError, match=r"1 unexpected key \(encoder\.fc\.weight\)"):
        load_checkpoint(save_official(tmp_path / "u.pt", unexpected))

    misshaped = {**res50_sd, "deccam.bias": torch.zeros(4)}
    with pytest.raises(CliffError, match=r"deccam\.bias \(4,\) vs \(3,\)"):
        load_checkpoint(save_official(tmp_path / "s.pt", misshaped))


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CliffError, match="junk.pt is not a torch checkpoint"):
        load_checkpoint(junk)

    no_model = tmp_path / "no_model.pt"
    torch.save({"state_dict": {}}, no_model)
    with pytest.raises(CliffError, match="'model'"):
        load_checkpoint(no_model)

    with pytest.raises(CliffError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


class _Exploit:
    """Unpickling this runs code: what weights_only=True must refuse."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Exploit(marker)}, path)
    with pytest.raises(CliffError, match="weights_only"):
        load_checkpoint(path)
    assert not marker.exists()


def test_save_load_round_trip_keeps_config(build, tmp_path):
    model = build("res50")
    path = tmp_path / "sub" / "ours.pt"
    save_checkpoint(path, model, bbox_info="plain", extra={"epoch": 3})
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert raw["config"] == {"backbone": "res50", "bbox_info": "plain", "crop_height": 256}
    assert raw["epoch"] == 3
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind

    loaded = load_checkpoint(path)
    assert (loaded.backbone, loaded.bbox_info) == ("res50", "plain")
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in model.state_dict().items())

    with pytest.raises(CliffError, match="bbox_info"):
        save_checkpoint(path, model, bbox_info="fancy")


def test_detect_backbone(build):
    assert detect_backbone(build("res50").state_dict()) == "res50"
    assert detect_backbone({"module.encoder.stage4.0.x": torch.zeros(1)}) == "hr48"
    with pytest.raises(CliffError, match="cannot tell"):
        detect_backbone({"fc1.weight": torch.zeros(1)})


def test_checkpoint_mode_round_trips(tmp_path):
    model = CLIFF("res50")
    save_checkpoint(tmp_path / "hmr.pt", model, bbox_info="plain", extra={"mode": "hmr"})
    save_checkpoint(tmp_path / "cliff.pt", model, bbox_info="plain")
    assert load_checkpoint(tmp_path / "hmr.pt").mode == "hmr"
    assert load_checkpoint(tmp_path / "cliff.pt").mode == "cliff"  # official files carry no mode
