"""The work behind the API: one prediction at a time on the shared models, a bounded number of
requests waiting behind it, and each request's files in a folder the server names.

Nothing a client sends names a file: a result folder is a random id under a temporary root that
the server made, and the files in it are `write_outputs`' own names for the stem "result".
"""

from __future__ import annotations

import asyncio
import collections
import copy
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..geometry.camera import Intrinsics
from ..inference.outputs import IMAGE_FILES, VIDEO_FILES, write_outputs
from ..inference.pipeline import ImageResult, Predictor
from ..perception.image import decode_image

RESULT_STEM = "result"
RESULT_ID = re.compile(r"[0-9a-f]{32}")
RESULT_FILE = re.compile(rf"{RESULT_STEM}({IMAGE_FILES}|{VIDEO_FILES})")


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: float = 20 * 2**20  # the whole request body
    max_pixels: float = 40_000_000  # read from the image's header, before it is decoded
    queue: int = 4  # requests admitted to wait behind the running one; more get 503
    timeout_s: float = 120.0  # from admission to the answer, waiting included
    keep_results: int = 100  # result folders kept; the oldest go first
    max_fit_iterations: int = 1000
    max_frames: int = 900  # frames a video job may process

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "keep_results", "max_fit_iterations", "max_frames", "timeout_s"):
            value, least = getattr(self, name), 0.01 if name == "timeout_s" else 1
            if not (isinstance(value, (int, float)) and least <= value < math.inf):  # NaN too
                raise CliffError(f"{name.replace('_', ' ')} must be a number from {least:g} up, got {value!r}")
        if not self.queue >= 0:
            raise CliffError(f"the queue length must be 0 or more, got {self.queue!r}")


@dataclass
class Inputs:
    """One request's image file and settings, checked."""

    data: bytes
    boxes: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    focal: float | None = None
    fit_iterations: int | None = None
    render: bool = True
    meshes: bool = True


class Busy(Exception):
    """Every place in the queue is taken; `retry_after` seconds is about when one frees."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy ({retry_after} s until a place in its queue frees, about)")
        self.retry_after = retry_after


class TimedOut(Exception):
    pass


class Results:
    """Result folders `root/<id>/` under a temporary root of the server's own; at most `keep`."""

    def __init__(self, keep: int):
        self.root = Path(tempfile.mkdtemp(prefix="cliffhmr-serve-"))
        self.keep = keep
        self._finished: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()

    def new(self) -> tuple[str, Path]:
        result_id = secrets.token_hex(16)
        folder = self.root / result_id
        folder.mkdir()
        return result_id, folder

    def publish(self, result_id: str) -> None:
        with self._lock:
            self._finished.append(result_id)
            while len(self._finished) > self.keep:
                shutil.rmtree(self.root / self._finished.popleft(), ignore_errors=True)

    def file(self, result_id: str, name: str) -> Path | None:
        """The result file, or None; both parts must have the shapes the server gives them."""
        if not (RESULT_ID.fullmatch(result_id) and RESULT_FILE.fullmatch(name)):
            return None
        path = self.root / result_id / name
        return path if path.is_file() else None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Worker:
    """Predictions on one thread: the models are shared, and torch already uses the cores. At most
    1 + `limits.queue` requests are admitted at a time; the next is refused (`Busy`), so the
    backlog never grows without bound. A request past its timeout is answered at once; its
    prediction, when already running, finishes and its files are dropped, and only then does its
    place free."""

    def __init__(self, predictor: Predictor, limits: Limits, results: Results):
        self.predictor, self.limits, self.results = predictor, limits, results
        if predictor.method == "fit":  # built now, so that copies with other settings share them
            _ = predictor.detector, predictor.pose_estimator
        self.admitted = 0
        self.seconds = 5.0  # a prediction's time, for Retry-After, until one has been timed
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cliffhmr-predict")

    @property
    def capacity(self) -> int:
        return 1 + self.limits.queue

    def check_room(self) -> None:
        """`Busy` when every place is taken: called before an upload is read into memory, too."""
        if self.admitted >= self.capacity:
            raise Busy(max(1, math.ceil(self.seconds)))

    def submit(self, fn, *args) -> Future:
        """Admit `fn(*args)` (`Busy` when every place is taken) and run it on the prediction thread.
        Called from the event loop, which alone counts the places."""
        self.check_room()
        self.admitted += 1
        loop = asyncio.get_running_loop()
        job = self._executor.submit(fn, *args)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return job

    async def run(self, inputs: Inputs) -> tuple[str, ImageResult, list[Path]]:
        """Predict and write one request's files -> (result id, result, files written)."""
        abandoned = threading.Event()
        job = self.submit(self._predict, inputs, abandoned)
        try:
            # Cancelling the wrapper cancels a job still waiting; a running one sees `abandoned`.
            return await asyncio.wait_for(asyncio.wrap_future(job), self.limits.timeout_s)
        except asyncio.TimeoutError:
            abandoned.set()
            raise TimedOut(f"no answer within the server's {self.limits.timeout_s:g} s timeout") from None
        except asyncio.CancelledError:  # the client went away
            abandoned.set()
            raise

    def _release(self) -> None:
        self.admitted -= 1

    def _predict(self, inputs: Inputs, abandoned: threading.Event):
        start = time.perf_counter()
        image = decode_image(inputs.data, "upload", self.limits.max_pixels)
        result = self.predictor_for(inputs.fit_iterations)(image, boxes=inputs.boxes, intrinsics=inputs.intrinsics, focal=inputs.focal,
                           keypoints=inputs.keypoints, keypoints_source="keypoints field")  # fmt: skip
        result_id, folder = self.results.new()
        try:
            written, _ = write_outputs(result, folder, RESULT_STEM, meshes=inputs.meshes, images=inputs.render)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if abandoned.is_set():
            shutil.rmtree(folder, ignore_errors=True)
            raise TimedOut("abandoned")
        self.results.publish(result_id)
        self.seconds = 0.8 * self.seconds + 0.2 * (time.perf_counter() - start)
        return result_id, result, written

    def predictor_for(self, fit_iterations: int | None) -> Predictor:
        if fit_iterations is None:
            return self.predictor
        predictor = copy.copy(self.predictor)  # the same models; only this request's settings differ
        predictor.config = replace(predictor.config, fit_iterations=fit_iterations)
        return predictor

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
