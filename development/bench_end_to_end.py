"""Benchmark: the whole pipeline, reference paths vs fast paths, on the sample videos.

Two pipelines over the same model and the same decoded frames:

- **reference**: PIL preprocessing and dense postprocessing
  (``INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED=false`` and
  ``..._POSTPROC_ENABLED=false`` semantics);
- **fast**: the best available fast path of each stage (on this machine the
  CPU paths; on a CUDA machine the same script times Triton + TensorRT).

They run interleaved frame by frame (reference, then fast, on frame *i*), so
load on a shared machine hits both alike. Per stage: the median over frames
of the stage time; *frame ms* is the median of the per-frame sum of the
stages (decode excluded: the frames are decoded once, up front); *fps* is
1000 / frame ms. Every frame's detections are compared (boxes, scores,
classes, every mask pixel): the fast path is only worth its ratio if
``identical`` is all frames.

    python development/bench_end_to_end.py [--videos 312p,1080p] [--frames 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace

from inference_accel.flags import read_flags
from inference_accel.media import VideoFrames, resolve_source
from inference_accel.parity import compare_detections
from inference_accel.pipeline import STAGES, SegmentationPipeline

TIMED_STAGES = tuple(s for s in STAGES if s != "decode")


def bench_video(pipelines: dict[str, SegmentationPipeline], video: str, frames: int, warmup: int) -> dict:
    decoded = list(VideoFrames(resolve_source(video), limit=frames + warmup))
    if len(decoded) <= warmup:
        raise SystemExit(f"video {video} has only {len(decoded)} frames")
    times = {name: {stage: [] for stage in (*TIMED_STAGES, "frame")} for name in pipelines}
    implementations = {name: {} for name in pipelines}
    identical = 0
    detections = []
    for index, frame in enumerate(decoded):
        results = {}
        for name, pipeline in pipelines.items():
            result = next(iter(pipeline.run([frame])))
            results[name] = result
            if index < warmup:
                continue
            for stage in TIMED_STAGES:
                times[name][stage].append(result.times_ms.get(stage, 0.0))
            times[name]["frame"].append(sum(result.times_ms.get(s, 0.0) for s in TIMED_STAGES))
            for stage, impl in result.implementations.items():
                implementations[name].setdefault(stage, set()).add(impl)
        if index >= warmup:
            identical += not compare_detections(results["fast"].detections, results["reference"].detections)
            detections.append(len(results["reference"].detections))
    h, w = decoded[0].shape[:2]
    row = {"video": video, "frame_hw": [h, w], "frames": len(decoded) - warmup, "identical_frames": identical,
           "mean_detections": statistics.fmean(detections), "paths": {}}
    for name in pipelines:
        medians = {stage: statistics.median(values) for stage, values in times[name].items()}
        row["paths"][name] = {
            "median_ms": medians,
            "fps": 1000.0 / medians["frame"],
            "implementations": {k: sorted(v) for k, v in implementations[name].items()},
        }
    return row


def report(rows: list[dict]) -> str:
    head = f"{'video':<10} {'path':<10} " + " ".join(f"{s:>12}" for s in TIMED_STAGES) + f" {'frame ms':>9} {'fps':>6} {'ratio':>6}  identical"
    lines = [head]
    for row in rows:
        ref_ms = row["paths"]["reference"]["median_ms"]["frame"]
        for name, path in row["paths"].items():
            ms = path["median_ms"]
            cells = " ".join(f"{ms[s]:>12.2f}" for s in TIMED_STAGES)
            same = f"{row['identical_frames']}/{row['frames']}" if name == "fast" else ""
            lines.append(
                f"{row['video']:<10} {name:<10} {cells} {ms['frame']:>9.1f} {path['fps']:>6.2f} "
                f"{ref_ms / ms['frame']:>5.2f}x  {same}"
            )
        impls = row["paths"]["fast"]["implementations"]
        lines.append(f"{'':<10} fast uses: " + ", ".join(f"{k}={'/'.join(v)}" for k, v in impls.items())
                     + f"; mean detections/frame {row['mean_detections']:.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="default: the cached seg-nano export")
    parser.add_argument("--videos", default="312p,1080p", help="comma-separated sample names or paths")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per video")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)

    flags = read_flags()
    pipelines = {
        "reference": SegmentationPipeline(args.model, flags=replace(flags, preproc_fast=False, postproc_fast=False, pipeline_depth=1)),
        "fast": SegmentationPipeline(args.model, flags=replace(flags, preproc_fast=True, postproc_fast=True, pipeline_depth=1)),
    }
    rows = []
    for video in args.videos.split(","):
        rows.append(bench_video(pipelines, video, args.frames, args.warmup))
        print(f"done {video}", file=sys.stderr, flush=True)
    print(f"model: {pipelines['fast'].source.description or pipelines['fast'].source.path}; "
          f"engine: {pipelines['fast'].engine.name}")
    print(report(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0 if all(r["identical_frames"] == r["frames"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
