"""`cliffhmr annotate`: photos -> one SPIN/CLIFF npz of pseudo ground truth, shard by shard.

Refinement (`--refine`), from the pipeline's people (boxes, 2D keypoints, camera):
- none: the CLIFF network's estimate as it is;
- fit: each person's body fitted to their keypoints in the full frame, from the network's estimate
  (or, without a network, from the keypoint regressor's);
- network: the paper's annotator: the network fine-tuned on the shard's keypoints, then read off
  (`refine`).
Work goes in shards (`shards`), so that a killed run resumes and ends with the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import CliffError
from ..fitting.fit import FitConfig
from ..geometry.camera import Intrinsics
from ..inference.engine import EngineConfig, Network
from ..inference.pipeline import ImageResult, Predictor, PredictorConfig
from ..perception.detect import PASSES
from ..perception.image import list_images, load_boxes_file, load_image
from . import shards as work
from .items import Skip, given_boxes, given_keypoints, select_people, unlisted_images
from .refine import RefineConfig, fine_tune, gather_targets
from .rows import check_output, concat_rows, dataset_root, result_rows

REFINE_MODES = ("none", "fit", "network")


@dataclass
class AnnotateConfig:
    input: Path
    out: Path
    refine: str = "fit"
    shard_size: int = 64  # images per shard: the unit of work a restart does not redo
    min_quality: float = 0.5  # rows whose keypoint agreement is lower get has_smpl = 0
    checkpoint: str | None = None
    backbone: str | None = None
    smpl: str | None = None
    boxes: str | None = None
    keypoints: str | None = None
    detector: str = "nanodet"
    detection_passes: tuple[str, ...] = PASSES
    focal: float | None = None
    intrinsics: Intrinsics | None = None
    fit_iterations: int | None = None  # None: the fit's default
    network: RefineConfig = field(default_factory=RefineConfig)
    device: str = "cpu"
    progress: bool = True
    ray: str | None = None  # None: this process; "local": a Ray instance started here; else a Ray cluster's address
    ray_workers: int = 2  # Ray workers, one model each
    workers: int = 1  # without Ray: processes on this machine, one model and one core each


@dataclass
class ShardJob:
    """What the shards of a run share: enough to annotate any of them, in this process or a Ray worker."""

    cfg: AnnotateConfig
    root: Path
    boxes: dict | None
    keypoints: dict | None
    folder: Path

    def predictor(self) -> Predictor:
        return Predictor(_predictor_config(self.cfg))

    def __call__(self, predictor: Predictor, shard: work.Shard, progress=lambda n: None) -> int:
        """Annotate one shard and write its file; -> its number of images."""
        rows, skips = _annotate_shard(self.cfg, predictor, shard.images, self.root, self.boxes, self.keypoints, progress)
        work.write_shard(self.folder, shard.index, rows, skips)
        return len(shard.images)


@dataclass
class AnnotateSummary:
    out: Path
    rows: dict[str, np.ndarray]  # the dataset written ({} when nothing was annotated: no file)
    images: int  # images that gave rows
    skips: list[Skip]
    skip_log: Path
    method: str  # refinement and body model, e.g. "cliff+fit, smpl"
    resumed_shards: int  # shards an earlier run had finished


@dataclass
class _Image:
    """One image through the first pass: its people's result, and the keypoint threshold it used."""

    name: str
    pixels: np.ndarray
    result: ImageResult
    min_confidence: float | None  # None: the fit's default (the user's keypoints)


def annotate(cfg: AnnotateConfig) -> AnnotateSummary:
    _check(cfg)
    _predictor_config(cfg)  # its checks, before any file is read
    out = check_output(cfg.out)
    images = list_images(cfg.input)
    root = dataset_root(cfg.input)
    boxes = load_boxes_file(cfg.boxes) if cfg.boxes else None
    keypoints, extra_skips = _keypoint_table(cfg, images)
    plan = work.plan_shards(images, cfg.shard_size)
    folder, arguments = work.work_folder(out), _arguments(cfg, images, root)
    work.check_work_folder(folder, arguments)
    todo = [s for s in plan if not work.shard_path(folder, s.index).is_file()]
    if todo:
        job = ShardJob(cfg, root, boxes, keypoints, folder)
        # A wrong model file stops the run before it writes anything (on Ray: Ray missing).
        predictor = job.predictor() if cfg.ray is None else None
        if cfg.ray is not None:
            from .on_ray import require_ray

            require_ray()
        work.start_work_folder(folder, arguments)
        from tqdm import tqdm

        done = sum(len(s.images) for s in plan) - sum(len(s.images) for s in todo)
        with tqdm(total=len(images), initial=done, desc="annotate", unit="img", disable=not cfg.progress, file=sys.stderr) as bar:
            if cfg.ray is not None:
                from .on_ray import run_on_ray

                run_on_ray(job, todo, cfg.ray, cfg.ray_workers, bar.update)
            elif cfg.workers > 1 and len(todo) > 1:
                from .on_ray import run_in_processes

                del predictor  # checked above; the workers load their own
                run_in_processes(job, todo, min(cfg.workers, len(todo)), bar.update)
            else:
                for shard in todo:
                    job(predictor, shard, bar.update)
    rows, skips = work.merge(folder, len(plan), out, extra_skips)
    method = {"none": "cliff", "fit": "cliff+fit" if cfg.checkpoint else "fit", "network": "cliff+network"}[cfg.refine]
    method += ", smpl" if cfg.smpl else ", anny"
    annotated = len(set(rows["imgname"].tolist())) if rows else 0
    return AnnotateSummary(out, rows, annotated, skips, work.skip_log_path(out), method, len(plan) - len(todo))


def _check(cfg: AnnotateConfig) -> None:
    if cfg.refine not in REFINE_MODES:
        raise CliffError(f"--refine must be one of {', '.join(REFINE_MODES)}, got {cfg.refine!r}")
    if cfg.refine != "fit" and cfg.checkpoint is None:
        raise CliffError(f"--refine {cfg.refine} refines a CLIFF network's estimate: give --checkpoint (and --smpl); "
                         "without one the annotator fits the body to keypoints (--refine fit)")  # fmt: skip
    if not 0 <= cfg.min_quality <= 1:  # NaN too: no row would pass
        raise CliffError(f"--min-quality must be between 0 and 1, got {cfg.min_quality:g}")
    if cfg.shard_size < 1:
        raise CliffError(f"--shard-size must be at least 1 image, got {cfg.shard_size}")
    if cfg.workers < 1:
        raise CliffError(f"--workers must be at least 1, got {cfg.workers}")
    if cfg.ray is not None and cfg.ray_workers < 1:
        raise CliffError(f"--ray-workers must be at least 1, got {cfg.ray_workers}")
    if cfg.network.steps < 0:
        raise CliffError(f"--refine-steps must be >= 0, got {cfg.network.steps}")


def _predictor_config(cfg: AnnotateConfig) -> PredictorConfig:
    """none and network read the network's estimate through the fit with no steps: the same rows
    (keypoints kept, quality measured) as fit, without moving the body."""
    iterations = 0 if cfg.refine != "fit" else cfg.fit_iterations
    extra = {} if iterations is None else {"fit_iterations": iterations}
    # One thread, always: the network's last bits depend on the thread count, and a resumed run
    # must equal an uninterrupted one array for array.
    return PredictorConfig(checkpoint=cfg.checkpoint, backbone=cfg.backbone, body_model=cfg.smpl, detector=cfg.detector,
                           detection_passes=cfg.detection_passes, refine=cfg.checkpoint is not None, device=cfg.device, engine=EngineConfig(threads=1), **extra)  # fmt: skip


def _keypoint_table(cfg: AnnotateConfig, images: list[Path]) -> tuple[dict | None, list[Skip]]:
    """{key: (N, 17, 3)} of the keypoint file (None: none given), and its images the input lacks."""
    if not cfg.keypoints:
        return None, []
    from ..perception.keypoint_files import coco_keypoints_by_image, load_keypoints_file

    if len(images) == 1 and not Path(cfg.input).is_dir():  # any layout, OpenPose too: a file about one image
        return {images[0].name: load_keypoints_file(cfg.keypoints, image_name=images[0].name)}, []
    table = coco_keypoints_by_image(cfg.keypoints, keep_nonfinite=True)  # NaN: logged person by person
    return table, unlisted_images(table, images)


def _arguments(cfg: AnnotateConfig, images: list[Path], root: Path) -> dict:
    """Everything that decides the output: a work folder left by other values is not resumed."""
    names = "\n".join(p.relative_to(root).as_posix() for p in images)
    return {
        "input": str(Path(cfg.input).resolve()), "images": hashlib.sha256(names.encode()).hexdigest(),
        "boxes": work.file_digest(cfg.boxes), "keypoints": work.file_digest(cfg.keypoints),
        "checkpoint": work.file_digest(cfg.checkpoint), "backbone": cfg.backbone,
        "smpl": None if cfg.smpl is None else str(Path(cfg.smpl).resolve()), "detector": cfg.detector,
        "detection_passes": list(cfg.detection_passes),
        "focal": cfg.focal, "intrinsics": None if cfg.intrinsics is None else list(astuple(cfg.intrinsics)),
        "refine": cfg.refine, "fit_iterations": cfg.fit_iterations, "min_quality": cfg.min_quality,
        "network": [cfg.network.steps, cfg.network.lr, cfg.network.batch_size, cfg.network.prior, cfg.network.seed],
        "shard_size": cfg.shard_size, "device": cfg.device,
    }  # fmt: skip


def _annotate_shard(cfg, predictor, images, root, boxes, keypoints, progress) -> tuple[dict[str, np.ndarray], list[Skip]]:
    done, skips = [], []
    for path in images:
        name = path.relative_to(root).as_posix()
        item, item_skips = _first_pass(cfg, predictor, path, name, boxes, keypoints)
        skips += item_skips
        if item is not None:
            done.append(item)
        progress(1)
    if cfg.refine == "network" and done:
        done = _network_pass(cfg, predictor, done)
    rows = concat_rows([result_rows(d.result, d.name, cfg.min_quality) for d in done])
    return rows, skips


def _first_pass(cfg, predictor, path: Path, name: str, boxes, keypoints) -> tuple[_Image | None, list[Skip]]:
    """One image through the pipeline (with fit, the whole refinement), or why not."""
    try:
        image = load_image(path)
    except CliffError as e:
        return None, [Skip(name, f"unreadable image: {e}")]
    people, skips = select_people(name, image.width, image.height, given_boxes(boxes, path), given_keypoints(keypoints, path))
    if people is None:
        return None, skips
    try:
        result = predictor(image, boxes=people.boxes, intrinsics=cfg.intrinsics, focal=cfg.focal, keypoints=people.keypoints,
                           keypoints_source=str(cfg.keypoints))  # fmt: skip
    except CliffError as e:
        return None, [*skips, Skip(name, str(e))]
    if not result.people:
        return None, [*skips, Skip(name, "no person found")]
    min_conf = None if people.keypoints is not None else predictor.pose_estimator.min_confidence
    return _Image(name, image.pixels, result, min_conf), skips


def _network_pass(cfg, predictor, done: list[_Image]) -> list[_Image]:
    """The network fine-tuned on this shard's people, then each person's estimate read from it."""
    thresholds = [FitConfig.min_confidence if d.min_confidence is None else d.min_confidence for d in done]
    targets = gather_targets(predictor.network, [(d.pixels, d.result, t) for d, t in zip(done, thresholds)])
    tuned = fine_tune(predictor.network, predictor.body, targets, cfg.network, predictor.device)
    out = []
    boxes = [np.stack([p.bbox for p in d.result.people]) for d in done]
    with _network(predictor, replace(predictor.network, model=tuned)):
        inits = predictor.network_estimates([(d.pixels, b, d.result.intrinsics) for d, b in zip(done, boxes)])
        for d, b, init in zip(done, boxes, inits):
            keypoints = np.stack([p.detected_keypoints for p in d.result.people])
            people = predictor.fit(b, d.result.intrinsics, keypoints, min_confidence=d.min_confidence, init=init)  # 0 steps: the estimate
            out.append(replace(d, result=replace(d.result, people=people, method="cliff+network")))
    return out


@contextlib.contextmanager
def _network(predictor: Predictor, net):
    """The predictor with another network for the block (the tuned copy), then its own again."""
    own = predictor.network, predictor.engine
    predictor.network, predictor.engine = net, Network(net, predictor.device, predictor.config.engine)
    try:
        yield
    finally:
        predictor.network, predictor.engine = own
