"""Video jobs: a video is admitted to the same queue as photos and runs on the same prediction
thread; its job tells how far it got, then its files (`write_video_outputs`' own).

The uploaded video is written into the job's folder as `upload` (a name no result file has, so it
is never served) and removed when the job ends.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_bytes_atomic
from ..errors import CliffError
from ..geometry.camera import Intrinsics
from ..inference.outputs import video_summary, write_video_outputs
from ..inference.sequence import expected_frames, run_sequence
from ..inference.video import FrameRange, Reader
from ..perception.image import TooManyPixels
from .work import RESULT_STEM, Busy, Limits, Results, Worker

log = logging.getLogger(__name__)


@dataclass
class VideoInputs:
    data: bytes
    chosen: FrameRange = FrameRange()
    intrinsics: Intrinsics | None = None
    focal: float | None = None
    fit_iterations: int | None = None
    render: bool = True
    meshes: bool = True


@dataclass
class Job:
    id: str
    folder: Path
    state: str = "queued"  # queued, running (frames_read counts the frames read; their fit follows), writing, done, failed
    frames_read: int = 0
    frames_expected: int | None = None  # from the video's declared duration; None when it declares none
    status: int = 200  # of a failed job: the 4xx (or 500) a request would have had
    error: str | None = None
    summary: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def view(self) -> dict:
        return {"id": self.id, "state": self.state, "progress": {"frames_read": self.frames_read, "frames_expected": self.frames_expected},
                **({"error": self.error, "status": self.status} if self.error else {}), **self.summary, "files": self.files}  # fmt: skip


class _CountingReader(Reader):
    """A video's reader that counts the frames of the job's reading pass, and stops it at the
    frame limit (the rendering pass reads them again, uncounted)."""

    def __init__(self, path: Path, job: Job, max_frames: int):
        super().__init__(path)
        self.job, self.max_frames = job, max_frames

    def frames(self, chosen: FrameRange = FrameRange()):
        for frame in super().frames(chosen):
            if self.job.state == "running":
                if self.job.frames_read >= self.max_frames:
                    raise CliffError(f"upload: more than the server's {self.max_frames} frames to process (choose fewer: every, start, end)")
                self.job.frames_read += 1
            yield frame


class Jobs:
    """The server's video jobs, at most `limits.keep_results` remembered (the oldest ended go first)."""

    def __init__(self, worker: Worker, results: Results, limits: Limits):
        self.worker, self.results, self.limits = worker, results, limits
        self._jobs: dict[str, Job] = {}

    def submit(self, inputs: VideoInputs) -> Job:
        job = Job(*self.results.new())
        try:
            self.worker.submit(self._run, job, inputs)
        except Busy:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        self._jobs[job.id] = job
        ended = [j for j in self._jobs.values() if j.state in ("done", "failed")]
        for old in ended[: max(0, len(self._jobs) - self.limits.keep_results)]:
            del self._jobs[old.id]
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _run(self, job: Job, inputs: VideoInputs) -> None:
        upload = job.folder / "upload"
        try:
            write_bytes_atomic(upload, inputs.data)
            reader = _CountingReader(upload, job, self.limits.max_frames)  # the container is told by its content
            info = reader.info
            if info.width * info.height > self.limits.max_pixels:
                raise TooManyPixels(f"upload: {info.width}x{info.height} frames are more than the {self.limits.max_pixels / 1e6:g}-megapixel limit")
            job.frames_expected = expected_frames(info, inputs.chosen)
            job.state = "running"
            predictor = self.worker.predictor_for(inputs.fit_iterations)
            result = run_sequence(predictor, reader, inputs.chosen, intrinsics=inputs.intrinsics, focal=inputs.focal)
            job.state = "writing"
            written, _ = write_video_outputs(result, predictor.body, reader, inputs.chosen, job.folder, RESULT_STEM,
                                             render=inputs.render, animations=inputs.meshes)  # fmt: skip
            upload.unlink()
            job.summary = {**video_summary(result, inputs.chosen), "video": "upload"}  # not the server's path to it
            job.files = {p.name: f"/v1/results/{job.id}/{p.name}" for p in written}
            self.results.publish(job.id)
            job.state = "done"
        except Exception as e:
            shutil.rmtree(job.folder, ignore_errors=True)
            job.status = 413 if isinstance(e, TooManyPixels) else 422 if isinstance(e, CliffError) else 500
            job.error = str(e) if isinstance(e, CliffError) else "internal error (the server's log has its traceback)"
            if job.status == 500:
                log.exception("video job %s failed", job.id)
            job.state = "failed"
