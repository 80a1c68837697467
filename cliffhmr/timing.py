"""Seconds per named stage, for --profile and the benchmarks."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager


class StageTimer:
    """Seconds spent per named stage, summed over every `with timer("stage"):` block; blocks may
    run in several threads (images are decoded in a background thread)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)
