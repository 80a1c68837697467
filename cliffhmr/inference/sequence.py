"""A video -> people followed from frame to frame, each fitted from where their previous frames
put them: warm starts, smoothness, one shape per track.

Three passes; only the first reads frames, one at a time (the overlay video, in `outputs`,
decodes them again):

1. `read_people`: per chosen frame, the people are detected, their keypoints read, and the
   tracker says who is who; only boxes and keypoints are kept (a few hundred bytes each).
   Where two people's keypoints are the same (`hidden_behind`: at a crossing the keypoint model
   reads the one in front in both boxes), the one behind is marked hidden.
2. `fit_tracks`: per track, left and right are made to agree along it (`fix_left_right`; the
   keypoint model reads some frames mirrored), its shape is fitted once from up to
   `shape_frames` of its best-seen frames and then held; then frame by frame, all people of a
   frame in one batch, a person seen within the last `max_gap` processed frames starts from
   where their last two fits say they are now with `fit.warm_config` and is held near it (a
   hidden one is put there), anyone else is fitted from scratch; a track whose warm fits keep
   disagreeing with its own keypoints gets a fit from scratch too.
3. `refine_tracks`: everyone fitted again, held towards the midpoint of their fits in the frames
   before and after.

`temporal=False` turns the second pass into independent fits of every person in every frame
(the per-frame baseline); tracking still names the people.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..body import Estimate
from ..fitting.fit import FitConfig, warm_config
from ..geometry import camera
from ..geometry.rotation import axis_angle_to_rotmat, rotmat_to_axis_angle
from ..perception.leftright import consistent_left_right, mirror_world, swap_left_right
from ..timing import StageTimer
from .pipeline import Person, Predictor
from ..perception.track import Tracker, TrackerConfig
from .video import FrameRange, Reader, VideoDamaged, VideoInfo


@dataclass
class SequenceConfig:
    temporal: bool = True  # False: every person-frame fitted alone (no warm start, smoothing or track shape)
    max_gap: int = 10  # processed frames a track may miss and still start from its prediction
    shape_frames: int = 5  # frames per track its shape is fitted from
    extrapolate: float = 0.5  # how much of the last frame-to-frame motion the prediction carries on
    refine_iterations: int = 8  # steps of pass 3 (`refine_tracks`); 0: no third pass
    refine_smooth: float = 20.0  # its smoothness weights over the warm fits': its anchor has no lag to fear
    restart_quality: float = 0.7  # warm fits agreeing less with the keypoints in `restart_after` frames in a row:
    restart_after: int = 2  # the person is fitted afresh too, and the better of the two kept
    same_keypoints: float = 0.5  # OKS between two people's keypoints above which they are one person's (`hidden_behind`)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    warm: FitConfig | None = None  # default: fit.warm_config() of the predictor's fit settings


@dataclass
class ProcessedFrame:
    index: int  # the frame's number in the source
    time: float  # seconds
    path: Path | None  # the frame's file, for folders of frames


@dataclass
class Observation:
    """One person in one processed frame, as read (pass 1)."""

    frame: int  # position in the processed frames
    track: int
    box: np.ndarray  # (5,) x1, y1, x2, y2, score
    keypoints: np.ndarray  # (17, 3) pixels + confidence
    world: np.ndarray | None  # (17, 3) metric landmarks
    network: Estimate | None = None  # the CLIFF network's estimate (with --checkpoint): where a fit from scratch starts


@dataclass
class SequenceResult:
    video: VideoInfo
    intrinsics: object  # camera.Intrinsics
    body_model: str
    method: str
    joint_names: list[str]
    faces: np.ndarray
    frames: list[ProcessedFrame]
    people: list[list[tuple[int, Person]]]  # per processed frame: (track ID, person); vertices None (rebuilt when drawn)
    timings: dict[str, float]
    damage: str | None = None  # why reading stopped before the end, if it did
    left_right_fixed: int = 0  # person-frames whose left and right the track exchanged


def read_people(predictor: Predictor, reader: Reader, chosen: FrameRange, tracker: Tracker, timer: StageTimer, K=None,
                progress: bool = False) -> tuple[list[ProcessedFrame], list[Observation], str | None]:  # fmt: skip
    """Pass 1 -> (processed frames, observations, the damage line or None). With a CLIFF network
    in the predictor, each person's network estimate (camera K) is kept too (a few kB each)."""
    from tqdm import tqdm

    frames, observations, damage = [], [], None
    waiting: list[tuple[np.ndarray, np.ndarray, list[Observation]]] = []  # frames whose network estimates are to come

    def estimate_waiting():  # the people of several frames in the network's batches
        estimates = predictor.network_estimates([(pixels, boxes, K) for pixels, boxes, _ in waiting], timer)
        for (_, _, people), est in zip(waiting, estimates):
            for i, o in enumerate(people):
                o.network = Estimate(est.rotmat[i : i + 1], est.betas[i : i + 1], est.transl[i : i + 1])
        waiting.clear()

    total = expected_frames(reader.info, chosen)
    bar = tqdm(total=total, desc="read", unit="frame", disable=None if progress else True, leave=False)
    try:
        for frame in reader.frames(chosen):
            with timer("detection"):
                boxes = predictor.frame_detector(frame.pixels)
            with timer("keypoints"):
                kp = predictor.keypoints(frame.pixels, boxes)
            with timer("tracking"):
                ids = tracker.update(frame.time, boxes, kp.coco)
            n = len(frames)
            frames.append(ProcessedFrame(frame.index, frame.time, frame.path))
            people = []
            for i, track in enumerate(ids.tolist()):
                world = None if kp.world is None else kp.world[i]
                people.append(Observation(n, track, boxes[i], kp.coco[i], world, None))
            observations += people
            if predictor.network is not None and len(boxes):
                waiting.append((frame.pixels, boxes, people))
                if sum(len(b) for _, b, _ in waiting) >= predictor.engine.batch_size:
                    estimate_waiting()
            bar.update()
    except VideoDamaged as e:
        damage = str(e)
    finally:
        bar.close()
    if waiting:
        estimate_waiting()
    return frames, observations, damage or reader.truncated


def expected_frames(info: VideoInfo, chosen: FrameRange) -> int | None:
    """About how many frames `chosen` takes (for progress bars), or None when the video does not say."""
    if not info.duration:
        return None
    end = min(info.duration, chosen.end) if chosen.end is not None else info.duration
    return max(0, round((end - chosen.start) * info.fps / chosen.every))


def fix_left_right(observations: list[Observation], min_confidence: float, hidden: set[int]) -> int:
    """Exchange left and right where a track's frames disagree with the rest of their stretch, in
    place -> how many. A track is cut into stretches where it is missed or `hidden` (the ids of
    observations holding another person's keypoints: a labelling must not pass through them)."""
    fixed = 0
    for obs in _by_track(observations).values():
        stretch: list[Observation] = []
        for o in [*obs, None]:
            if o is not None and id(o) not in hidden and (not stretch or o.frame == stretch[-1].frame + 1):
                stretch.append(o)
                continue
            fixed += _fix_stretch(stretch, min_confidence)
            stretch = [] if o is None or id(o) in hidden else [o]
    return fixed


def _fix_stretch(stretch: list[Observation], min_confidence: float) -> int:
    if len(stretch) < 2:
        return 0
    swap = consistent_left_right(np.stack([o.keypoints for o in stretch]), min_confidence)
    for o in np.asarray(stretch, dtype=object)[swap]:
        o.keypoints = swap_left_right(o.keypoints)
        o.world = None if o.world is None else mirror_world(o.world)
    return int(swap.sum())


def hidden_behind(observations: list[Observation], min_similarity: float = 0.5) -> set[int]:
    """ids of the observations whose keypoints are another person's: where two people of a frame
    have nearly the same keypoints (OKS above `min_similarity`, either left/right labelling), the
    keypoint model read one body in both boxes, the one in front: the larger box keeps them."""
    from ..perception.track import keypoint_similarity

    by_frame: dict[int, list[Observation]] = {}
    for o in observations:
        by_frame.setdefault(o.frame, []).append(o)
    out = set()
    for obs in by_frame.values():
        if len(obs) < 2:
            continue
        boxes = np.stack([o.box[:4] for o in obs]).astype(np.float64)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kp = np.stack([o.keypoints for o in obs]).astype(np.float64)
        same = np.fmax(keypoint_similarity(kp, kp, area), keypoint_similarity(swap_left_right(kp), kp, area))
        for i in range(len(obs)):
            for j in range(len(obs)):
                if i != j and same[j, i] > min_similarity and area[i] < area[j]:
                    out.add(id(obs[i]))
    return out


def _by_track(observations: list[Observation]) -> dict[int, list[Observation]]:
    tracks: dict[int, list[Observation]] = {}
    for o in observations:
        tracks.setdefault(o.track, []).append(o)
    return tracks


def _stack(obs: list[Observation]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """-> boxes (P, 5), keypoints (P, 17, 3), world (P, 17, 3) or None."""
    boxes = np.stack([o.box for o in obs]).astype(np.float32)
    keypoints = np.stack([o.keypoints for o in obs]).astype(np.float32)
    world = None if any(o.world is None for o in obs) else np.stack([o.world for o in obs]).astype(np.float32)
    return boxes, keypoints, world


def track_shapes(predictor: Predictor, K, observations: list[Observation], frames_per_track: int,
                 min_confidence: float, timer: StageTimer | None = None) -> dict[int, torch.Tensor]:  # fmt: skip
    """Each track's shape (S,): the mean betas of independent fits of its `frames_per_track`
    best-seen frames (most keypoints above min_confidence), all tracks in one batch."""
    chosen = []
    for obs in _by_track(observations).values():
        seen = [int((o.keypoints[:, 2] >= min_confidence).sum()) for o in obs]
        order = sorted(range(len(obs)), key=lambda i: (-seen[i], obs[i].frame))
        chosen += [obs[i] for i in order[:frames_per_track]]
    if not chosen:
        return {}
    boxes, keypoints, world = _stack(chosen)
    people = predictor.fit(boxes, K, keypoints, world, min_confidence, init=_network_start(chosen), timer=timer)
    shapes: dict[int, list[np.ndarray]] = {}
    for o, p in zip(chosen, people):
        shapes.setdefault(o.track, []).append(p.betas)
    return {t: torch.as_tensor(np.mean(b, axis=0), dtype=torch.float32) for t, b in shapes.items()}


def along(start: Estimate, end: Estimate, s: float) -> Estimate:
    """The estimate `s` of the way from `start` (s = 0) to `end` (s = 1) at constant velocity
    (s > 1 carries the motion on): each joint's rotation turns by s times the turn between
    them, the translation moves likewise; the shape is `end`'s. Estimates of P people:
    rotmat (P, J, 3, 3), betas (P, S), transl (P, 3)."""
    turn = rotmat_to_axis_angle(start.rotmat.transpose(-1, -2) @ end.rotmat)
    rotmat = start.rotmat @ axis_angle_to_rotmat(turn * s)
    return Estimate(rotmat, end.betas, start.transl + (end.transl - start.transl) * s)


def _estimate(person: Person) -> Estimate:
    return Estimate(torch.as_tensor(person.rotmat)[None], torch.as_tensor(person.betas)[None], torch.as_tensor(person.transl)[None])


def _network_start(group: list[Observation]) -> Estimate | None:
    """The network's estimates of `group` as one start, or None (the keypoint regressor's then)."""
    return _cat([o.network for o in group]) if all(o.network is not None for o in group) else None


def _cat(estimates: list[Estimate]) -> Estimate:
    return Estimate(*(torch.cat([getattr(e, k) for e in estimates]).float() for k in ("rotmat", "betas", "transl")))


def fit_tracks(predictor: Predictor, K, frames: list[ProcessedFrame], observations: list[Observation],
               config: SequenceConfig, timer: StageTimer, hidden: set[int] = frozenset(),
               progress: bool = False) -> list[list[tuple[int, Person]]]:  # fmt: skip
    """Pass 2 -> per processed frame, (track ID, fitted person) in the order observed. `hidden`:
    ids of observations holding someone else's keypoints (`hidden_behind`): a tracked one keeps
    its prediction (flag "hidden")."""
    from tqdm import tqdm

    min_conf = predictor.pose_estimator.min_confidence
    warm_cfg = config.warm or warm_config(FitConfig(iterations=predictor.config.fit_iterations))
    per_frame: list[list[Observation]] = [[] for _ in frames]
    for o in observations:
        per_frame[o.frame].append(o)
    shapes = {}
    if config.temporal:
        shapes = track_shapes(predictor, K, observations, config.shape_frames, min_conf, timer)
    history: dict[int, list[tuple[int, float, Estimate]]] = {}  # track -> its last two (frame, time, estimate)

    def fit(group: list[Observation], now: float | None = None, cfg: FitConfig | None = None) -> dict[int, Person]:
        """Fit `group` from scratch, or with `now` from their tracks' predictions for that time."""
        if not group:
            return {}
        boxes, keypoints, world = _stack(group)
        shape = torch.stack([shapes[o.track] for o in group]) if config.temporal else None
        expected = None if now is None else _cat([_predict(history[o.track], now, config.extrapolate) for o in group])
        start = expected if expected is not None else _network_start(group)
        people = predictor.fit(boxes, K, keypoints, world, min_conf, init=start, expected=expected, shape=shape,
                               config=cfg, timer=timer)  # fmt: skip
        return {id(o): p for o, p in zip(group, people)}

    doubts: dict[int, int] = {}  # track -> processed frames in a row its warm fit disagreed with its keypoints
    out = []
    for n, (frame, obs) in enumerate(tqdm(list(zip(frames, per_frame)), desc="fit", unit="frame", disable=None if progress else True, leave=False)):
        tracked = [o for o in obs if config.temporal and o.track in history and n - history[o.track][-1][0] <= config.max_gap]
        fresh = fit([o for o in obs if all(o is not t for t in tracked)])
        fitted = dict(fresh)
        fitted |= fit([o for o in tracked if id(o) not in hidden], frame.time, warm_cfg)
        # No keypoints of their own: where their motion carries them.
        fitted |= fit([o for o in tracked if id(o) in hidden], frame.time, replace(warm_cfg, iterations=0))
        # A track gone wrong (it took someone else's keypoints, or turned the wrong way) would stay
        # wrong while started from itself: where warm fits disagree with the person's own keypoints
        # frame after frame, a fit from scratch gets its chance, and the better of the two stays.
        # Not at once: in a single frame, a body turned the wrong way can fit 2D better.
        for o in tracked:
            low = id(o) not in hidden and fitted[id(o)].quality < config.restart_quality
            doubts[o.track] = doubts.get(o.track, 0) + 1 if low else 0
        doubtful = [o for o in tracked if doubts[o.track] >= config.restart_after]
        for key, p in fit(doubtful).items():
            if p.quality > fitted[key].quality:
                fitted[key] = fresh[key] = p
        row = []
        for o in obs:
            person = fitted[id(o)]
            if id(o) in hidden:
                person.flags = [*person.flags, "hidden"]
            before = [] if id(o) in fresh else history.get(o.track, [])[-1:]  # no velocity across a fresh start
            history[o.track] = [*before, (n, frame.time, _estimate(person))]
            row.append((o.track, replace(person, vertices=None)))  # vertices: 170 kB a person, rebuilt when drawn
        out.append(row)
    return out


def refine_tracks(predictor: Predictor, K, frames: list[ProcessedFrame], observations: list[Observation],
                  rows: list[list[tuple[int, Person]]], config: SequenceConfig, timer: StageTimer,
                  hidden: set[int] = frozenset(), progress: bool = False) -> None:  # fmt: skip
    """Pass 3, in place: every person fitted again from their pass-2 fit, held towards the point
    between their fits in the frames before and after (at this frame's time along the motion from
    one to the other): a zero second difference, i.e. no acceleration where the keypoints do not
    ask for it, and no lag. Front to back, each frame sees its predecessor refined (Gauss-Seidel).
    Someone `hidden` is put at that point. Ends of tracks and gaps over `max_gap` keep their fits."""
    from tqdm import tqdm

    cfg = config.warm or warm_config(FitConfig(iterations=predictor.config.fit_iterations))
    cfg = replace(cfg, iterations=config.refine_iterations, w_smooth=cfg.w_smooth * config.refine_smooth,
                  w_smooth_transl=cfg.w_smooth_transl * config.refine_smooth)  # fmt: skip
    min_conf = predictor.pose_estimator.min_confidence
    per_frame: list[list[Observation]] = [[] for _ in frames]
    for o in observations:
        per_frame[o.frame].append(o)
    seen: dict[int, list[tuple[int, int]]] = {}  # track -> its (frame, place in the frame's row), in order
    for n, row in enumerate(rows):
        for k, (track, _) in enumerate(row):
            seen.setdefault(track, []).append((n, k))
    neighbours = {}
    for track, places in seen.items():
        for before, here, after in zip(places, places[1:], places[2:]):
            if after[0] - before[0] <= config.max_gap + 1:
                neighbours[here] = (before, after)
    for n in tqdm(range(len(frames)), desc="smooth", unit="frame", disable=None if progress else True, leave=False):
        todo = [k for k in range(len(rows[n])) if (n, k) in neighbours]
        if not todo:
            continue
        anchors = []
        for k in todo:
            (nb, kb), (na, ka) = neighbours[(n, k)]
            s = (frames[n].time - frames[nb].time) / max(frames[na].time - frames[nb].time, 1e-9)
            anchors.append(along(_estimate(rows[nb][kb][1]), _estimate(rows[na][ka][1]), s))
        for group, iterations in (([k for k in todo if id(per_frame[n][k]) not in hidden], cfg.iterations),
                                  ([k for k in todo if id(per_frame[n][k]) in hidden], 0)):  # fmt: skip
            if not group:
                continue
            obs = [per_frame[n][k] for k in group]
            boxes, keypoints, world = _stack(obs)
            anchor = _cat([anchors[todo.index(k)] for k in group])
            start = anchor if iterations == 0 else _cat([_estimate(rows[n][k][1]) for k in group])
            people = predictor.fit(boxes, K, keypoints, world, min_conf, init=start, expected=anchor, shape=anchor.betas,
                                   config=replace(cfg, iterations=iterations), timer=timer)  # fmt: skip
            for k, p in zip(group, people):
                p.flags = rows[n][k][1].flags if iterations == 0 else p.flags + (["hidden"] if "hidden" in rows[n][k][1].flags else [])
                rows[n][k] = (rows[n][k][0], replace(p, vertices=None))


def _predict(history: list[tuple[int, float, Estimate]], now: float, gain: float) -> Estimate:
    """A track's estimate at time `now` from its last one or two fits."""
    if len(history) < 2 or gain == 0:
        return history[-1][2]
    (_, t0, e0), (_, t1, e1) = history
    ratio = (now - t1) / (t1 - t0) if t1 > t0 else 0.0
    return along(e0, e1, 1 + gain * ratio)


def run_sequence(predictor: Predictor, video: str | Path | Reader, chosen: FrameRange = FrameRange(),
                 intrinsics=None, focal: float | None = None, config: SequenceConfig | None = None,
                 progress: bool = False) -> SequenceResult:  # fmt: skip
    """A video file (a path, or a `video.Reader` of a file or of a folder of frames) -> `SequenceResult`.

    intrinsics / focal: the camera, as for photos (default: f = the frame's diagonal). Reading
    stops at damage in the file; the frames before it are fitted and `damage` says where.
    """
    config = config or SequenceConfig()
    reader = video if isinstance(video, Reader) else Reader(video)
    timer = StageTimer()
    info = reader.info
    K = camera.choose_intrinsics(info.width, info.height, intrinsics, focal)
    start = clock.perf_counter()
    frames, observations, damage = read_people(predictor, reader, chosen, Tracker(config.tracker), timer, K, progress)
    hidden = hidden_behind(observations, config.same_keypoints) if config.temporal else set()
    fixed = fix_left_right(observations, predictor.pose_estimator.min_confidence, hidden) if config.temporal else 0
    people = fit_tracks(predictor, K, frames, observations, config, timer, hidden, progress)
    if config.temporal and config.refine_iterations:
        refine_tracks(predictor, K, frames, observations, people, config, timer, hidden, progress)
    timer.seconds["total"] = clock.perf_counter() - start
    method = "fit" if predictor.network is None else "cliff+fit"  # with a network, its estimate starts the fits
    return SequenceResult(info, K, predictor.body.name, method, predictor.joint_names, predictor.faces,
                          frames, people, timer.seconds, damage, fixed)  # fmt: skip
