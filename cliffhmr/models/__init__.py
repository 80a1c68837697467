"""CLIFF networks (ResNet-50 / HRNet-W48 encoders + iterative regressor) and checkpoint I/O."""

from .checkpoint import LoadedCheckpoint, detect_backbone, load_checkpoint, save_checkpoint
from .cliff import CLIFF, CliffOutput

__all__ = ["CLIFF", "CliffOutput", "LoadedCheckpoint", "detect_backbone", "load_checkpoint", "save_checkpoint"]
