"""`--ray local|ADDRESS`: the same shards on Ray workers, one model each, writing the same shard
files (the work folder must be one the workers can reach: local disk for `local`, a shared file
system on a cluster). The driver then merges as without Ray. Ray is an optional extra
(`pip install cliff-hmr[ray]`)."""

from __future__ import annotations

from ..errors import CliffError


def require_ray():
    try:
        import ray
    except ImportError:
        raise CliffError("--ray needs Ray: pip install 'cliff-hmr[ray]'") from None
    return ray


class _Worker:
    """One Ray worker: loads the models once, then annotates the shards it is given."""

    def __init__(self, job):
        self.job, self.predictor = job, job.predictor()

    def run(self, shard) -> int:
        return self.job(self.predictor, shard)


def run_on_ray(job, shards: list, address: str, workers: int, progress) -> None:
    """Annotate `shards` with `workers` Ray actors (one CPU each); `progress(n)` per finished shard."""
    ray = require_ray()
    local = address == "local"
    # Locally: as many CPUs as workers, so Ray starts no more processes than asked (and leaves the
    # machine's other cores to reading images and the driver).
    ray.init(address=None if local else address, num_cpus=workers if local else None, include_dashboard=False,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        from ray.util import ActorPool

        actors = [ray.remote(num_cpus=1)(_Worker).remote(job) for _ in range(workers)]
        pool = ActorPool(actors)
        try:
            for n in pool.map_unordered(lambda actor, shard: actor.run.remote(shard), shards):
                progress(n)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, CliffError):  # a user's mistake, found by a worker: one line, as without Ray
                raise e.cause from None
            raise
    finally:
        ray.shutdown()
