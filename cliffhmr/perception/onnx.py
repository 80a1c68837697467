"""Running the bundled ONNX models (detectors, BlazePose, MoveNet) with onnxruntime on the CPU:
where the files are, how a session is made, and the images they take."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import CliffError

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def ort_session(path: str | os.PathLike, what: str):
    """Create a CPU onnxruntime session with thread counts suited to a small machine."""
    path = Path(path)
    if not path.is_file():
        raise CliffError(f"{what} model not found: {path}")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between runs: the pipeline alternates between several sessions (detector,
    # pose detector, landmark model), and spinning pools steal the 2 cores from each other
    # (measured: 38 ms -> 16 ms for one pose-detector + landmark pass).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise CliffError(f"{what} model could not be loaded: {path} ({type(exc).__name__})") from exc


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Check/convert an image array to (H, W, 3) uint8 RGB (gray and RGBA are accepted)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise CliffError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise CliffError(f"image must be an (H, W, 3) RGB array, got shape {image.shape}")
    return np.ascontiguousarray(image)


class LazySession:
    """A class attribute giving each instance an onnxruntime session for the model file named by
    its attribute `path_attr`, made on first use: a run that never needs a model never loads it.

        class PersonDetector:
            session = LazySession("model_path", "person detector")
    """

    def __init__(self, path_attr: str, what: str):
        self.path_attr, self.what = path_attr, what

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if obj.__dict__.get(self.slot) is None:
            obj.__dict__[self.slot] = ort_session(getattr(obj, self.path_attr), self.what)
        return obj.__dict__[self.slot]
