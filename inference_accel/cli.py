"""``inference-accel``: bench, predict, export, doctor.

Every command's default model is the cached seg-nano export and its default
media the bundled sample video, so ``inference-accel bench`` needs no input.
CLI options override the environment flags (see :mod:`inference_accel.flags`).

>>> build_parser().parse_args(["bench", "--frames", "5"]).frames
5
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from inference_accel.errors import InferenceAccelError

logger = logging.getLogger("inference_accel")


# -- shared options ---------------------------------------------------------
def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="size name (seg-nano...), .onnx/.plan file or package dir; default: cached seg-nano")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="engine device (default: cuda if usable, else cpu)")
    parser.add_argument("--threshold", type=float, default=0.4, help="confidence threshold, strict > (default 0.4)")
    parser.add_argument("--max-detections", type=int, default=300)
    parser.add_argument("--resize-mode", choices=("stretch", "letterbox", "center-crop"), help="default: the model's")
    parser.add_argument("--preproc", choices=("fast", "reference"), help="override INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED")
    parser.add_argument("--postproc", choices=("fast", "reference"), help="override INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED")
    parser.add_argument("--cuda-graphs", choices=("on", "off"), help="override ENABLE_AUTO_CUDA_GRAPHS_FOR_TRT_BACKEND")
    parser.add_argument("--pipeline-depth", type=int, choices=(1, 2), help="override RFDETR_PIPELINE_DEPTH")


def _flags_from(args: argparse.Namespace):
    from inference_accel.flags import resolve_flags

    pick = lambda value, on: None if value is None else value == on  # noqa: E731
    return resolve_flags(
        preproc_fast=pick(args.preproc, "fast"),
        postproc_fast=pick(args.postproc, "fast"),
        cuda_graphs=pick(args.cuda_graphs, "on"),
        pipeline_depth=args.pipeline_depth,
    )


def _pipeline_from(args: argparse.Namespace, build_response: bool = True):
    from inference_accel.pipeline import SegmentationPipeline

    return SegmentationPipeline(
        args.model,
        device=args.device,
        flags=_flags_from(args),
        threshold=args.threshold,
        max_detections=args.max_detections,
        resize_mode=args.resize_mode,
        build_response=build_response,
    )


# -- bench ------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inference_accel.media import VideoFrames, resolve_source
    from inference_accel.pipeline import STAGES

    pipeline = _pipeline_from(args)
    video_path = resolve_source(args.video)
    limit = None if args.frames == 0 else args.frames + args.warmup
    video = VideoFrames(video_path, limit=limit)
    results = []
    start = time.perf_counter() if args.warmup == 0 else None
    progress = tqdm(total=len(video) or None, desc="bench", unit="frame", file=sys.stderr, disable=args.quiet)
    for result in pipeline.run(video):
        progress.update(1)
        if result.index < args.warmup:
            if result.index == args.warmup - 1:
                start = time.perf_counter()  # the clock starts once warm-up frames are out
            continue
        results.append(result)
    progress.close()
    if not results:
        raise InferenceAccelError(f"video {video_path} has no frames past the {args.warmup} warm-up frame(s)")
    elapsed = time.perf_counter() - start
    fps = len(results) / elapsed
    medians = {
        stage: statistics.median(r.times_ms.get(stage, 0.0) for r in results) for stage in STAGES
    }
    impls = {}
    for r in results:
        for stage, impl in r.implementations.items():
            impls.setdefault(stage, set()).add(impl)
    report = {
        "video": str(video_path),
        "frame_hw": list(video.size_hw),
        "model": pipeline.source.description or str(pipeline.source.path),
        "engine": pipeline.engine.name,
        "frames": len(results),
        "warmup_frames": args.warmup,
        "pipeline_depth": pipeline.flags.pipeline_depth,
        "implementations": {k: sorted(v) for k, v in impls.items()},
        "median_ms": medians,
        "end_to_end_fps": fps,
        "mean_detections": statistics.fmean(len(r.detections) for r in results),
    }
    print(f"video   {video_path.name}  {video.size_hw[1]}x{video.size_hw[0]}  frames {len(results)} (+{args.warmup} warm-up)")
    print(f"model   {report['model']}  engine {report['engine']}  depth {report['pipeline_depth']}")
    print(f"{'stage':<12} {'median ms':>10}  implementation")
    for stage in STAGES:
        print(f"{stage:<12} {medians[stage]:>10.2f}  {', '.join(report['implementations'].get(stage, ['-']))}")
    print(f"{'end-to-end':<12} {fps:>10.2f}  fps  (mean detections/frame {report['mean_detections']:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


# -- predict ----------------------------------------------------------------
def _annotate(frame, detections):
    import supervision as sv

    labels = None
    names = detections.data.get("class_name") if detections.data else None
    if names is not None:
        labels = [f"{n} {c:.2f}" for n, c in zip(names, detections.confidence)]
    out = frame.copy()
    if detections.mask is not None and len(detections):
        out = sv.MaskAnnotator(opacity=0.45).annotate(out, detections)
    out = sv.BoxAnnotator(thickness=2).annotate(out, detections)
    if labels:
        out = sv.LabelAnnotator(text_scale=0.5, text_thickness=1).annotate(out, detections, labels=labels)
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from inference_accel.errors import UnreadableMediaError
    from inference_accel.media import IMAGE_SUFFIXES, VideoFrames, read_image, resolve_source

    pipeline = _pipeline_from(args)
    source = resolve_source(args.source)
    output = Path(args.output) if args.output else Path(f"{source.stem}-annotated{source.suffix if source.suffix.lower() in IMAGE_SUFFIXES else '.mp4'}")
    records = []
    if source.suffix.lower() in IMAGE_SUFFIXES:
        frame = read_image(source)
        result = next(iter(pipeline.run([frame])))
        if not cv2.imwrite(str(output), _annotate(frame, result.detections)):
            raise UnreadableMediaError(f"cannot write {output}")
        records.append({"frame": 0, "detections": result.response})
    else:
        video = VideoFrames(source, limit=args.frames or None)
        writer = None
        frames = iter(video)
        held: list = []

        def remember(stream):
            for frame in stream:
                held.append(frame)
                yield frame

        for result in pipeline.run(remember(frames)):
            frame = held.pop(0)
            annotated = _annotate(frame, result.detections)
            if writer is None:
                h, w = annotated.shape[:2]
                writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), video.fps, (w, h))
                if not writer.isOpened():
                    raise UnreadableMediaError(f"cannot write video {output}")
            writer.write(annotated)
            records.append({"frame": result.index, "detections": result.response})
        if writer is not None:
            writer.release()
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
    json_path.write_text(json.dumps({"source": str(source), "frames": records}, indent=1))
    total = sum(len(r["detections"] or []) for r in records)
    print(f"{len(records)} frame(s), {total} detection(s): annotated -> {output}, detections -> {json_path}")
    return 0


# -- export -----------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from inference_accel.models.cache import cached_model_path
    from inference_accel.models.export import export_model

    onnx = Path(args.output) if args.output else cached_model_path(args.model)
    if not (args.tensorrt and onnx.is_file() and not args.checkpoint):
        onnx = export_model(args.model, args.checkpoint, args.output, demo_calibration=not args.no_demo_calibration)
        print(f"exported {args.model} -> {onnx}" + ("" if args.checkpoint else "  (RANDOM initialisation: no checkpoint given)"))
    if args.tensorrt:
        from inference_accel.engine.tensorrt_build import build_engine

        # The .plan lands beside the ONNX with the same stem, so it shares its sidecar (classes, size).
        plan = build_engine(onnx, fp16=args.fp16)
        print(f"built TensorRT engine {onnx} -> {plan} (for this GPU and TensorRT version only)")
    return 0


# -- doctor -----------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from inference_accel.doctor import doctor_report

    print(doctor_report(_flags_from(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    verbose_help = "show our debug lines, tracebacks, and the third-party warnings and logs hidden by default"
    parser = argparse.ArgumentParser(prog="inference-accel", description="Fast, exact RF-DETR segmentation.")
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # -v also after the command name (``inference-accel bench -v``); SUPPRESS keeps
    # the subcommand's default from resetting a -v given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", parents=[common], help="end-to-end fps and per-stage times on a video")
    _add_model_options(bench)
    bench.add_argument("--video", help="sample name (312p, 720p, 1080p, portrait) or a video path; default 1080p sample")
    bench.add_argument("--frames", type=int, default=30, help="timed frames (0 = whole video; default 30)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed warm-up frames (default 2)")
    bench.add_argument("--json", help="write the report to this JSON file")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=cmd_bench)

    predict = sub.add_parser("predict", parents=[common], help="annotate an image or video and write JSON detections")
    _add_model_options(predict)
    predict.add_argument("source", nargs="?", help="image or video path, or a sample name; default 1080p sample")
    predict.add_argument("--output", help="annotated output path")
    predict.add_argument("--json", help="detections JSON path (default: beside the output)")
    predict.add_argument("--frames", type=int, default=0, help="max video frames (0 = all)")
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", parents=[common], help="build an RF-DETR-Seg model with rfdetr and export ONNX")
    from inference_accel.models.specs import DEFAULT_MODEL, SEG_MODELS

    export.add_argument("--model", choices=sorted(SEG_MODELS), default=DEFAULT_MODEL)
    export.add_argument("--checkpoint", help="rfdetr checkpoint (.pth); without it: random initialisation")
    export.add_argument("--output", help="ONNX path (default: the user cache)")
    export.add_argument("--no-demo-calibration", action="store_true", help="keep raw random weights")
    export.add_argument(
        "--tensorrt", action="store_true",
        help="also build a TensorRT engine (.plan beside the ONNX; GPU + gpu extra); reuses a cached ONNX",
    )
    export.add_argument("--fp16", action="store_true", help="with --tensorrt: FP16 builder flag (TensorRT 10)")
    export.set_defaults(func=cmd_export)

    doctor = sub.add_parser("doctor", parents=[common], help="what is installed and which fast paths are active, and why")
    _add_model_options(doctor)
    doctor.set_defaults(func=cmd_doctor)
    return parser


class _OwnLinesFormatter(logging.Formatter):
    """Our own log lines: ``inference-accel: ...``, with ``warning:`` / ``error:`` / ``debug:`` where it applies."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno == logging.INFO:
            return f"inference-accel: {message}"
        return f"inference-accel: {record.levelname.lower()}: {message}"


def configure_output(verbose: bool = False) -> None:
    """Logging and third-party output of a CLI run.

    Our ``inference_accel`` logger prints its INFO lines (what a command is
    doing: exporting a model, rendering a sample video) and warnings to
    stderr; ``-v`` adds our DEBUG lines, lets other libraries' INFO records
    through and turns off the silencing of third-party warnings around the
    model build/export (:func:`~inference_accel.models.export.quiet_third_party`).
    """
    from inference_accel.models.export import show_third_party_output

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OwnLinesFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    show_third_party_output(verbose)
    if verbose:
        from inference_accel.workers import CPU_BUDGET

        logger.debug("CPUs usable: %s", CPU_BUDGET.describe())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args.verbose)
    try:
        return args.func(args)
    except InferenceAccelError as exc:
        if args.verbose:
            raise
        print(f"inference-accel {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
