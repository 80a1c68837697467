"""Videos in and out, one frame at a time: a file decoded by PyAV (its wheels carry FFmpeg), or a
folder of numbered frames with a frame rate; and the overlay video written back.

Frames are streamed: at most one decoded frame is held, however long the clip. A frame's time
is the stream's own timestamp (variable frame rates are kept), in seconds from the first frame.
`FrameRange` chooses frames by time (`start`, `end`, in seconds) and takes every `every`-th of
those; frame numbers stay the source's (counted from 0 over every decoded frame, so frames
before `start` are decoded and skipped, not sought past: a seek would lose the count).

A file damaged part way (cut off, overwritten) yields the frames before the damage, then
`VideoDamaged` (so does an unreadable frame in a folder); a file cut off without a decoding error ends early and `Reader.truncated`
says so afterwards (the container declared more frames or a longer duration).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..perception.image import IMAGE_SUFFIXES, load_image

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v"}


class VideoDamaged(CliffError):
    """Decoding stopped at damage in the file; the frames before it were yielded."""


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class FrameRange:
    """Which frames to process: those with start <= time < end (seconds), then every `every`-th."""

    every: int = 1
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.every, numbers.Integral) and not isinstance(self.every, bool) and self.every >= 1):
            raise CliffError(f"--every takes a whole number of frames >= 1, got {self.every!r}")
        if not (_real(self.start) and 0 <= self.start < math.inf):
            raise CliffError(f"--start takes seconds >= 0, got {self.start!r}")
        if self.end is not None and not (_real(self.end) and self.start < self.end < math.inf):
            raise CliffError(f"--end takes seconds after --start ({self.start:g}), got {self.end!r}")

    def before_end(self, time: float) -> bool:
        return self.end is None or time < self.end


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


@dataclass
class Frame:
    index: int  # the frame's number in the source, from 0
    time: float  # seconds since the source's first frame
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, upright
    path: Path | None = None  # the frame's own file (folders of frames)


@dataclass
class VideoInfo:
    path: Path
    width: int  # of the upright frames
    height: int
    fps: float  # the stream's average (nominal for a folder of frames)
    frame_count: int | None  # declared by the container; None when it does not say
    duration: float | None  # seconds, declared; None when unknown


class Reader:
    """`Reader(path)` opens a video file, `Reader(folder, fps=F)` a folder of numbered frames;
    `info` describes it and `frames(FrameRange())` yields the chosen `Frame`s in order.
    After a full pass, `decoded` is the number of frames read and `truncated` a sentence when
    the file ended before what it declared, else None."""

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        self.decoded = 0
        self.truncated: str | None = None
        if self.path.is_dir():
            if fps is None:
                raise CliffError(f"{self.path}: a folder of frames needs --fps (its frame rate)")
            self._files = numbered_frames(self.path)
            first = load_image(self._files[0])
            self.info = VideoInfo(self.path, first.width, first.height, _check_fps(fps), len(self._files), len(self._files) / fps)
        else:
            if fps is not None:
                raise CliffError("--fps is for a folder of frames; a video file has its own timestamps")
            self._files = None
            self.info = _probe(self.path)

    def frames(self, chosen: FrameRange = FrameRange()) -> Iterator[Frame]:
        source = self._folder_frames() if self._files is not None else self._decoded_frames(chosen)
        taken = 0
        for index, time, read in source:
            if not chosen.before_end(time):
                return
            if time < chosen.start:
                continue
            if taken % chosen.every == 0:
                pixels, path = read()
                yield Frame(index, time, pixels, path)
            taken += 1

    def _folder_frames(self):
        size = (self.info.height, self.info.width)
        for i, path in enumerate(self._files):
            self.decoded = i + 1

            def read(path=path):
                try:
                    pixels = load_image(path).pixels
                except CliffError as e:  # a broken frame ends the sequence as damage ends a file
                    raise VideoDamaged(str(e)) from None
                if pixels.shape[:2] != size:
                    raise VideoDamaged(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} frame in a {size[1]}x{size[0]} sequence")
                return pixels, path

            yield i, i / self.info.fps, read

    def _decoded_frames(self, chosen: FrameRange):
        import av

        with _open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-parallel decoding: 2-3x faster on long-GOP H.264
            base = stream.time_base or Fraction(1, 1)
            origin = None
            index = -1
            last = None
            try:
                for frame in container.decode(stream):
                    index += 1
                    self.decoded = index + 1
                    if frame.pts is None:  # no timestamp (some AVI): the nominal rate
                        time = index / self.info.fps
                    else:
                        origin = frame.pts if origin is None else origin
                        time = float((frame.pts - origin) * base)
                    last = time
                    yield index, time, lambda frame=frame: (_upright(frame), None)
                    if not chosen.before_end(time):
                        return
            except (av.FFmpegError, OSError, ValueError) as e:
                where = "before its first frame" if index < 0 else f"after frame {index} ({last:.2f} s)"
                raise VideoDamaged(f"{self.path}: damaged {where}: {_reason(e)}") from None
        self.truncated = _truncation(self.info, self.decoded, last)


def _upright(frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, turned as the file's display matrix says (phones
    store portrait video as landscape frames plus a rotation)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) or 0) // 90 % 4  # counter-clockwise, in quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _truncation(info: VideoInfo, decoded: int, last: float | None) -> str | None:
    """A sentence when a file decoded to its end stopped short of the duration it declared (by
    more than two of its frame intervals), else None. Frame counts are not trusted for this: an
    AVI written on a millisecond clock declares one frame per tick."""
    if not info.duration or last is None:
        return None
    step = last / (decoded - 1) if decoded > 1 else 1.0 / info.fps
    if last + 2 * step < info.duration:
        return f"{info.path}: ended at {last:.2f} s (frame {decoded - 1}) of the {info.duration:.2f} s it declares (cut off?)"
    return None


def _open(path: Path, mode: str = "r"):
    import av

    if mode == "r" and not path.is_file():
        raise CliffError(f"{path}: no such video file")
    try:
        return av.open(str(path), mode)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise CliffError(f"{path}: not a readable video ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    """FFmpeg's words without PyAV's errno prefix and file name."""
    text = getattr(e, "strerror", None) or str(e)
    return re.sub(r"^\[Errno -?\d+\]\s*", "", str(text)).split(": '")[0]


def _probe(path: Path) -> VideoInfo:
    """What the container declares, and the first frame's upright size (decoded here, so that a
    file no frame of which decodes is refused before any work)."""
    import av

    with _open(path) as container:
        if not container.streams:  # what is left of an MP4/MOV cut off before its index (at the end)
            raise CliffError(f"{path}: not a readable video (no streams: cut off, or not a video)")
        if not container.streams.video:
            raise CliffError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDamaged(f"{path}: damaged before its first frame: {_reason(e)}") from None
        if first is None:
            raise CliffError(f"{path}: holds no video frames")
        height, width = _upright(first).shape[:2]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1e6  # AV_TIME_BASE
        return VideoInfo(path, width, height, fps, stream.frames or None, duration)


def _check_fps(fps) -> float:
    if not (_real(fps) and 0 < fps <= 1000):
        raise CliffError(f"--fps takes frames per second between 0 and 1000, got {fps!r}")
    return float(fps)


def numbered_frames(folder: Path) -> list[Path]:
    """The images of `folder` in the order of the last number in their names (frame_2 before
    frame_10), names without a number last."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise CliffError(f"{folder}: folder holds no frames ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def key(p: Path):
        numbers_in_name = re.findall(r"\d+", p.stem)
        return (0, int(numbers_in_name[-1]), p.name) if numbers_in_name else (1, 0, p.name)

    return sorted(files, key=key)


class Writer:
    """An H.264 video (MPEG-4 Part 2 where PyAV lacks libx264) of RGB frames at given times.

    `Writer(path, width, height, fps)` then `write(pixels (H, W, 3) uint8, time)` per frame and
    `close()`. Times are kept (a variable-rate source stays variable); odd sizes are padded by
    one pixel, since 4:2:0 chroma needs even ones.
    """

    TIME_BASE = Fraction(1, 90000)  # MPEG's clock: every common frame rate's step is a whole number of ticks

    def __init__(self, path: str | Path, width: int, height: int, fps: float):
        import av

        self.path = Path(path)
        self.container = _open(self.path, "w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = self.TIME_BASE
        self.stream.codec_context.time_base = self.TIME_BASE
        if codec == "libx264":
            self.stream.options = {"crf": "20", "preset": "veryfast"}
        self._last_pts = -1

    def write(self, pixels: np.ndarray, time: float) -> None:
        import av

        h, w = self.stream.height, self.stream.width
        if pixels.shape[:2] != (h, w):
            pixels = np.pad(pixels, ((0, h - pixels.shape[0]), (0, w - pixels.shape[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        pts = max(round(time / self.TIME_BASE), self._last_pts + 1)  # strictly increasing, as muxers require
        frame.pts, frame.time_base = pts, self.TIME_BASE
        self._last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
