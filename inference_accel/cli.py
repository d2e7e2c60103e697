"""``inference-accel``: bench, predict, export, doctor, parity.

Every command's default model is the cached seg-nano export and its default
media the bundled sample video, so ``inference-accel bench`` needs no input.
CLI options override the environment flags (see :mod:`inference_accel.flags`).

**Errors.** Every failure is one line on stderr that names the input and
what is wrong, with a non-zero exit status and no traceback (``-v`` shows
it): a bad option value (exit 2, checked while parsing), a bad model, media
or output path (exit 2, checked before the model opens or the run starts),
an unexpected failure (exit 1). Ctrl-C stops cleanly: the note
``interrupted`` and the results so far (bench: the table of the timed
frames; predict: the frames done, written to the JSON and the video), then
exit 130.

>>> build_parser().parse_args(["bench", "--frames", "5"]).frames
5
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from inference_accel.arguments import check_positive_int, check_threshold
from inference_accel.errors import InferenceAccelError, InvalidArgumentError

logger = logging.getLogger("inference_accel")

EXIT_ERROR = 2  # a bad input: option, model, media or output path
EXIT_UNEXPECTED = 1  # anything else (the traceback is behind -v)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_DIFFERENT = 3  # parity: the two sides differ beyond the tolerance


class CLIError(InferenceAccelError):
    """A bad command line (an output path, a flag combination): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``inference-accel bench: error: argument --x: ...``, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- option value types: checked while parsing, so nothing runs on a bad value --
def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None


def _threshold(text: str) -> float:
    try:
        return check_threshold(_number(text, float))
    except InvalidArgumentError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}") from None


def _positive_int(text: str) -> int:
    try:
        return check_positive_int("value", _number(text, int))
    except InvalidArgumentError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}") from None


def _count(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


# -- shared options ---------------------------------------------------------
def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="size name (seg-nano...), .onnx/.plan file or package dir; default: cached seg-nano")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="engine device (default: cuda if usable, else cpu)")
    parser.add_argument("--threshold", type=_threshold, default=0.4, help="confidence threshold in [0, 1], strict > (default 0.4)")
    parser.add_argument("--max-detections", type=_positive_int, default=300, help="at most this many detections per frame (>= 1; default 300)")
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


def _pipeline_from(args: argparse.Namespace, build_response: bool = True, response_format: str = "dict"):
    from inference_accel.models.source import warn_dropped_classes
    from inference_accel.pipeline import SegmentationPipeline

    pipeline = SegmentationPipeline(
        args.model,
        device=args.device,
        flags=_flags_from(args),
        threshold=args.threshold,
        max_detections=args.max_detections,
        resize_mode=args.resize_mode,
        build_response=build_response,
        mask_format=getattr(args, "mask_format", "polygon"),
        response_format=response_format,
        batch_size=getattr(args, "batch", 1),
    )
    warn_dropped_classes(pipeline.source, pipeline.engine.spec.num_classes)
    return pipeline


# -- output paths: checked before the run, so a run's results are never lost to a bad path --
def _check_writable(path: Path, option: str) -> Path:
    """``path`` if a file can be created there: its folder exists and is writable, and it is no folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CLIError(f"{option} {path}: is a directory, not a file")
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {path}: the directory {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise CLIError(f"{option} {path}: the file exists and is not writable")
    return path


# -- bench ------------------------------------------------------------------
def _bench_report(args, video_path, video, pipeline, results, elapsed, interrupted):
    from inference_accel.pipeline import STAGES

    fps = len(results) / elapsed if elapsed > 0 else 0.0
    medians = {stage: statistics.median(r.times_ms.get(stage, 0.0) for r in results) for stage in STAGES}
    impls: dict[str, set] = {}
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
        "batch_size": pipeline.batch_size,
        "implementations": {k: sorted(v) for k, v in impls.items()},
        "median_ms": medians,
        "end_to_end_fps": fps,
        "mean_detections": statistics.fmean(len(r.detections) for r in results),
    }
    if interrupted:
        report["interrupted"] = True
    print(f"video   {video_path.name}  {video.size_hw[1]}x{video.size_hw[0]}  frames {len(results)} (+{args.warmup} warm-up)")
    print(f"model   {report['model']}  engine {report['engine']}  depth {report['pipeline_depth']}  batch {report['batch_size']}")
    print(f"{'stage':<12} {'median ms':>10}  implementation")
    for stage in STAGES:
        print(f"{stage:<12} {medians[stage]:>10.2f}  {', '.join(report['implementations'].get(stage, ['-']))}")
    print(f"{'end-to-end':<12} {fps:>10.2f}  fps  (mean detections/frame {report['mean_detections']:.1f})")
    return report


_MATRIX_ONLY = ("videos", "runs", "report", "inference_models_python", "no_synthetic")


def _bench_matrix(args: argparse.Namespace) -> int:
    """``bench --matrix``: every flag combination (see :mod:`inference_accel.benchsuite`)."""
    from inference_accel import media
    from inference_accel.benchsuite.suite import REPORT_JSON, SuiteOptions, run_suite, write_outputs
    from inference_accel.engine.factory import default_device

    if args.video:
        raise CLIError("--video is the single-configuration bench's; with --matrix give --videos A,B,...")
    if args.frames == 0:
        raise CLIError("--matrix needs --frames >= 1 (every cell times the same number of frames)")
    videos = [v.strip() for v in (args.videos or ",".join(media.SAMPLE_SIZES)).split(",") if v.strip()]
    if not videos:
        raise CLIError(f"--videos {args.videos!r}: no video named")
    for video in videos:
        if video not in media.SAMPLE_SIZES and not Path(video).is_file():
            raise CLIError(f"--videos: {video!r} is neither a sample ({', '.join(media.SAMPLE_SIZES)}) nor a file")
    if args.report:
        report = Path(args.report)
        if not report.is_dir():
            raise CLIError(f"--report {report}: not a directory (give the docs folder, e.g. docs/)")
        _check_writable(report / "BENCHMARKS.md", "--report")
    json_path = args.json or (str(Path(args.report) / REPORT_JSON) if args.report else None)
    if json_path and (not args.report or args.json):
        _check_writable(Path(json_path), "--json")
    pick = {"preproc": args.preproc, "postproc": args.postproc, "cuda_graphs": args.cuda_graphs, "depth": args.pipeline_depth}
    pinned = {axis: (value if axis == "depth" else value in ("fast", "on")) for axis, value in pick.items() if value is not None}
    options = SuiteOptions(
        videos=videos, frames=args.frames, runs=args.runs or 3, warmup=args.warmup, model=args.model,
        device=args.device or default_device(), pinned=pinned,
        pipeline_options={"threshold": args.threshold, "max_detections": args.max_detections, "resize_mode": args.resize_mode,
                          "batch_size": args.batch},
        synthetic=not args.no_synthetic, inference_models_python=args.inference_models_python,
        report_dir=args.report, json_path=args.json,
    )
    document = run_suite(options, progress=not args.quiet)
    from inference_accel.benchsuite.report import render_section

    print(render_section(document))
    for what, path in write_outputs(document, options).items():
        print(f"wrote {what}: {path}")
    if document.get("interrupted"):
        print("inference-accel bench: interrupted (Ctrl-C): the cells done so far are in the JSON", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inference_accel import media

    if args.matrix:
        return _bench_matrix(args)
    given = [f"--{name.replace('_', '-')}" for name in _MATRIX_ONLY if getattr(args, name) not in (None, False)]
    if given:
        raise CLIError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --matrix only")
    json_path = _check_writable(Path(args.json), "--json") if args.json else None
    # The model first: a bad --model is reported before a sample video is rendered for nothing.
    pipeline = _pipeline_from(args)
    video_path = media.resolve_source(args.video)
    limit = None if args.frames == 0 else args.frames + args.warmup
    video = media.VideoFrames(video_path, limit=limit)
    results = []
    start = time.perf_counter() if args.warmup == 0 else None
    progress = tqdm(total=len(video) or None, desc="bench", unit="frame", file=sys.stderr, disable=args.quiet)
    stream = pipeline.run(video)
    interrupted = False
    try:
        for result in stream:
            progress.update(1)
            if result.index < args.warmup:
                if result.index == args.warmup - 1:
                    start = time.perf_counter()  # the clock starts once warm-up frames are out
                continue
            results.append(result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.perf_counter() - start if start is not None else 0.0
        stream.close()
        progress.close()
    if interrupted:
        done = f"{len(results)} timed frame(s) done" if results else f"no timed frame yet (still in the {args.warmup} warm-up frame(s))"
        print(f"inference-accel bench: interrupted (Ctrl-C): {done}" + ("; the results so far:" if results else ""), file=sys.stderr)
        if not results:
            return EXIT_INTERRUPTED
    elif not results:
        raise InferenceAccelError(f"video {video_path} has no frames past the {args.warmup} warm-up frame(s)")
    report = _bench_report(args, video_path, video, pipeline, results, elapsed, interrupted)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2))
    return EXIT_INTERRUPTED if interrupted else 0


# -- predict ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _annotators():
    """The mask, box and label annotators, built once (their settings are constant)."""
    import supervision as sv

    return (
        sv.MaskAnnotator(opacity=0.45),
        sv.BoxAnnotator(thickness=2),
        sv.LabelAnnotator(text_scale=0.5, text_thickness=1),
    )


def _annotate(frame, detections):
    mask_annotator, box_annotator, label_annotator = _annotators()
    labels = None
    names = detections.data.get("class_name") if detections.data else None
    if names is not None:
        labels = [f"{n} {c:.2f}" for n, c in zip(names, detections.confidence)]
    out = frame.copy()
    if detections.mask is not None and len(detections):
        out = mask_annotator.annotate(out, detections)
    out = box_annotator.annotate(out, detections)
    if labels:
        out = label_annotator.annotate(out, detections, labels=labels)
    return out


def _predict_paths(args: argparse.Namespace) -> tuple[bool, Path, Path]:
    """``(is_image, output, json)`` of a predict run, checked before anything is read or run."""
    from inference_accel import media

    if args.source is None or args.source in media.SAMPLE_SIZES:
        source_name, is_image = media.sample_video_path(args.source or media.DEFAULT_SAMPLE).name, False
    else:
        source_name = Path(args.source).name
        is_image = Path(args.source).suffix.lower() in media.IMAGE_SUFFIXES
    stem = Path(source_name).stem
    if args.output:
        output = Path(args.output)
    else:
        suffix = Path(source_name).suffix if is_image else ".mp4"
        output = Path(f"{stem}-annotated{suffix}")
    suffix = output.suffix.lower()
    if is_image:
        import cv2

        if suffix not in media.IMAGE_SUFFIXES or not cv2.haveImageWriter(f"x{suffix}"):
            known = sorted(s for s in media.IMAGE_SUFFIXES if cv2.haveImageWriter(f"x{s}"))
            raise CLIError(
                f"--output {output}: unknown image extension {output.suffix or '(none)'!r}; "
                f"use one of {', '.join(known)}"
            )
    elif suffix not in media.VIDEO_OUTPUT_SUFFIXES:
        raise CLIError(
            f"--output {output}: unknown video extension {output.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(media.VIDEO_OUTPUT_SUFFIXES))}"
        )
    _check_writable(output, "--output")
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
    _check_writable(json_path, "--json" if args.json else "--output (its .json beside it)")
    if json_path.resolve() == output.resolve():
        raise CLIError(f"--json {json_path}: the same file as --output")
    if args.source is not None and args.source not in media.SAMPLE_SIZES:
        for option, path in (("--output", output), ("--json", json_path)):
            if path.resolve() == Path(args.source).resolve():
                raise CLIError(f"{option} {path}: the same file as the input; it would be overwritten")
    return is_image, output, json_path


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from inference_accel import media
    from inference_accel.errors import UnreadableMediaError

    is_image, output, json_path = _predict_paths(args)
    source = media.resolve_source(args.source)
    records: list[bytes] = []  # each frame's response as compact JSON (response_format="json")
    detections_total = 0
    interrupted = False
    if is_image:
        frame = media.read_image(source, accept_truncated=args.accept_truncated)
        pipeline = _pipeline_from(args, response_format="json")
        try:
            result = next(iter(pipeline.run([frame])))
        except KeyboardInterrupt:
            print("inference-accel predict: interrupted (Ctrl-C): nothing written", file=sys.stderr)
            return EXIT_INTERRUPTED
        if not cv2.imwrite(str(output), _annotate(frame, result.detections)):
            raise UnreadableMediaError(f"cannot write {output}")
        records.append(result.response)
        detections_total += len(result.detections)
    else:
        video = media.VideoFrames(source, limit=args.frames or None)
        pipeline = _pipeline_from(args, response_format="json")
        writer = None
        held: list = []

        def remember(stream):
            for frame in stream:
                held.append(frame)
                yield frame

        stream = pipeline.run(remember(iter(video)))
        try:
            for result in stream:
                frame = held.pop(0)
                annotated = _annotate(frame, result.detections)
                if writer is None:
                    h, w = annotated.shape[:2]
                    writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), video.fps, (w, h))
                    if not writer.isOpened():
                        raise UnreadableMediaError(f"cannot write video {output}")
                writer.write(annotated)
                records.append(result.response)
                detections_total += len(result.detections)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stream.close()
            if writer is not None:
                writer.release()
    # {"source": ..., "frames": [...], "interrupted": true?}, compact; each frame is Roboflow's
    # response (inference_accel.response) with its frame_id, already serialised by the pipeline.
    head = b'{"source":' + json.dumps(str(source)).encode() + b',"frames":['
    tail = b',"interrupted":true}' if interrupted else b"}"
    json_path.write_bytes(head + b",".join(records) + b"]" + tail)
    total = detections_total
    summary = f"{len(records)} frame(s), {total} detection(s): annotated -> {output}, detections -> {json_path}"
    if interrupted:
        print(f"inference-accel predict: interrupted (Ctrl-C) after {len(records)} frame(s); kept: {summary}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary)
    return 0


# -- export -----------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from inference_accel.models.cache import cached_model_path
    from inference_accel.models.export import export_model

    if args.fp16 and not args.tensorrt:
        raise CLIError("--fp16 applies to --tensorrt only (it is a TensorRT builder flag)")
    if args.max_batch is not None and not (args.tensorrt and args.dynamic_batch):
        raise CLIError("--max-batch applies to --tensorrt --dynamic-batch only (the engine's batch range)")
    if args.tensorrt and args.dynamic_batch and args.max_batch is None:
        raise CLIError("--tensorrt --dynamic-batch needs --max-batch N (the largest batch the engine takes)")
    if args.output:
        if Path(args.output).suffix.lower() != ".onnx":
            raise CLIError(
                f"--output {args.output}: unknown extension {Path(args.output).suffix or '(none)'!r}; "
                "the export is an .onnx file (its .json sidecar goes beside it)"
            )
        parent = Path(args.output).parent
        if parent.exists() and not parent.is_dir():
            raise CLIError(f"--output {args.output}: {parent} is not a directory")
    onnx = Path(args.output) if args.output else cached_model_path(args.model, dynamic_batch=args.dynamic_batch)
    if not (args.tensorrt and onnx.is_file() and not args.checkpoint):
        onnx = export_model(
            args.model, args.checkpoint, onnx, demo_calibration=not args.no_demo_calibration,
            dynamic_batch=args.dynamic_batch,
        )
        print(f"exported {args.model} -> {onnx}" + ("" if args.checkpoint else "  (RANDOM initialisation: no checkpoint given)"))
    if args.tensorrt:
        from inference_accel.engine.tensorrt_build import build_engine

        # The .plan lands beside the ONNX with the same stem, so it shares its sidecar (classes, size).
        plan = build_engine(onnx, fp16=args.fp16, max_batch=args.max_batch)
        print(f"built TensorRT engine {onnx} -> {plan} (for this GPU and TensorRT version only)")
    return 0


# -- doctor -----------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from inference_accel.doctor import doctor_report

    print(doctor_report(_flags_from(args)))
    return 0


# -- parity -----------------------------------------------------------------
def _tolerance(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _max_abs(tensors) -> float | None:
    import numpy as np

    diffs = [float(np.max(np.abs(x - y))) if x.shape == y.shape else float("inf") for x, y in zip(*tensors) if x.size]
    return max(diffs) if diffs else None


def _preprocess_note(sides, tensors, both_expose) -> str:
    if both_expose:
        value = _max_abs(tensors)
        return "no input tensors" if value is None else f"{value:.6g} (the inference-models pre_process tensors)"
    return ("skipped: only in-process stock-im / accel-im sides expose their preprocessed input tensor; "
            "compare preprocessing with preproc=fast vs preproc=reference sides instead")


def cmd_parity(args: argparse.Namespace) -> int:
    """Compare side A and side B on the same frames (see :mod:`inference_accel.ab`)."""
    from inference_accel.ab.compare import Tolerance, compare_frame, summarize
    from inference_accel.ab.report import write_outputs
    from inference_accel.ab.sides import RunSettings, collect, exposes_preprocessing, load_frames, parse_side, preflight

    if len(args.sides) > 2:
        raise CLIError(f"parity takes one or two sides, got {len(args.sides)}: {' '.join(args.sides)}")
    sides = [parse_side(s, repo=args.repo) for s in args.sides]
    if args.repo and not any(side.kind == "git" for side in sides):
        raise CLIError(f"--repo {args.repo}: only git:REF sides use it, and none is given")
    if len(sides) == 1 and not args.record:
        raise CLIError("parity with one side only records it: give a second side, or --record DIR")
    out = Path(args.out) if args.out else None
    for option, path in (("--out", out), ("--record", Path(args.record) if args.record else None)):
        if path is not None and path.exists() and not path.is_dir():
            raise CLIError(f"{option} {path}: exists and is not a directory")
    for side in sides:  # git sides: resolve the ref and build (or reuse) its venv, before any side runs
        preflight(side)
    frames, source = load_frames(args.input, args.frames or None)
    settings = RunSettings(model=args.model, device=args.device, threshold=args.threshold,
                           max_detections=args.max_detections, resize_mode=args.resize_mode,
                           source=args.input, frames=args.frames or None)
    records_dirs = [None] * len(sides)
    if args.record:
        root = Path(args.record)
        records_dirs = [root] if len(sides) == 1 else [root / "a", root / "b"]
    both_expose = len(sides) == 2 and all(exposes_preprocessing(side) for side in sides)
    tensors = [[] if both_expose else None for _ in sides]
    results = [collect(side, frames, settings, record=rec, progress=not args.quiet, tensors=t)
               for side, rec, t in zip(sides, records_dirs, tensors)]
    if len(sides) == 1:
        print(f"recorded {sides[0].label}: {len(results[0])} frame(s) -> {records_dirs[0]}")
        return 0
    tol = Tolerance(score=args.score_tol, box=args.box_tol, iou_threshold=args.iou_threshold)
    dets_a, dets_b = results
    if len(dets_a) != len(dets_b):
        raise InferenceAccelError(f"the sides gave {len(dets_a)} and {len(dets_b)} frame(s) for {len(frames)} input frame(s)")
    records = [compare_frame(a, b, i, tol) for i, (a, b) in enumerate(zip(dets_a, dets_b))]
    summary = summarize(records, tol)
    summary.update(side_a=sides[0].label, side_b=sides[1].label, side_a_commit=sides[0].commit,
                   side_b_commit=sides[1].commit, source=source, model=args.model or "cached seg-nano",
                   preprocess_max_abs_diff=_max_abs(tensors) if both_expose else None,
                   preprocess_note=_preprocess_note(sides, tensors, both_expose))
    if (summary["preprocess_max_abs_diff"] or 0) > 0:  # inputs must be bit for bit equal
        summary["differs"] = True
        print(f"preprocessing differs: input tensors max |diff| {summary['preprocess_max_abs_diff']:.6g}")
    s = summary
    print(f"parity {s['side_a']} vs {s['side_b']}: {s['frames']} frame(s), detections {s['detections_a']} / {s['detections_b']}, "
          f"matched {s['matched']}, class disagreements {s['class_disagreements']}, only A {s['only_a']}, only B {s['only_b']}")
    if s["masks_compared"]:
        print(f"masks pixel-identical {s['masks_identical']}/{s['masks_compared']}, differing pixels {s['differing_pixels']}, "
              f"mean/worst mask IoU {s['mean_mask_iou']:.6g}/{s['worst_mask_iou']:.6g}")
    if s["matched"]:
        print(f"mean box IoU {s['mean_box_iou']:.6g}, max |score diff| {s['max_score_diff']:.3g}, max |box diff| {s['max_box_diff']:.3g} px")
    for r in records:
        for problem in r["problems"][:5]:
            print(f"frame {r['frame']}: {problem}")
    if out is not None:
        written = write_outputs(out, records, summary, frames, dets_a, dets_b)
        print(f"report -> {written['report']}, summary -> {written['summary']}, per frame -> {written['frames']}"
              + (f", {len(written['images'])} image(s)" if written["images"] else ""))
    print("DIFFERENT" if s["differs"] else "IDENTICAL")
    return EXIT_DIFFERENT if s["differs"] else 0


def build_parser() -> argparse.ArgumentParser:
    verbose_help = "show our debug lines, tracebacks, and the third-party warnings and logs hidden by default"
    parser = _Parser(prog="inference-accel", description="Fast, exact RF-DETR segmentation.")
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # -v also after the command name (``inference-accel bench -v``); SUPPRESS keeps
    # the subcommand's default from resetting a -v given before the command.
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", parents=[common], help="end-to-end fps and per-stage times on a video")
    _add_model_options(bench)
    bench.add_argument("--video", help="sample name (312p, 720p, 1080p, 4K, portrait) or a video path; default 1080p sample")
    bench.add_argument("--frames", type=_count, default=30, help="timed frames (0 = whole video; default 30)")
    bench.add_argument("--warmup", type=_count, default=2, help="untimed warm-up frames (>= 0; default 2)")
    bench.add_argument("--json", help="write the report to this JSON file")
    bench.add_argument("--batch", type=_positive_int, default=1,
                       help="frames per engine call (the model must take that batch: a dynamic-batch export, "
                            "`inference-accel export --dynamic-batch`, then --model that file; default 1)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    matrix = bench.add_argument_group("flag matrix (--matrix)")
    matrix.add_argument("--matrix", action="store_true", help="every combination of the four flags (those a flag "
                        "option above fixes stay fixed); n/a cells say why; writes one JSON file")
    matrix.add_argument("--videos", help="comma-separated sample names or video paths (default: every sample)")
    matrix.add_argument("--runs", type=_positive_int, help="runs per cell (>= 1; default 3)")
    matrix.add_argument("--report", metavar="DOCS_DIR", help="also rewrite DOCS_DIR/BENCHMARKS.md's generated section "
                        "and the charts under DOCS_DIR/bench/ (JSON: DOCS_DIR/bench/matrix.json unless --json)")
    matrix.add_argument("--inference-models-python", metavar="PYTHON", help="python of a venv with inference-models "
                        "(e.g. .venv-integration/bin/python): adds the side by side with stock and accelerated inference-models")
    matrix.add_argument("--no-synthetic", action="store_true", help="leave out the synthetic-engine-output scenario")
    bench.set_defaults(func=cmd_bench)

    predict = sub.add_parser("predict", parents=[common], help="annotate an image or video and write JSON detections")
    _add_model_options(predict)
    predict.add_argument("source", nargs="?", help="image or video path, or a sample name; default 1080p sample")
    predict.add_argument("--output", help="annotated output path (an image extension for an image, .mp4/.mov/.avi/.mkv for a video)")
    predict.add_argument("--json", help="detections JSON path (default: beside the output)")
    predict.add_argument("--frames", type=_count, default=0, help="max video frames (0 = all)")
    predict.add_argument(
        "--mask-format", choices=("polygon", "rle"), default="polygon",
        help="masks in the JSON: Roboflow's polygon points (default) or COCO RLE, lossless",
    )
    predict.add_argument(
        "--accept-truncated", action="store_true",
        help="read a truncated or corrupt image as far as it decodes (with a warning) instead of refusing it",
    )
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
    export.add_argument(
        "--dynamic-batch", action="store_true",
        help="a symbolic batch dimension (for `bench --batch N`, SegmentationPipeline(batch_size=N)); "
             "default path: the cache's rfdetr-<size>-dynbatch.onnx, beside the fixed-batch export",
    )
    export.add_argument("--max-batch", type=_positive_int, help="with --tensorrt --dynamic-batch: the engine's largest batch")
    export.set_defaults(func=cmd_export)

    doctor = sub.add_parser("doctor", parents=[common], help="what is installed and which fast paths are active, and why")
    _add_model_options(doctor)
    doctor.set_defaults(func=cmd_doctor)

    parity = sub.add_parser(
        "parity", parents=[common],
        help="compare two sides (ours[:flags], stock-im, accel-im, recorded:DIR, venv:PATH[@SIDE], git:REF[@SIDE])",
        description="Compare side A and side B on the same frames; exit 0 when identical within the tolerance, "
        f"{EXIT_DIFFERENT} when they differ. Sides: ours or ours:preproc=fast|reference,postproc=fast|reference,"
        "cuda-graphs=on|off,depth=1|2,device=cpu|cuda; stock-im; accel-im; recorded:DIR; venv:PATH[@SIDE]; "
        "git:REF[@SIDE] (this package at commit REF, installed once into a venv cached per commit that reuses "
        "this environment's dependencies).",
    )
    parity.add_argument("sides", nargs="+", metavar="SIDE", help="side A and side B (one side with --record only records it)")
    parity.add_argument("--model", help="size name, .onnx/.plan file or package dir (inference-models sides: .onnx or package)")
    parity.add_argument("--device", choices=("cpu", "cuda"), help="engine device (default: cuda if usable, else cpu)")
    parity.add_argument("--threshold", type=_threshold, default=0.4, help="confidence threshold in [0, 1] (default 0.4)")
    parity.add_argument("--max-detections", type=_positive_int, default=300, help="at most this many detections per frame")
    parity.add_argument("--resize-mode", choices=("stretch", "letterbox", "center-crop"), help="default: the model's")
    parity.add_argument("--input", help="folder of images, an image, a video or a sample name; default: the 1080p sample video")
    parity.add_argument("--frames", type=_count, default=10, help="at most this many frames (0 = all; default 10)")
    parity.add_argument("--out", help="write frames.jsonl, summary.json, report.md and worst-frame PNGs here")
    parity.add_argument("--record", help="also record each side's detections here (one side: DIR; two: DIR/a, DIR/b)")
    parity.add_argument("--score-tol", type=_tolerance, default=0.0, help="max |score difference| of a matched pair (default 0)")
    parity.add_argument("--box-tol", type=_tolerance, default=0.0, help="max |box coordinate difference| in px (default 0)")
    parity.add_argument("--iou-threshold", type=_threshold, default=0.5, help="a match needs mask IoU above this (default 0.5)")
    parity.add_argument("--repo", help="git repository of git:REF sides (default: the checkout this package is imported from)")
    parity.add_argument("--quiet", action="store_true", help="no progress bar")
    parity.set_defaults(func=cmd_parity)
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr (see the module docstring), ``-v`` re-raises."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args.verbose)
    prefix = f"inference-accel {args.command}"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.verbose:
            raise
        print(f"{prefix}: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InferenceAccelError as exc:
        if args.verbose:
            raise
        print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a CLI prints one line, never a traceback (-v shows it)
        if args.verbose:
            raise
        print(f"{prefix}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (run with -v for the traceback)", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
