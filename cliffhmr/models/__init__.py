"""CLIFF networks (ResNet-50 / HRNet-W48 encoders + iterative regressor) and checkpoint I/O."""

from .cliff import (
    CLIFF,
    CliffOutput,
    LoadedCheckpoint,
    detect_backbone,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["CLIFF", "CliffOutput", "LoadedCheckpoint", "detect_backbone", "load_checkpoint", "save_checkpoint"]
