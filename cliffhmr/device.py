"""The torch device a user names (--device, train.device, PredictorConfig.device), checked once."""

from __future__ import annotations

import torch

from .errors import CliffError


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu; anything else must name a device this
    machine has. CliffError for a misspelt name or a GPU that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise CliffError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CliffError(f"device {name!r}: no CUDA GPU is visible to this torch build ({torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CliffError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device
