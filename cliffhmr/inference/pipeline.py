"""The straight line from a photo to people in the full camera frame.

image -> person boxes -> crops and camera -> (CLIFF network | keypoints + regressor) -> body model
-> full-frame fitting -> `ImageResult`. Rendering and files are in `outputs`. With a network and
`refine`, the network's estimate starts the full-frame fit (the CLIFF+ annotator).
"""

from __future__ import annotations

import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..body import COCO17_NAMES, BodyModel, load_body_model
from ..device import resolve_device
from ..errors import CliffError
from ..fitting.fit import FitConfig
from ..geometry import camera
from ..geometry.boxes import box_around, grow_box
from ..geometry.rotation import rotmat_to_axis_angle
from ..perception.image import LoadedImage, load_image
from ..perception import crop


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
    fit_iterations: int = FitConfig.iterations  # at most: the fit stops once converged
    refine: bool = False  # with a checkpoint: fit the network's estimate to 2D keypoints in the full frame
    device: str = "cpu"

    def __post_init__(self) -> None:
        # The one check of these settings, for the CLI's flags and the API alike.
        if not (_is_number(self.rescale) and 0.1 <= self.rescale <= 10):  # NaN too; 1e-107 made crops of 0 pixels
            raise CliffError(f"rescale (crop size over box size) must be between 0.1 and 10, got {self.rescale!r}")
        threshold = self.detection_threshold  # None: the detector's own default
        if threshold is not None and not (_is_number(threshold) and 0 <= threshold <= 1):
            raise CliffError(f"detection threshold must be between 0 and 1, got {self.detection_threshold!r}")
        if not (isinstance(self.fit_iterations, numbers.Integral) and self.fit_iterations >= 0):
            raise CliffError(f"fit iterations must be a whole number >= 0, got {self.fit_iterations!r}")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@contextmanager
def single_threaded():
    """Run torch on one thread inside the block. The fit and the renderer work on small tensors:
    a second thread gains little on an idle 2-core machine and costs 5-20x when the cores are
    busy (measured: fit 1.0 s vs 6.0 s, render 0.22 s vs 4.9 s on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StageTimer:
    """Seconds spent per named stage, summed over every `with timer("stage"):` block."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class Predictor:
    """Loads every model once; `__call__` handles one image."""

    def __init__(self, config: PredictorConfig | None = None):
        if config is not None and not isinstance(config, PredictorConfig):
            raise CliffError(f"Predictor takes a PredictorConfig, got {type(config).__name__}")
        self.config = config or PredictorConfig()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.network = None
        if cfg.checkpoint is not None:
            from ..models import load_network

            if cfg.body_model in (None, "anny"):
                raise CliffError("the CLIFF network predicts SMPL parameters: pass --smpl PATH with --checkpoint")
            self.network = load_network(cfg.checkpoint, backbone=cfg.backbone, device=cfg.device)
        self.body: BodyModel = load_body_model(cfg.body_model, device=cfg.device)
        self._detector = None
        self._pose = None

    # Stage objects are built on first use: a run with user boxes never loads the detector.
    @property
    def detector(self):
        if self._detector is None:
            from ..perception.detect import PersonDetector

            self._detector = PersonDetector(score_threshold=self.config.detection_threshold, kind=self.config.detector)
        return self._detector

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
        timer = StageTimer()
        image = source if isinstance(source, LoadedImage) else load_image(source)
        K = choose_intrinsics(image.width, image.height, intrinsics, focal, image.focal_35mm)
        name = str(image.path) if image.path else "image"

        if keypoints is not None:
            keypoints = _check_keypoints(keypoints, image, keypoints_source)
        with timer("detection"):
            if boxes is None and keypoints is not None:
                boxes = _keypoint_boxes(keypoints)  # the user's keypoints say who is there
            elif boxes is None:
                boxes = _whole_image_box(image) if self.method == "cliff" else self.detector(image.pixels)
            else:
                boxes = crop.validate_boxes(boxes, image.width, image.height, source=name)
        if keypoints is not None and len(keypoints) != len(boxes):
            raise CliffError(f"{keypoints_source}: {len(keypoints)} people's keypoints for {len(boxes)} boxes in {name}")

        n = len(boxes)
        box_t = torch.as_tensor(boxes[:, :4], dtype=torch.float32)
        center, scale = crop.box_to_center_scale(box_t, rescale=self.config.rescale)
        focal_t = torch.full((n,), K.focal)
        principal = torch.tensor([[K.cx, K.cy]]).expand(n, 2)

        if n == 0:
            people = []
        elif self.method == "cliff":
            est, cam = self._run_network(image, center, scale, focal_t, principal, timer)
            with timer("body model"), torch.no_grad():
                body = self.body(est.rotmat.to(self.device), est.betas.to(self.device), est.transl.to(self.device))
            people = _people(boxes, center, scale, est.rotmat, est.betas, cam, est.transl, body, K)
            for person, s in zip(people, cam[:, 0].tolist()):
                if not s > 0:  # the crop scale puts the body at or behind the camera: no pixels to report
                    person.flags.append("behind_camera")
                    person.keypoints_2d[:] = np.nan
        else:
            init = self._run_network(image, center, scale, focal_t, principal, timer)[0] if self.network else None
            people = self._run_fit(image, boxes, K, keypoints, timer, init)
        return ImageResult(
            image=image,
            intrinsics=K,
            body_model=self.body.name,
            method=self.method,
            joint_names=self.joint_names,
            faces=self.faces,
            people=people,
            timings=timer.seconds,
        )

    @torch.no_grad()
    def _run_network(self, image, center, scale, focal, principal, timer):
        """-> (Estimate in the full frame, crop camera (P, 3)) from the CLIFF network."""
        from ..body import Estimate

        with timer("crop"):
            crops, info = network_inputs(self.network, image.pixels, center, scale, focal, principal)
        with timer("network"):
            out = self.network.model(crops.to(self.device), info.to(self.device))
        transl = camera.cam_crop_to_full(out.cam.cpu(), center, 200.0 * scale, focal, principal)
        return Estimate(out.rotmat.cpu(), out.betas.cpu(), transl), out.cam

    def network_estimate(self, pixels: np.ndarray, boxes: np.ndarray, K: camera.Intrinsics, timer=None):
        """The CLIFF network's estimate (`fit.Estimate`, full frame) of the people in `boxes` (P, 4+)
        of an (H, W, 3) uint8 image seen by camera K."""
        n = len(boxes)
        center, scale = crop.box_to_center_scale(torch.as_tensor(np.asarray(boxes)[:, :4], dtype=torch.float32), rescale=self.config.rescale)
        principal = torch.tensor([[K.cx, K.cy]]).expand(n, 2)
        return self._run_network(LoadedImage(pixels, None, None), center, scale, torch.full((n,), K.focal), principal, timer or StageTimer())[0]

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


def network_inputs(net, pixels: np.ndarray, center, scale, focal, principal) -> tuple[torch.Tensor, torch.Tensor]:
    """What the CLIFF network `net` (a LoadedCheckpoint) reads for the people at `center`, `scale`
    (P, 2), (P,) of an (H, W, 3) image: normalised crops (P, 3, h, w) and bbox_info (P, 3)."""
    crops = crop.normalize(crop.crop_images(pixels, center, scale, net.model.crop_height))
    info = camera.bbox_info(center, 200.0 * scale, focal, principal, style=net.bbox_info)
    if net.mode == "hmr":  # the baseline never saw where its crops were
        info = torch.zeros_like(info)
    return crops, info


def choose_intrinsics(width: int, height: int, intrinsics=None, focal=None, focal_35mm: float | None = None) -> camera.Intrinsics:
    """The camera of a width x height picture: the given intrinsics, else the focal length in
    pixels, else the 35 mm-equivalent one (EXIF), else CLIFF's default (f = the diagonal)."""
    w, h = width, height
    if intrinsics is not None:
        if not isinstance(intrinsics, camera.Intrinsics):
            raise CliffError(f"intrinsics must be a camera.Intrinsics(fx, fy, cx, cy), got {type(intrinsics).__name__}")
        return intrinsics
    if focal is not None:
        return camera.Intrinsics.from_focal(camera.check_focal(focal), w, h)
    if focal_35mm is not None:
        return camera.Intrinsics.from_35mm(focal_35mm, w, h)
    return camera.Intrinsics.default(w, h)


def _check_keypoints(keypoints, image: LoadedImage, source: str) -> np.ndarray:
    """User keypoints (N, 17, 3) that plausibly belong to this image, or a CliffError naming `source`."""
    try:
        kp = np.array(keypoints, dtype=np.float64)  # a copy: the caller's array stays as it was
    except (TypeError, ValueError):
        raise CliffError(f"{source}: keypoints must be numbers, (N, 17, 3) x, y, confidence") from None
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise CliffError(f"{source}: expected COCO-17 keypoints of shape (N, 17, 3), got {kp.shape}")
    if len(kp) == 0:  # the file lists nobody in this image
        return kp
    kp[..., 2] = np.clip(kp[..., 2], 0.0, 1.0)  # as the file loaders do: 1e38 would weigh the fit to inf
    seen = kp[..., 2] > 0
    if not seen.any(-1).all():
        raise CliffError(f"{source}: a person has no keypoint with positive confidence")
    from ..perception.keypoints import outside_missing

    kept = outside_missing(kp, image.width, image.height)  # placed outside the image: missing, as BlazePose's
    inside = kept[..., 2] > 0
    if inside.sum() < 0.5 * seen.sum():
        raise CliffError(
            f"{source}: most keypoints lie outside the {image.width}x{image.height} image {image.path or ''}; wrong file or image?"
        )
    if not inside.any(-1).all():
        raise CliffError(f"{source}: a person has no keypoint inside the {image.width}x{image.height} image {image.path or ''}")
    return kept


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

