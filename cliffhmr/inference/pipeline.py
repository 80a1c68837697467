"""The straight line from a photo to people in the full camera frame.

image -> person boxes -> crops and camera -> (CLIFF network | keypoints + regressor) -> body model
-> full-frame fitting -> `ImageResult`. Rendering and files are in `outputs`. With a network and
`refine`, the network's estimate starts the full-frame fit (the CLIFF+ annotator).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..body import COCO17_NAMES, BodyModel, BodyOutput, Estimate, load_body_model
from ..device import resolve_device, single_threaded
from ..errors import CliffError
from ..fitting.fit import FitConfig
from ..geometry import camera
from ..geometry.boxes import box_around, grow_box
from ..geometry.rotation import rotmat_to_axis_angle
from ..perception.image import LoadedImage, load_image
from ..perception import crop
from ..perception.detect import PASSES, check_passes
from ..perception.keypoints import check_user_keypoints
from ..timing import StageTimer
from .engine import EngineConfig, Network, cut_crops, prefetch, run_network


@dataclass
class Person:
    """One person, everything in the full camera frame (OpenCV axes, metres, pixels)."""

    bbox: np.ndarray  # (5,) x1, y1, x2, y2, score
    center: np.ndarray  # (2,) crop centre in pixels
    scale: float  # crop height / 200 pixels
    rotmat: np.ndarray  # (J, 3, 3) local joint rotations, [0] = global orientation in the camera frame
    pose: np.ndarray  # (J * 3,) the same as axis-angle
    betas: np.ndarray  # (S,) shape coefficients of the body model
    pred_cam: np.ndarray  # (3,) crop weak-perspective camera (s, tx, ty)
    transl: np.ndarray  # (3,) body translation in the camera frame ("global_t")
    vertices: np.ndarray | None  # (V, 3) camera frame, translation applied; None in video results (rebuilt when drawn)
    joints: np.ndarray  # (K, 3) body-model joints then COCO-17 keypoints, camera frame
    keypoints_2d: np.ndarray  # (K, 2) `joints` projected into the image
    detected_keypoints: np.ndarray | None = None  # (17, 3) 2D keypoints the fit used (x, y, confidence)
    quality: float | None = None  # 0..1, from the fit's keypoint agreement; None for the network path
    flags: list[str] = field(default_factory=list)


@dataclass
class ImageResult:
    image: LoadedImage
    intrinsics: camera.Intrinsics
    body_model: str
    method: str  # "cliff" (network), "fit" (keypoints + full-frame fitting) or "cliff+fit" (network, then fitting)
    joint_names: list[str]
    faces: np.ndarray
    people: list[Person]
    timings: dict[str, float]


@dataclass
class PredictorConfig:
    checkpoint: str | None = None
    backbone: str | None = None
    body_model: str | None = None  # None -> Anny; a path -> SMPL
    rescale: float = crop.RESCALE_INFERENCE
    detector: str = "nanodet"  # cliffhmr.perception.detect kind: "nanodet" or the previous "ssdlite"
    detection_threshold: float | None = None  # None: the detector's own default
    # Views read besides the whole image; None: every view for photos, none for video frames (a
    # tracker carries people from frame to frame, and each view is another network run per frame).
    detection_passes: tuple[str, ...] | None = None
    fit_iterations: int = FitConfig.iterations  # at most: the fit stops once converged
    refine: bool = False  # with a checkpoint: fit the network's estimate to 2D keypoints in the full frame
    device: str = "cpu"
    engine: EngineConfig = EngineConfig()  # batching of the network path (predict_many)

    def __post_init__(self) -> None:
        # The one check of these settings, for the CLI's flags and the API alike.
        if not (_is_number(self.rescale) and 0.1 <= self.rescale <= 10):  # NaN too; 1e-107 made crops of 0 pixels
            raise CliffError(f"rescale (crop size over box size) must be between 0.1 and 10, got {self.rescale!r}")
        threshold = self.detection_threshold  # None: the detector's own default
        if threshold is not None and not (_is_number(threshold) and 0 <= threshold <= 1):
            raise CliffError(f"detection threshold must be between 0 and 1, got {self.detection_threshold!r}")
        if self.detection_passes is not None:
            self.detection_passes = check_passes(self.detection_passes)
        if not (isinstance(self.fit_iterations, numbers.Integral) and self.fit_iterations >= 0):
            raise CliffError(f"fit iterations must be a whole number >= 0, got {self.fit_iterations!r}")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass
class Request:
    """One image for `Predictor.predict_many`: what `Predictor.__call__` takes."""

    source: str | Path | np.ndarray | LoadedImage
    boxes: np.ndarray | None = None
    intrinsics: camera.Intrinsics | None = None
    focal: float | None = None
    keypoints: np.ndarray | None = None
    keypoints_source: str = "keypoints"


@dataclass
class _Job:
    """An image ready for the network or the fit: its camera, boxes and crops' centres and scales."""

    image: LoadedImage
    K: camera.Intrinsics
    boxes: np.ndarray  # (N, 5)
    center: torch.Tensor  # (N, 2)
    scale: torch.Tensor  # (N,)
    keypoints: np.ndarray | None  # (N, 17, 3) the user's, or None
    timer: StageTimer


def _load(request: Request) -> tuple[LoadedImage, StageTimer]:
    """Decode a request's image (in `prefetch`'s thread), timed."""
    timer = StageTimer()
    with timer("decode"):
        image = request.source if isinstance(request.source, LoadedImage) else load_image(request.source)
    return image, timer


class Predictor:
    """Loads every model once; `__call__` handles one image."""

    def __init__(self, config: PredictorConfig | None = None):
        if config is not None and not isinstance(config, PredictorConfig):
            raise CliffError(f"Predictor takes a PredictorConfig, got {type(config).__name__}")
        self.config = config or PredictorConfig()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.network = self.engine = None
        if cfg.checkpoint is not None:
            from ..models import load_network

            if cfg.body_model in (None, "anny"):
                raise CliffError("the CLIFF network predicts SMPL parameters: pass --smpl PATH with --checkpoint")
            self.network = load_network(cfg.checkpoint, backbone=cfg.backbone, device=cfg.device,
                                        channels_last=cfg.engine.wants_channels_last(self.device))  # fmt: skip
            self.engine = Network(self.network, self.device, cfg.engine)
        self.body: BodyModel = load_body_model(cfg.body_model, device=cfg.device)
        self._detectors: dict[bool, object] = {}
        self._pose = None

    # Stage objects are built on first use: a run with user boxes never loads the detector.
    @property
    def detector(self):
        """The person detector for photos."""
        return self._detector_for(video=False)

    @property
    def frame_detector(self):
        """The person detector for video frames."""
        return self._detector_for(video=True)

    def _detector_for(self, video: bool):
        if video not in self._detectors:
            from ..perception.detect import PersonDetector

            cfg = self.config
            passes = cfg.detection_passes if cfg.detection_passes is not None else () if video else PASSES
            self._detectors[video] = PersonDetector(score_threshold=cfg.detection_threshold, kind=cfg.detector, passes=passes)
        return self._detectors[video]

    @property
    def pose_estimator(self):
        if self._pose is None:
            from ..perception.blazepose import PoseEstimator

            self._pose = PoseEstimator()
        return self._pose

    @property
    def method(self) -> str:
        if self.network is None:
            return "fit"
        return "cliff+fit" if self.config.refine else "cliff"

    def __call__(
        self,
        source: str | Path | np.ndarray | LoadedImage,
        boxes: np.ndarray | None = None,
        intrinsics: camera.Intrinsics | None = None,
        focal: float | None = None,
        keypoints: np.ndarray | None = None,
        keypoints_source: str = "keypoints",
    ) -> ImageResult:
        """Predict the people in one image.

        boxes: (N, 4|5) person boxes in pixels, or None to detect them; intrinsics / focal override
        the camera (default: EXIF 35 mm focal length if present, else the image diagonal);
        keypoints: (N, 17, 3) COCO-17 2D keypoints (x, y, confidence) per person for the fitting path,
        or None to estimate them; without boxes, each person's box is their keypoints' extent.
        keypoints_source names the keypoints in error messages (e.g. their file).
        """
        request = Request(source, boxes, intrinsics, focal, keypoints, keypoints_source)
        return self._predict([self._prepare(request, *_load(request))])[0]

    def predict_many(self, requests: Iterable[Request]) -> Iterator[tuple[Request, ImageResult | CliffError]]:
        """Predict many images -> (request, its result or the CliffError that stopped it), in order.

        Images are decoded ahead in a background thread; on the CLIFF network path the people of
        several images go through the network together (`engine`, batches of the config's
        `engine.batch_size` people). Results equal `__call__`'s image by image.
        """
        pending: list[tuple[Request, _Job | CliffError]] = []  # in order: a failed image waits for the batch before it

        def flush():
            jobs = [job for _, job in pending if not isinstance(job, CliffError)]
            try:
                results = iter(self._predict(jobs) if jobs else [])
            except CliffError as e:  # one image's fit, or the batch's network: that batch's images fail
                results = iter([e] * len(jobs))
            yield from ((r, job if isinstance(job, CliffError) else next(results)) for r, job in pending)
            pending.clear()

        for request, loaded in prefetch(requests, _load, self.config.engine.prefetch):
            try:
                pending.append((request, self._prepare(request, *loaded.result())))
            except CliffError as e:
                pending.append((request, e))
            people = sum(len(job.boxes) for _, job in pending if not isinstance(job, CliffError))
            if self.method != "cliff" or people >= self.engine.batch_size:
                yield from flush()
        yield from flush()

    def _prepare(self, request: Request, image: LoadedImage, timer: StageTimer) -> _Job:
        """An image's camera and boxes (detected unless given), and its keypoints when given."""
        K = camera.choose_intrinsics(image.width, image.height, request.intrinsics, request.focal, image.focal_35mm)
        name = str(image.path) if image.path else "image"
        keypoints, boxes, source = request.keypoints, request.boxes, request.keypoints_source
        if keypoints is not None:
            keypoints = check_user_keypoints(keypoints, image.width, image.height, source, str(image.path or ""))
        with timer("detection"):
            if boxes is None and keypoints is not None:
                boxes = _keypoint_boxes(keypoints)  # the user's keypoints say who is there
            elif boxes is None:
                boxes = _whole_image_box(image) if self.method == "cliff" else self.detector(image.pixels)
            else:
                boxes = crop.validate_boxes(boxes, image.width, image.height, source=name)
        if keypoints is not None and len(keypoints) != len(boxes):
            raise CliffError(f"{source}: {len(keypoints)} people's keypoints for {len(boxes)} boxes in {name}")
        return self._job(image, K, boxes, keypoints, timer)

    def _predict(self, jobs: list[_Job]) -> list[ImageResult]:
        if self.method == "cliff":
            return self._predict_network(jobs)
        (job,) = jobs
        init = self._network_people([job], job.timer, pose=False).estimate if self.network and len(job.boxes) else None
        people = self._run_fit(job.image, job.boxes, job.K, job.keypoints, job.timer, init) if len(job.boxes) else []
        return [self._result(job, people, job.timer.seconds)]

    def _predict_network(self, jobs: list[_Job]) -> list[ImageResult]:
        """The people of every image in one network batch; each image's result gets its share of
        the batch's time, by its number of people."""
        batch_timer, people_in = StageTimer(), [len(job.boxes) for job in jobs]
        found = self._network_people([job for job in jobs if len(job.boxes)], batch_timer) if sum(people_in) else None
        results, start, total = [], 0, max(sum(people_in), 1)
        for job in jobs:
            part = slice(start, start + len(job.boxes))
            start = part.stop
            people = []
            if len(job.boxes):
                est, cam = found.estimate, found.cam[part]
                body = BodyOutput(*(getattr(found.body, k)[part] for k in ("vertices", "joints", "keypoints")))
                people = _people(job.boxes, job.center, job.scale, est.rotmat[part], est.betas[part], cam, est.transl[part], body, job.K)
                for person, s in zip(people, cam[:, 0].tolist()):
                    if not s > 0:  # the crop scale puts the body at or behind the camera: no pixels to report
                        person.flags.append("behind_camera")
                        person.keypoints_2d[:] = np.nan
            share = len(job.boxes) / total
            timings = {**job.timer.seconds, **{k: v * share for k, v in batch_timer.seconds.items()}}
            results.append(self._result(job, people, timings))
        return results

    def _network_people(self, jobs: list[_Job], timer: StageTimer, pose: bool = True):
        """The CLIFF network's reading of every person of `jobs` (`engine.NetworkPeople`)."""
        with timer("crop"):
            batch = cut_crops([(j.image.pixels, j.center, j.scale, j.K) for j in jobs], self.engine.crop_height, self.device)
        return run_network(self.engine, self.body if pose else None, batch, timer)

    def _result(self, job: _Job, people: list[Person], timings: dict[str, float]) -> ImageResult:
        return ImageResult(image=job.image, intrinsics=job.K, body_model=self.body.name, method=self.method,
                           joint_names=self.joint_names, faces=self.faces, people=people, timings=timings)  # fmt: skip

    def network_estimates(self, images: list[tuple[np.ndarray, np.ndarray, camera.Intrinsics]], timer=None) -> list[Estimate | None]:
        """The CLIFF network's estimate (full frame) of the people in each (pixels (H, W, 3) uint8,
        boxes (P, 4+), camera K), all images' people in the network's batches; None for no people."""
        timer = timer or StageTimer()
        jobs = [self._job(LoadedImage(pixels, None, None), K, np.asarray(boxes, np.float32), None, timer) for pixels, boxes, K in images]
        seen = [job for job in jobs if len(job.boxes)]
        found = self._network_people(seen, timer, pose=False).estimate if seen else None
        out, start = [], 0
        for job in jobs:
            part = slice(start, start + len(job.boxes))
            start = part.stop
            out.append(Estimate(found.rotmat[part], found.betas[part], found.transl[part]) if len(job.boxes) else None)
        return out

    def _job(self, image: LoadedImage, K: camera.Intrinsics, boxes: np.ndarray, keypoints, timer: StageTimer) -> _Job:
        center, scale = crop.box_to_center_scale(torch.as_tensor(boxes[:, :4], dtype=torch.float32), rescale=self.config.rescale)
        return _Job(image, K, boxes, center, scale, keypoints, timer)

    def _run_fit(self, image, boxes, K, keypoints, timer, init=None) -> list[Person]:
        """Keypoints (estimated unless given) -> full-frame fit from `init`, or from the keypoint regressor's estimate."""
        with timer("keypoints"):
            if keypoints is None:
                kp = self.keypoints(image.pixels, boxes)
                keypoints, world, min_conf = kp.coco, kp.world, self.pose_estimator.min_confidence
            else:
                world, min_conf = None, None
        return self.fit(boxes, K, keypoints, world, min_conf, init=init, timer=timer)

    def keypoints(self, pixels: np.ndarray, boxes: np.ndarray):
        """COCO-17 keypoints (and metric world landmarks) of the people in `boxes` (N, 4+) of an
        (H, W, 3) uint8 image -> `cliffhmr.keypoints.Keypoints`."""
        return self.pose_estimator(pixels, boxes)

    def fit(self, boxes, K: camera.Intrinsics, keypoints, world=None, min_confidence: float | None = None, init=None,
            expected=None, shape=None, config: FitConfig | None = None, timer=None) -> list[Person]:  # fmt: skip
        """People fitted to their 2D keypoints in the full frame of camera K.

        boxes (P, 5) pixels; keypoints (P, 17, 3) pixels + confidence; world (P, 17, 3) metric
        landmarks or None; min_confidence: below it a keypoint is unseen (default: the config's).
        init: the start (`fit.Estimate`), default the keypoint regressor's estimate; expected, shape:
        a track's prediction and shape (see `fit.fit_people`); config: default FitConfig with this
        predictor's iterations.
        """
        from ..fitting.fit import fit_people
        from ..models.initial import initial_estimate

        timer = timer or StageTimer()
        config = config or FitConfig(iterations=self.config.fit_iterations)
        if min_confidence is not None:
            config = replace(config, min_confidence=min_confidence)
        n = len(boxes)
        center, scale = crop.box_to_center_scale(torch.as_tensor(np.asarray(boxes)[:, :4], dtype=torch.float32), rescale=self.config.rescale)
        kp2d = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
        world = None if world is None else torch.as_tensor(np.asarray(world), dtype=torch.float32)
        f, c = K.as_tensors(n)  # (fx, fy) per person; the crop camera below takes the single CLIFF focal
        if init is None:
            with timer("regressor"):
                init = initial_estimate(self.body, kp2d, center, scale, f, c, min_conf=config.min_confidence)
        with timer("fitting"), single_threaded():
            fit = fit_people(self.body, kp2d, f, c, init, world=world, config=config, expected=expected, shape=shape)
        cam = camera.cam_full_to_crop(fit.transl, center, 200.0 * scale, torch.full((n,), K.focal), c)
        people = _people(boxes, center, scale, fit.rotmat, fit.betas, cam, fit.transl, fit.body, K)
        for p, q, flags, k in zip(people, fit.quality.tolist(), fit.flags, kp2d.numpy()):
            p.quality, p.flags, p.detected_keypoints = q, flags, k
        return people

    @property
    def joint_names(self) -> list[str]:
        """Names of a Person's `joints` rows: the body model's joints, then the COCO-17 keypoints."""
        return [*self.body.joint_names, *(f"coco_{k}" for k in COCO17_NAMES)]

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) the body mesh's triangles."""
        return self.body.faces.cpu().numpy()


def _keypoint_boxes(kp: np.ndarray) -> np.ndarray:
    """(N, 17, 3) -> (N, 5) boxes around each person's confident keypoints, 10% margin (at least 8 px), score 1."""
    box = grow_box(box_around(torch.as_tensor(kp[..., :2]), torch.as_tensor(kp[..., 2] > 0)), 0.1, min_pad=8.0)
    return np.concatenate((box.numpy(), np.ones((len(kp), 1))), 1).astype(np.float32)


def _whole_image_box(image: LoadedImage) -> np.ndarray:
    return np.array([[0, 0, image.width, image.height, 1.0]], np.float32)


def _people(boxes, center, scale, rotmat, betas, cam, transl, body, K: camera.Intrinsics) -> list[Person]:
    """Pack batched tensors into per-person results; joints = model joints ++ COCO-17 keypoints."""
    joints = torch.cat((body.joints, body.keypoints), dim=1).detach().cpu()
    n = joints.shape[0]
    f = torch.tensor([[K.fx, K.fy]]).expand(n, 2)
    c = torch.tensor([[K.cx, K.cy]]).expand(n, 2)
    kp2d = camera.perspective_project(joints, f, c)
    rotmat = rotmat.detach().cpu()
    aa = rotmat_to_axis_angle(rotmat).reshape(n, -1)
    verts = body.vertices.detach().cpu()
    return [
        Person(
            bbox=np.asarray(boxes[i], np.float32),
            center=center[i].numpy(),
            scale=float(scale[i]),
            rotmat=rotmat[i].numpy(),
            pose=aa[i].numpy(),
            betas=betas[i].detach().cpu().numpy(),
            pred_cam=cam[i].detach().cpu().numpy(),
            transl=transl[i].detach().cpu().numpy(),
            vertices=verts[i].numpy(),
            joints=joints[i].numpy(),
            keypoints_2d=kp2d[i].numpy(),
        )
        for i in range(n)
    ]

