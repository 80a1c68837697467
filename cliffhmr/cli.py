"""`cliffhmr` command line: predict, annotate, review, export, serve, train, eval, convert.

Expected mistakes (a `CliffError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .arguments import ArgumentParser
from .errors import CliffError


def _parse_focal(text: str) -> float:
    from .geometry.camera import check_focal  # here: torch loads with it, and --help need not wait

    return check_focal(text)


def _parse_intrinsics(text: str):
    from .geometry.camera import Intrinsics

    return Intrinsics.parse(text, "--intrinsics")


def _parse_passes(text: str) -> tuple[str, ...]:
    from .perception.detect import check_passes

    return () if text.strip().lower() == "none" else check_passes([p.strip() for p in text.split(",") if p.strip()])


def _passes(args) -> dict:
    """--detection-passes as config keywords; not given: the configs' own defaults (photos: every view, video frames: none)."""
    return {} if args.detection_passes is None else {"detection_passes": args.detection_passes}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="cliffhmr", description="3D human meshes placed in the full camera frame (CLIFF).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="people in photos or a video -> body meshes, parameters, overlays")
    _add_input_arguments(p, out_help="output folder")
    v = p.add_argument_group("video (a .mp4/.avi/.mov/.webm/.mkv file, or a folder of numbered frames with --fps)")
    v.add_argument("--fps", type=float, help="frame rate of a folder of numbered frames (makes the folder one video)")
    v.add_argument("--every", type=int, default=1, help="process every N-th frame of those chosen (default 1)")
    v.add_argument("--start", type=float, default=0.0, help="first time to process, seconds (default 0)")
    v.add_argument("--end", type=float, help="process frames before this time, seconds (default: to the end)")
    p.add_argument("--no-render", action="store_true", help="skip the overlay and side-view images (video: the overlay video)")
    p.add_argument("--no-mesh", action="store_true", help="skip the OBJ/GLB files (video: the animated GLB and BVH per track)")
    p.add_argument("--profile", action="store_true", help="print the time spent in each stage")

    a = sub.add_parser("annotate", help="CLIFF+ annotator: photos -> a training dataset (SPIN/CLIFF npz) with pseudo ground truth")
    _add_input_arguments(a, out_help="the dataset file to write (.npz); image names in it are relative to the input folder")
    a.add_argument("--min-quality", type=float, default=0.5,
                   help="rows whose fit agrees less with the keypoints (0..1) get has_smpl=0 (default 0.5)")  # fmt: skip
    a.add_argument("--refine", choices=["none", "fit", "network"], default="fit",
                   help="none: the network's estimate; fit (default): each person fitted to their keypoints in the full frame; "
                        "network: the paper's annotator, the network fine-tuned on each shard's keypoints (needs --checkpoint)")  # fmt: skip
    a.add_argument("--refine-steps", type=int, default=20, help="--refine network: fine-tuning steps per shard (default 20)")
    a.add_argument("--shard-size", type=int, default=64,
                   help="images per shard; finished shards are kept in OUT.shards/, so a killed run resumes (default 64)")  # fmt: skip
    a.add_argument("--ray", metavar="local|ADDRESS", help="run the shards on Ray: a local instance, or a cluster's address "
                   "(pip install 'cliff-hmr[ray]'; the output folder must be shared with the workers)")  # fmt: skip
    a.add_argument("--ray-workers", type=int, default=2, help="Ray workers, one model each (default 2; keep below the CPU count)")
    a.add_argument("--workers", type=int, default=1, help="without --ray: processes on this machine, one model and one core each "
                   "(default 1; the CPU count uses every core)")  # fmt: skip

    r = sub.add_parser("review", help="an annotator's output -> an HTML contact sheet (body over photo, side view), worst rows first")
    r.add_argument("annotations", help="the dataset file `cliffhmr annotate` wrote (.npz)")
    r.add_argument("--images", required=True, help="the folder its image names are relative to (the annotator's input)")
    r.add_argument("--out", required=True, help="folder to write index.html and its pictures into")
    r.add_argument("--smpl", required=True, help="the SMPL model file the annotations were made with")
    r.add_argument("--limit", type=int, default=200, help="rows on the page, the worst by quality (default 200)")

    e = sub.add_parser("export", help="a CLIFF checkpoint -> an ONNX file that --checkpoint takes (runs in onnxruntime)")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="a CLIFF checkpoint (official .pt or ours)")
    what.add_argument("--keypoint-regressor", action="store_true",
                      help="the bundled keypoint regressor of the default path (x (B, 54) -> rotmat, betas, cam)")
    e.add_argument("--out", required=True, help="the file to write (.onnx)")
    e.add_argument("--format", choices=["onnx"], default="onnx", help="the only format so far: onnx (opset 18, dynamic batch)")
    e.add_argument("--backbone", choices=["res50", "hr48"], help="check the checkpoint holds this backbone (default: detect)")

    s = sub.add_parser("serve", help="a local web server: a REST API under /v1 and a page at / (pip install 'cliff-hmr[serve]')")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one, printed)")
    s.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on /v1 (all but /v1/health); default: env CLIFFHMR_TOKEN")
    s.add_argument("--max-upload-mb", type=float, default=20, help="largest request body, MiB (default 20)")
    s.add_argument("--max-megapixels", type=float, default=40, help="largest image, read from its header before decoding (default 40)")
    s.add_argument("--queue", type=int, default=4, help="requests waiting behind the running one; more get 503 (default 4)")
    s.add_argument("--timeout", type=float, default=120, help="seconds a request may take, waiting included; then 504 (default 120)")
    s.add_argument("--keep-results", type=int, default=100, help="result folders kept, the oldest removed first (default 100)")
    s.add_argument("--max-frames", type=int, default=900, help="frames a video job may process (default 900)")
    _add_model_arguments(s)

    sub.add_parser("train", help="train a CLIFF model (see docs/training.md)", add_help=False)
    sub.add_parser("eval", help="evaluate a checkpoint on 3DPW / H36M / AGORA / synthetic data", add_help=False)
    sub.add_parser("convert", help="official dataset downloads (3DPW) -> npz annotation files", add_help=False)
    return parser


def _add_input_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    """What predict and annotate share: the photos, the models, boxes and camera."""
    p.add_argument("input", help="an image file or a folder of images (predict: or a video file)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--boxes", help='JSON {"image.jpg": [[x1, y1, x2, y2, score], ...]}; default: detect people')
    p.add_argument("--keypoints", help="2D keypoints instead of BlazePose's: a COCO-format JSON (results or annotations, "
                   "any number of images), or OpenPose JSON (single image)")  # fmt: skip
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal", type=_parse_focal, help="focal length in pixels (default: EXIF, else the image diagonal)")
    cam.add_argument("--intrinsics", type=_parse_intrinsics, help="fx,fy,cx,cy in pixels")
    _add_model_arguments(p)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The models and how they run: what `_predictor` reads (predict, annotate, serve)."""
    p.add_argument("--checkpoint", help="a CLIFF checkpoint (official .pt, ours, or a `cliffhmr export`ed .onnx, run in onnxruntime); needs --smpl. "
                   "Default: keypoints + fitting")  # fmt: skip
    p.add_argument("--backbone", choices=["res50", "hr48"], help="check the checkpoint holds this backbone (default: detect)")
    p.add_argument("--smpl", help="SMPL model file (.pkl/.npz) or folder; default body model: Anny")
    p.add_argument("--detector", choices=["nanodet", "ssdlite"], default="nanodet",
                   help="person detector when no --boxes are given (default: nanodet; ssdlite: the previous one)")
    p.add_argument("--detection-passes", type=_parse_passes, metavar="LIST",
                   help="views of each image the detector reads besides the whole image, comma-separated from flip,tiles,turns "
                        "(default: all three for photos, none for video frames; none: the whole image alone, one network run "
                        "instead of seven, fewer people found)")  # fmt: skip
    p.add_argument("--fit-iterations", type=int, default=None,
                   help="most optimisation steps of the full-frame fit (it stops earlier once converged)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--batch-size", type=int, help="with --checkpoint: people per network batch, from any number of images "
                   "(default: 8 on a CPU, where larger batches measured slower; 256 on a GPU)")  # fmt: skip
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="with a torch --checkpoint: the network's arithmetic (auto: bf16 on a GPU that has it, else fp32)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():  # the library's warnings as one line each, for this run only
        warnings.showwarning = lambda message, *args, **kwargs: print(f"cliffhmr: warning: {message}", file=sys.stderr)
        return _run(argv)


def _run(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "train":
            from .train.engine import main as train_main

            return train_main(argv[1:])
        if argv and argv[0] == "eval":
            from .evaluation.evaluate import main as eval_main

            return eval_main(argv[1:])
        if argv and argv[0] == "convert":
            from .data.convert import main as convert_main

            return convert_main(argv[1:])
        args = build_parser().parse_args(argv)
        commands = {"annotate": annotate_command, "review": review_command, "export": export_command, "serve": serve_command}
        return commands.get(args.command, predict_command)(args)
    except CliffError as e:
        print(f"cliffhmr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cliffhmr: interrupted", file=sys.stderr)
        return 130


def predict_command(args) -> int:
    from .atomic import check_output_dir
    from .perception.image import output_stems
    from .inference.outputs import write_outputs
    from .inference.video import is_video_file

    check_output_dir(args.out)  # before any work: a file in the way or a read-only place
    if is_video_file(args.input) or args.fps is not None:
        return video_command(args)
    if (args.every, args.start, args.end) != (1, 0.0, None):
        raise CliffError("--every, --start and --end choose frames of a video; for a folder of frames give its --fps")
    images, boxes, keypoints = _inputs(args)
    stems = dict(zip(images, output_stems(images)))
    for path, stem in stems.items():
        if stem != path.stem:
            print(f"cliffhmr: {path.name} shares its name with another image: its results are {stem}.*", file=sys.stderr)
    predictor = _predictor(args, refine=False)

    def write(path, result):
        _, removed = write_outputs(result, args.out, stems[path], meshes=not args.no_mesh, images=not args.no_render)
        note = f" (removed {', '.join(p.name for p in removed)}, left from an earlier run)" if removed else ""
        if not result.people:
            return f"{path.name}: no person found; wrote empty results -> {args.out}{note}"
        return f"{path.name}: {_people(len(result.people))} ({result.method}, {result.body_model}) -> {args.out}{note}"

    failed = _each_image(args, images, boxes, keypoints, predictor, write, "predict", background=True)
    return _report_failures(failed, images)


def video_command(args) -> int:
    """One video (or folder of frames): people tracked and fitted -> npz, JSON summary, overlay video."""
    from pathlib import Path

    from .inference.outputs import write_video_outputs
    from .inference.sequence import run_sequence
    from .inference.video import FrameRange, Reader

    if args.boxes or args.keypoints:
        raise CliffError("--boxes and --keypoints are for photos: in a video, people are found by the detector and followed by the tracker")
    chosen = FrameRange(args.every, args.start, args.end)
    reader = Reader(args.input, args.fps)  # an unreadable file is refused before the models load
    predictor = _predictor(args, refine=False)
    result = run_sequence(predictor, reader, chosen, intrinsics=args.intrinsics, focal=args.focal, progress=True)
    stem = Path(args.input).stem if Path(args.input).is_file() else Path(args.input).name
    _, removed = write_video_outputs(result, predictor.body, reader, chosen, args.out, stem, render=not args.no_render,
                                     animations=not args.no_mesh, progress=True)  # fmt: skip
    tracks = len({t for row in result.people for t, _ in row})
    note = f" (removed {', '.join(p.name for p in removed)}, left from an earlier run)" if removed else ""
    print(f"{Path(args.input).name}: {len(result.frames)} frames, {_people(tracks)} followed ({result.method}, {result.body_model}) -> {args.out}{note}")
    if args.profile:
        frames = max(len(result.frames), 1)
        print("  " + "  ".join(f"{k}: {v:.1f} s ({v / frames * 1000:.0f} ms/frame)" for k, v in result.timings.items()))
    if result.damage:
        print(f"cliffhmr: error: {result.damage}; the results hold the {len(result.frames)} frames before it", file=sys.stderr)
        return 2
    return 0


def serve_command(args) -> int:
    from .serve.command import serve
    from .serve.work import Limits

    limits = Limits(max_upload_bytes=args.max_upload_mb * 2**20, max_pixels=args.max_megapixels * 1e6,
                    queue=args.queue, timeout_s=args.timeout, keep_results=args.keep_results, max_frames=args.max_frames)  # fmt: skip
    return serve(lambda: _predictor(args, refine=False), args.host, args.port, limits, args.token)


def export_command(args) -> int:
    from .atomic import check_output_file
    from .models import export_onnx, load_checkpoint
    from .models.onnx_network import OPSET

    out = check_output_file(args.out)
    if out.suffix.lower() != ".onnx":
        raise CliffError(f"{out}: an ONNX file is named .onnx (commands tell it from a torch checkpoint by that)")
    if args.keypoint_regressor:
        from .models import export_keypoint_regressor
        from .models.keypoint_regressor import load_keypoint_regressor

        export_keypoint_regressor(load_keypoint_regressor(), out)
        print(f"wrote {out} (the bundled keypoint regressor, opset {OPSET}, any batch size)", file=sys.stderr)
        return 0
    loaded = load_checkpoint(args.checkpoint, backbone=args.backbone)
    export_onnx(loaded, out)
    print(f"wrote {out} (CLIFF-{loaded.backbone}, crop height {loaded.model.crop_height}, opset {OPSET}, any batch size)", file=sys.stderr)
    return 0


def annotate_command(args) -> int:
    from pathlib import Path

    from .annotation.refine import RefineConfig
    from .annotation.rows import dataset_root
    from .annotation.run import AnnotateConfig, annotate

    config = AnnotateConfig(
        input=Path(args.input), out=Path(args.out), refine=args.refine, shard_size=args.shard_size, min_quality=args.min_quality,
        checkpoint=args.checkpoint, backbone=args.backbone, smpl=args.smpl, boxes=args.boxes, keypoints=args.keypoints,
        detector=args.detector, **_passes(args), focal=args.focal, intrinsics=args.intrinsics, fit_iterations=args.fit_iterations,
        network=RefineConfig(steps=args.refine_steps), device=args.device, ray=args.ray, ray_workers=args.ray_workers, workers=args.workers,
    )  # fmt: skip
    summary = annotate(config)
    rows, out = summary.rows, summary.out
    skipped = f"; {len(summary.skips)} item{'' if len(summary.skips) == 1 else 's'} skipped (reasons in {summary.skip_log})"
    resumed = f" (resumed: {summary.resumed_shards} shard(s) done before)" if summary.resumed_shards else ""
    if not rows:
        print(f"cliffhmr: nothing to annotate: no person found{skipped}; {out} not written", file=sys.stderr)
        return 2
    n = len(rows["imgname"])
    what = (f"{int(rows['has_smpl'].sum())} with pseudo-ground-truth SMPL (quality >= {args.min_quality})"
            if "has_smpl" in rows else "2D keypoints only (pass --smpl for pseudo-ground-truth SMPL)")  # fmt: skip
    print(f"{out}: {_people(n)} from {summary.images} image{'' if summary.images == 1 else 's'} ({summary.method}), {what}; "
          f"image root {dataset_root(args.input)}{skipped if summary.skips else ''}{resumed}")  # fmt: skip
    return 0


def review_command(args) -> int:
    from pathlib import Path

    from .annotation.review import ReviewConfig, review

    rows = review(ReviewConfig(Path(args.annotations), Path(args.images), Path(args.out), args.smpl, args.limit))
    print(f"{Path(args.out) / 'index.html'}: {len(rows)} row{'' if len(rows) == 1 else 's'}, worst quality first")
    return 0


def _inputs(args):
    """The images to run on; the boxes file's contents (None: detect); image path -> the user's
    keypoints for it (None: estimate them). Files are read once, before any model loads."""
    from .perception.image import list_images, load_boxes_file

    images = list_images(args.input)
    boxes = load_boxes_file(args.boxes) if args.boxes else None
    if not args.keypoints:
        return images, boxes, lambda path: None
    from .perception.keypoint_files import coco_keypoints_by_image, keypoints_for_image, load_keypoints_file

    if len(images) == 1:  # any layout, OpenPose included; a file about one image needs no name in it
        single = load_keypoints_file(args.keypoints, image_name=images[0].name)
        return images, boxes, lambda path: single
    table = coco_keypoints_by_image(args.keypoints)
    return images, boxes, lambda path: keypoints_for_image(table, path.name)


def _predictor(args, refine: bool):
    from .inference.engine import EngineConfig
    from .inference.pipeline import Predictor, PredictorConfig

    iterations = {} if args.fit_iterations is None else {"fit_iterations": args.fit_iterations}
    engine = EngineConfig(batch_size=args.batch_size, precision=args.precision)
    config = PredictorConfig(
        checkpoint=args.checkpoint, backbone=args.backbone, body_model=args.smpl,
        detector=args.detector, **_passes(args), refine=refine, device=args.device, engine=engine, **iterations,
    )  # fmt: skip
    return Predictor(config)


def _each_image(args, images, boxes, keypoints, predictor, step, desc: str, background: bool = False) -> list:
    """Predict every image and hand its result to `step` (which returns a line to print). An image
    that fails gets one error line and the others go on; returns the failed. A `step` that fails
    (a full disk) stops the run: the next images would fail the same way. background: steps run
    in a second thread, in order, while the next images are predicted (writing files)."""
    from tqdm import tqdm

    from .inference.engine import InOrder
    from .inference.pipeline import Request
    from .perception.image import boxes_for

    def request(path):
        return Request(path, boxes=boxes_for(boxes, path) if boxes is not None else None, intrinsics=args.intrinsics,
                       focal=args.focal, keypoints=keypoints(path), keypoints_source=str(args.keypoints))  # fmt: skip

    entries = []  # per image, in order: its request, or why it has none (not in the boxes or keypoints file)
    for path in images:
        try:
            entries.append(request(path))
        except CliffError as e:
            entries.append(e)
    results = predictor.predict_many(e for e in entries if not isinstance(e, CliffError))
    failed = []

    def report(result, line):
        if isinstance(result, CliffError):  # in its place among the lines of the images around it
            tqdm.write(f"cliffhmr: error: {result}", file=sys.stderr)
            return
        tqdm.write(line)
        if getattr(args, "profile", False):
            tqdm.write("  " + "  ".join(f"{k}: {v * 1000:.0f} ms" for k, v in result.timings.items()))

    with InOrder(depth=2 if background else 0) as steps:
        for path, entry in tqdm(list(zip(images, entries)), desc=desc, unit="img", disable=len(images) == 1):
            result = entry if isinstance(entry, CliffError) else next(results)[1]
            if isinstance(result, CliffError):
                failed.append(path)
            for done, line in steps.submit(result, _skip if isinstance(result, CliffError) else step, path, result):
                report(done, line)
        for done, line in steps.drain():
            report(done, line)
    return failed


def _skip(path, result) -> None:
    """The step of an image that failed: nothing to write."""


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


def _report_failures(failed: list, images: list) -> int:
    if not failed:
        return 0
    if len(images) > 1:
        print(f"cliffhmr: {len(failed)} of {len(images)} images failed", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
