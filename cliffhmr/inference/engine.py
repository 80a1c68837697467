"""The CLIFF network path in batches: the people of many images, cropped on the device, through
the network and the body model together.

`Predictor` sends every CLIFF-path image through `run_network` (one image is a batch of one) and
`Predictor.predict_many` sends many: images are decoded ahead in a background thread (`prefetch`),
each image is moved to the device once as uint8 and all its people are cut out in one sampling
call per anti-aliasing level (`crop.crop_tensor`), bbox_info and the crop-to-full camera are
computed for the whole batch with each image's own camera, and the network and the body model
run once per batch of people.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..body import BodyModel, BodyOutput, Estimate
from ..device import ThreadTuner, cpu_has_bf16
from ..errors import CliffError
from ..geometry import camera
from ..models import LoadedCheckpoint, OnnxCliff
from ..perception import crop

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class EngineConfig:
    """How `predict_many` batches. The defaults are what measured fastest (benchmarks/throughput.py)."""

    batch_size: int | None = None  # people per network call; None: 8 on a CPU (larger batches measured slower), 256 on a GPU
    prefetch: int = 4  # images decoded ahead of the one being predicted
    precision: str = "auto"  # auto: bf16 on a CUDA GPU that supports it, else fp32 (CPU bf16: opt-in, see README)
    # None: on a GPU only. On this CPU it measured 1.0-1.2x (benchmarks/network_engine.py), and
    # re-laying the weights holds a second copy of them while loading.
    channels_last: bool | None = None
    compile: bool = False  # torch.compile the network (worth it for long runs on a GPU)
    # torch's CPU threads for the network; None: chosen as it runs (`device.ThreadTuner`). A fixed
    # count makes results repeat to the last bit (they depend on it, at 1e-7).
    threads: int | None = None

    def wants_channels_last(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.channels_last is None else self.channels_last

    def __post_init__(self) -> None:
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65536):
            raise CliffError(f"batch size must be a whole number from 1 to 65536, got {self.batch_size!r}")
        if not (isinstance(self.prefetch, int) and 0 <= self.prefetch <= 1024):
            raise CliffError(f"prefetch must be a whole number from 0 to 1024, got {self.prefetch!r}")
        if self.precision not in PRECISIONS:
            raise CliffError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads is not None and not (isinstance(self.threads, int) and 1 <= self.threads <= 1024):
            raise CliffError(f"threads must be a whole number from 1 to 1024, got {self.threads!r}")


@dataclass
class CropBatch:
    """People of several images, in the order given: what the network and the camera need."""

    crops: torch.Tensor  # (P, 3, h, w) normalised, on the device
    center: torch.Tensor  # (P, 2) pixels, CPU
    scale: torch.Tensor  # (P,)
    focal: torch.Tensor  # (P,) CLIFF's single focal length of each person's image
    principal: torch.Tensor  # (P, 2)


@dataclass
class NetworkPeople:
    """The network's reading of P people in the full frame, and their posed bodies."""

    estimate: Estimate  # CPU tensors
    cam: torch.Tensor  # (P, 3) crop camera, CPU
    body: BodyOutput | None  # translation applied, on the device


class Network:
    """A loaded CLIFF network (torch or onnxruntime) with the batching settings applied once:
    precision, memory layout, compilation, and torch's thread count chosen while it runs."""

    def __init__(self, loaded: LoadedCheckpoint, device: torch.device, config: EngineConfig = EngineConfig()):
        self.loaded, self.device, self.config = loaded, device, config
        self.batch_size = config.batch_size or (8 if device.type == "cpu" else 256)
        self.model = loaded.model
        self.is_torch = not isinstance(self.model, OnnxCliff)
        cuda = device.type == "cuda"
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        if config.precision == "auto":
            self.dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
        if self.dtype is torch.bfloat16 and device.type == "cpu" and not cpu_has_bf16():
            warnings.warn("this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX): --precision bf16 runs many "
                          "times slower than fp32 here")
        self.channels_last = self.is_torch and config.wants_channels_last(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.is_torch and config.compile:
            self.model = torch.compile(self.model)
        # onnxruntime owns its threads; torch's are chosen by timing (a busy machine flips which count wins).
        fixed = (config.threads,) if config.threads else None
        self.threads = ThreadTuner(candidates=fixed) if self.is_torch and device.type == "cpu" else None

    @property
    def crop_height(self) -> int:
        return self.loaded.model.crop_height

    @torch.no_grad()
    def __call__(self, crops: torch.Tensor, info: torch.Tensor):
        """crops (P, 3, h, w), bbox_info (P, 3) on the device -> CliffOutput with float32 fields."""
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None and self.is_torch else nullcontext()
        threads = self.threads(len(crops)) if self.threads is not None else nullcontext()
        with threads, autocast:
            out = self.model(crops, info)
        if self.dtype is not None:
            out = type(out)(**{k: v.float() for k, v in vars(out).items()})
        return out


def cut_crops(images: list[tuple[np.ndarray, torch.Tensor, torch.Tensor, camera.Intrinsics]], height: int,
              device: torch.device) -> CropBatch:  # fmt: skip
    """Each (pixels (H, W, 3) uint8, center (n, 2), scale (n,), K) -> one batch of all their people."""
    crops, focal, principal = [], [], []
    for pixels, center, scale, K in images:
        if len(center):
            crops.append(crop.crop_tensor(crop.image_tensor(pixels, device), center, scale, height))
        focal.append(torch.full((len(center),), K.focal))
        principal.append(torch.tensor([[K.cx, K.cy]]).expand(len(center), 2))
    empty = torch.zeros(0, 3, height, crop.crop_width(height), device=device)
    return CropBatch(
        crops=crop.normalize(torch.cat(crops) if crops else empty),
        center=torch.cat([c for _, c, _, _ in images]).float(),
        scale=torch.cat([s for _, _, s, _ in images]).float(),
        focal=torch.cat(focal),
        principal=torch.cat(principal),
    )


def bbox_info(loaded: LoadedCheckpoint, batch: CropBatch) -> torch.Tensor:
    """(P, 3) what the network `loaded` reads of where each crop of `batch` is (zeros for the HMR
    baseline, which never saw where its crops were)."""
    info = camera.bbox_info(batch.center, 200.0 * batch.scale, batch.focal, batch.principal, style=loaded.bbox_info)
    return torch.zeros_like(info) if loaded.mode == "hmr" else info


@torch.no_grad()
def run_network(network: Network, body: BodyModel | None, batch: CropBatch, timer: Callable) -> NetworkPeople:
    """Network, full-frame camera and body model (None: no bodies posed) for every person of
    `batch` (at least one), in chunks of the configured batch size. timer(stage) times the stages."""
    dev = network.device
    b = 200.0 * batch.scale
    info = bbox_info(network.loaded, batch).to(dev)
    outs = []
    with timer("network"):
        for start in range(0, len(batch.crops), network.batch_size):
            part = slice(start, start + network.batch_size)
            outs.append(network(batch.crops[part], info[part]))
    rotmat, betas, cam = (torch.cat([getattr(o, k) for o in outs]) for k in ("rotmat", "betas", "cam"))
    transl = camera.cam_crop_to_full(cam, batch.center.to(dev), b.to(dev), batch.focal.to(dev), batch.principal.to(dev))
    posed = None
    if body is not None:
        with timer("body model"):
            posed = body(rotmat, betas, transl)
    return NetworkPeople(Estimate(rotmat.cpu(), betas.cpu(), transl.cpu()), cam.cpu(), posed)


def prefetch(items: Iterable, load: Callable, depth: int) -> Iterator[tuple[object, Future]]:
    """(item, future of load(item)) in order, with up to `depth` loads running ahead in one
    background thread (decoding releases the GIL). depth 0 loads in the caller's thread."""
    items = iter(items)
    if depth == 0:
        for item in items:
            future = Future()
            try:
                future.set_result(load(item))
            except BaseException as e:  # handed to the caller, like a thread's failure
                future.set_exception(e)
            yield item, future
        return
    with ThreadPoolExecutor(1, thread_name_prefix="cliffhmr-decode") as pool:
        queue: deque = deque()
        for item in items:
            queue.append((item, pool.submit(load, item)))
            if len(queue) > depth:
                yield queue.popleft()
        while queue:
            yield queue.popleft()


class InOrder:
    """Work handed to one background thread, its results handed back in the order given, at most
    `depth` calls waiting: writing one image's files while the next batch is predicted. A failed
    call raises where its result is taken; the calls after it are dropped (`with` closes)."""

    def __init__(self, depth: int = 2):
        self.depth = depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="cliffhmr-write")
        self.pending: deque = deque()

    def submit(self, key, fn: Callable, *args) -> Iterator[tuple[object, object]]:
        """Queue fn(*args) -> (key, result) of the calls that had to finish to make room."""
        self.pending.append((key, self.pool.submit(fn, *args)))
        while len(self.pending) > self.depth:
            key, future = self.pending.popleft()
            yield key, future.result()

    def drain(self) -> Iterator[tuple[object, object]]:
        while self.pending:
            key, future = self.pending.popleft()
            yield key, future.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=True, cancel_futures=True)
