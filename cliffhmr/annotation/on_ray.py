"""Shards on several workers: `--workers N` (processes on this machine) and `--ray local|ADDRESS`
(Ray Data workers). Either way one model per worker, writing the same shard
files (the work folder must be one the workers can reach: local disk for `local`, a shared file
system on a cluster). The driver then merges as without Ray. Ray is an optional extra
(`pip install cliff-hmr[ray]`)."""

from __future__ import annotations

import numpy as np

from ..errors import CliffError


def require_ray():
    try:
        import ray
    except ImportError:
        raise CliffError("--ray needs Ray: pip install 'cliff-hmr[ray]'") from None
    return ray


class _Annotator:
    """One Ray Data worker: loads the models once, then annotates the shards it is given."""

    def __init__(self, job, shards: list):
        self.job, self.shards, self.predictor = job, {s.index: s for s in shards}, job.predictor()

    def __call__(self, batch: dict) -> dict:
        done = [self.job(self.predictor, self.shards[int(i)]) for i in batch["shard"]]
        return {"shard": batch["shard"], "images": np.array(done)}


def run_on_ray(job, shards: list, address: str, workers: int, progress) -> None:
    """Annotate `shards` on Ray Data with `workers` workers (one model and one CPU each);
    `progress(n)` per finished shard."""
    ray = require_ray()
    local = address == "local"
    # Locally: one CPU more than the workers, for Ray Data's own tasks (listing the shards,
    # handing them out), so they are not starved; nothing else starts.
    ray.init(address=None if local else address, num_cpus=workers + 1 if local else None, include_dashboard=False,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts images
        items = ray.data.from_items([{"shard": s.index} for s in shards], override_num_blocks=max(1, len(shards)))
        done = items.map_batches(_Annotator, fn_constructor_args=(job, shards), batch_size=1, concurrency=workers, num_cpus=1)
        for row in done.iter_rows():
            progress(int(row["images"]))
    except Exception as e:
        cause = e
        while cause is not None and not isinstance(cause, CliffError):  # a user's mistake found by a worker: one line, as without Ray
            cause = cause.__cause__ or getattr(cause, "cause", None)
        if cause is not None:
            raise cause from None
        raise
    finally:
        ray.shutdown()


_local: dict = {}  # in a worker process: its job and its models


def _start_worker(job) -> None:
    _local["job"], _local["predictor"] = job, job.predictor()


def _annotate_shard(shard) -> int:
    return _local["job"](_local["predictor"], shard)


def run_in_processes(job, shards: list, workers: int, progress) -> None:
    """Annotate `shards` in `workers` fresh processes on this machine (one model and, as everywhere
    in the annotator, one torch thread each: N workers use N cores); `progress(n)` per finished shard."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # a forked torch can hang in its thread pools
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(job,)) as pool:
        for future in as_completed([pool.submit(_annotate_shard, shard) for shard in shards]):
            progress(future.result())  # a worker's CliffError comes back as itself: one line, as in one process
