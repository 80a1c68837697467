"""CLIFF networks as ONNX files: `export_onnx` writes one (torch's dynamo exporter, opset 18,
dynamic batch axis) and `load_onnx` runs it through onnxruntime behind CLIFF's own interface,
so every command that takes `--checkpoint` takes the exported file too. The bundled keypoint
regressor exports the same way (`export_keypoint_regressor`).

The file's inputs are `crop` (B, 3, H, W) float32, normalised as `cliffhmr.perception.crop.normalize`
makes it, and `bbox_info` (B, 3); its outputs `rotmat` (B, 24, 3, 3), `pose6d` (B, 144),
`betas` (B, 10) and `cam` (B, 3), as `CliffOutput`. What the pipeline needs to feed it (the
backbone, crop height, bbox_info style, regressor iterations) is stored in the file's metadata.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import CliffError
from ..geometry.camera import BBOX_INFO_STYLES
from ..perception.onnx import ort_session
from .checkpoint import LoadedCheckpoint
from .cliff import CLIFF, CliffOutput
from .keypoint_regressor import KeypointRegressor

OPSET = 18
FORMAT = "1"
N_ITER = 3  # the regressor's iterations, fixed when the graph is traced
INPUTS = ("crop", "bbox_info")
OUTPUTS = ("rotmat", "pose6d", "betas", "cam")


class _Outputs(nn.Module):
    """CLIFF with a tuple of tensors out (the exporter cannot return a dataclass)."""

    def __init__(self, model: CLIFF):
        super().__init__()
        self.model = model

    def forward(self, crop: torch.Tensor, bbox_info: torch.Tensor):
        out = self.model(crop, bbox_info, n_iter=N_ITER)
        return out.rotmat, out.pose6d, out.betas, out.cam


def export_onnx(loaded: LoadedCheckpoint, path: str | os.PathLike) -> None:
    """Write `loaded`'s network as an ONNX file at `path` (atomically)."""
    model = loaded.model.to("cpu").eval()
    h = model.crop_height
    meta = {"cliffhmr_format": FORMAT, "backbone": loaded.backbone, "bbox_info": loaded.bbox_info, "mode": loaded.mode,
            "crop_height": str(h), "n_iter": str(N_ITER)}  # fmt: skip
    _export(_Outputs(model), (torch.zeros(2, 3, h, h * 3 // 4), torch.zeros(2, 3)), INPUTS, OUTPUTS, meta, path)


class _RegressorOutputs(nn.Module):
    def __init__(self, model: KeypointRegressor):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model(x)


def export_keypoint_regressor(model: KeypointRegressor, path: str | os.PathLike) -> None:
    """Write the keypoint regressor (input `x` (B, 54), see `regressor_inputs`; outputs `rotmat`,
    `betas`, `cam`) as an ONNX file with a dynamic batch axis."""
    meta = {"cliffhmr_format": FORMAT, "network": "keypoint_regressor", **{k: str(v) for k, v in model.config.items()}}
    _export(_RegressorOutputs(model.eval()), (torch.zeros(2, model.inp.in_features),), ("x",), ("rotmat", "betas", "cam"), meta, path)


def _export(module: nn.Module, example: tuple, inputs: tuple, outputs: tuple, meta: dict[str, str], path) -> None:
    """torch's dynamo exporter, opset OPSET, batch axis 0 of every input dynamic, `meta` stored in the file."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise CliffError("ONNX export needs the onnx and onnxscript packages: pip install 'cliff-hmr[onnx]'") from None
    batch = torch.export.Dim("batch")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    # The exporter's notes (deprecations, torchvision ops it skips) are not the user's concern.
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter_log.setLevel(logging.ERROR)
        try:
            torch.onnx.export(module.eval(), example, str(tmp), input_names=list(inputs), output_names=list(outputs),
                              dynamic_shapes={name: {0: batch} for name in inputs}, dynamo=True,
                              opset_version=OPSET, external_data=False, verbose=False)  # fmt: skip
        finally:
            exporter_log.setLevel(level)
        graph = onnx.load(str(tmp))
        onnx.helper.set_model_props(graph, meta)
        onnx.save(graph, str(tmp))


class OnnxCliff:
    """An exported CLIFF network in onnxruntime, called like `CLIFF`: (img, bbox_info) -> CliffOutput.
    The CUDA execution provider is used for a CUDA device when onnxruntime has it."""

    def __init__(self, path: Path, session, crop_height: int):
        self.path, self.session, self.crop_height = path, session, crop_height

    def __call__(self, img: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = N_ITER) -> CliffOutput:
        if n_iter != N_ITER:
            raise CliffError(f"{self.path} was exported with {N_ITER} regressor iterations, not {n_iter}")
        feed = {"crop": img.detach().float().cpu().numpy(), "bbox_info": bbox_info.detach().float().cpu().numpy()}
        out = [torch.from_numpy(np.ascontiguousarray(a)).to(img.device) for a in self.session.run(list(OUTPUTS), feed)]
        return CliffOutput(rotmat=out[0], pose6d=out[1], betas=out[2], cam=out[3])


def load_onnx(path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """An exported network file -> LoadedCheckpoint whose `model` is an `OnnxCliff`."""
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"checkpoint not found: {path}")
    try:
        session = ort_session(path, "CLIFF network")
        meta = session.get_modelmeta().custom_metadata_map
    except Exception as e:  # onnxruntime's errors for a damaged or foreign file
        raise CliffError(f"{path}: not a readable ONNX network ({type(e).__name__})") from None
    if meta.get("cliffhmr_format") != FORMAT or [x.name for x in session.get_inputs()] != list(INPUTS):
        raise CliffError(f"{path}: not a CLIFF network exported by `cliffhmr export` (format {FORMAT})")
    if backbone is not None and backbone != meta.get("backbone"):
        raise CliffError(f"{path} holds a {meta.get('backbone')} network, not {backbone}")
    if meta.get("bbox_info") not in BBOX_INFO_STYLES or not meta.get("crop_height", "").isdigit():
        raise CliffError(f"{path}: damaged metadata {meta}")
    if torch.device(device).type == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            session.set_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = OnnxCliff(path, session, int(meta["crop_height"]))
    return LoadedCheckpoint(model=model, backbone=meta["backbone"], bbox_info=meta["bbox_info"], mode=meta.get("mode", "cliff"))
