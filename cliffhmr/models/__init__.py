"""CLIFF networks (ResNet-50 / HRNet-W48 encoders + iterative regressor), checkpoint I/O and
ONNX export."""

import os
from pathlib import Path

import torch

from .checkpoint import LoadedCheckpoint, detect_backbone, load_checkpoint, save_checkpoint
from .cliff import CLIFF, CliffOutput
from .onnx_network import OnnxCliff, export_onnx, load_onnx


def load_network(path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """A network file a user names: an exported `.onnx` runs in onnxruntime, anything else is a
    torch checkpoint (official or ours)."""
    load = load_onnx if Path(path).suffix.lower() == ".onnx" else load_checkpoint
    return load(path, backbone=backbone, device=device)


__all__ = ["CLIFF", "CliffOutput", "LoadedCheckpoint", "OnnxCliff", "detect_backbone", "export_onnx", "load_checkpoint",
           "load_network", "load_onnx", "save_checkpoint"]
