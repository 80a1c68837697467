"""`cliffhmr` command line: predict, train, eval.

Expected mistakes (a `CliffError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CliffError


def _parse_intrinsics(text: str):
    from .camera import Intrinsics

    try:
        fx, fy, cx, cy = (float(x) for x in text.split(","))
    except ValueError:
        raise CliffError(f"--intrinsics takes fx,fy,cx,cy in pixels, got {text!r}") from None
    if fx <= 0 or fy <= 0:
        raise CliffError(f"--intrinsics: focal lengths must be positive, got {text!r}")
    return Intrinsics(fx, fy, cx, cy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliffhmr", description="3D human meshes placed in the full camera frame (CLIFF).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="people in photos -> body meshes, parameters, overlays")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--checkpoint", help="a CLIFF checkpoint (official .pt or ours); needs --smpl. Default: keypoints + fitting")
    p.add_argument("--backbone", choices=["res50", "hr48"], help="check the checkpoint holds this backbone (default: detect)")
    p.add_argument("--smpl", help="SMPL model file (.pkl/.npz) or folder; default body model: Anny")
    p.add_argument("--boxes", help='JSON {"image.jpg": [[x1, y1, x2, y2, score], ...]}; default: detect people')
    p.add_argument("--keypoints", help="COCO-format or OpenPose JSON with 2D keypoints (single image input)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal", type=float, help="focal length in pixels (default: EXIF, else the image diagonal)")
    cam.add_argument("--intrinsics", type=_parse_intrinsics, help="fx,fy,cx,cy in pixels")
    p.add_argument("--fit-iterations", type=int, default=120, help="optimisation steps of the full-frame fit")
    p.add_argument("--no-render", action="store_true", help="skip the overlay and side-view images")
    p.add_argument("--no-mesh", action="store_true", help="skip the OBJ/GLB files")
    p.add_argument("--profile", action="store_true", help="print the time spent in each stage")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    sub.add_parser("train", help="train a CLIFF model (see docs/training.md)", add_help=False)
    sub.add_parser("eval", help="evaluate a checkpoint on 3DPW / H36M / AGORA / synthetic data", add_help=False)
    sub.add_parser("convert", help="official dataset downloads (3DPW) -> npz annotation files", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] == "train":
            from .train import main as train_main

            return train_main(argv[1:])
        if argv and argv[0] == "eval":
            from .evaluate import main as eval_main

            return eval_main(argv[1:])
        if argv and argv[0] == "convert":
            from .convert import main as convert_main

            return convert_main(argv[1:])
        args = build_parser().parse_args(argv)
        return predict_command(args)
    except CliffError as e:
        print(f"cliffhmr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cliffhmr: interrupted", file=sys.stderr)
        return 130


def predict_command(args) -> int:
    from tqdm import tqdm

    from .image import boxes_for, list_images, load_boxes_file
    from .outputs import write_outputs
    from .pipeline import Predictor, PredictorConfig

    images = list_images(args.input)
    boxes = load_boxes_file(args.boxes) if args.boxes else None
    keypoints = None
    if args.keypoints:
        if len(images) != 1:
            raise CliffError("--keypoints goes with a single image, not a folder")
        from .keypoints import load_keypoints_file

        keypoints = load_keypoints_file(args.keypoints, image_name=images[0].name)
    if args.fit_iterations < 0:
        raise CliffError("--fit-iterations must be >= 0")

    predictor = Predictor(
        PredictorConfig(
            checkpoint=args.checkpoint,
            backbone=args.backbone,
            body_model=args.smpl,
            fit_iterations=args.fit_iterations,
            device=args.device,
        )
    )
    failed = []
    bar = tqdm(images, desc="predict", unit="img", disable=len(images) == 1)
    for path in bar:
        try:
            image_boxes = boxes_for(boxes, path) if boxes is not None else None
            result = predictor(
                path, boxes=image_boxes, intrinsics=args.intrinsics, focal=args.focal,
                keypoints=keypoints, keypoints_source=str(args.keypoints),
            )  # fmt: skip
            write_outputs(result, args.out, path.stem, meshes=not args.no_mesh, images=not args.no_render)
        except CliffError as e:
            failed.append(path)
            tqdm.write(f"cliffhmr: error: {e}", file=sys.stderr)
            continue
        n = len(result.people)
        msg = f"{path.name}: {n} {'person' if n == 1 else 'people'} ({result.method}, {result.body_model}) -> {args.out}"
        if n == 0:
            msg = f"{path.name}: no person found; wrote empty results -> {args.out}"
        tqdm.write(msg)
        if args.profile:
            tqdm.write("  " + "  ".join(f"{k}: {v * 1000:.0f} ms" for k, v in result.timings.items()))
    if failed:
        if len(images) > 1:
            print(f"cliffhmr: {len(failed)} of {len(images)} images failed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
