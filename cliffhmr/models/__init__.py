"""CLIFF networks (ResNet-50 / HRNet-W48 encoders + iterative regressor), checkpoint I/O and
ONNX export."""

import os
from pathlib import Path

import torch

from .checkpoint import LoadedCheckpoint, detect_backbone, load_checkpoint, save_checkpoint
from .cliff import CLIFF, CliffOutput
from .onnx_network import OnnxCliff, export_keypoint_regressor, export_onnx, load_onnx


def load_network(
    path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu", channels_last: bool = False
) -> LoadedCheckpoint:
    """A network file a user names: an exported `.onnx` runs in onnxruntime (which chooses its
    own layout), anything else is a torch checkpoint (official or ours)."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx(path, backbone=backbone, device=device)
    return load_checkpoint(path, backbone=backbone, device=device, channels_last=channels_last)


__all__ = ["CLIFF", "CliffOutput", "LoadedCheckpoint", "OnnxCliff", "detect_backbone", "export_keypoint_regressor", "export_onnx", "load_checkpoint",
           "load_network", "load_onnx", "save_checkpoint"]
