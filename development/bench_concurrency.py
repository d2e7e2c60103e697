"""Benchmark: throughput of one shared pipeline with 1, 2 and 4 client threads.

For each thread count T one :class:`SegmentationPipeline` is built with
``concurrency=T`` (T lanes of engine buffer slots) and T client threads call
its ``predict`` on a shared list of decoded frames (thread k takes frames
k, k+T, ...). *fps* = frames / wall time of the whole batch; the figure
reported is the median over ``--repeats`` batches, the configurations run
interleaved batch by batch so that load on a shared machine hits them
alike. Every answer is compared with the sequential answer of the same
frame (boxes, scores, classes, every mask pixel): a throughput figure
only counts if ``identical`` is all frames.

    python development/bench_concurrency.py [--model seg-nano|tiny|FILE] [--video 312p]
        [--frames 24] [--threads 1,2,4] [--repeats 5] [--json FILE]

``--model seg-nano`` (the default) is the cached export
(``~/.cache/inference_accel/models``; exported on first use when it is
missing); ``tiny`` is the 64x64 test model of ``tests/helpers_onnx.py``,
written to a temporary directory (no export needed, but its inference is
nearly free, so it measures the host side only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import supervision as sv

from inference_accel.flags import read_flags
from inference_accel.media import VideoFrames, resolve_source
from inference_accel.parity import compare_detections
from inference_accel.pipeline import SegmentationPipeline


def resolve_bench_model(name: str, workdir: Path) -> str | None:
    """``seg-nano`` -> None (the pipeline's cached default); ``tiny`` -> a fresh tiny model file."""
    if name == "seg-nano":
        return None
    if name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.helpers_onnx import write_tiny_seg_model

        return str(write_tiny_seg_model(workdir / "tiny.onnx", size=64, queries=10))
    return name


def run_batch(pipeline: SegmentationPipeline, frames: list[np.ndarray], threads: int) -> tuple[float, list]:
    """(wall seconds, answers in frame order) of ``threads`` clients sharing the frames."""

    def client(k: int) -> list[tuple[int, sv.Detections]]:
        return [(i, pipeline.predict(frames[i])) for i in range(k, len(frames), threads)]

    answers: list[sv.Detections | None] = [None] * len(frames)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        for part in executor.map(client, range(threads)):
            for i, detections in part:
                answers[i] = detections
    return time.perf_counter() - start, answers


def bench(model: str | None, frames: list[np.ndarray], thread_counts: list[int], repeats: int) -> dict:
    flags = read_flags()
    pipelines = {
        t: SegmentationPipeline(model, flags=flags, build_response=False, concurrency=t) for t in thread_counts
    }
    first = pipelines[thread_counts[0]]
    sequential = [first.predict(f) for f in frames]  # also the warm-up
    for t, pipeline in pipelines.items():
        run_batch(pipeline, frames[: 2 * t], t)  # warm-up of each configuration
    walls: dict[int, list[float]] = {t: [] for t in thread_counts}
    identical = {t: 0 for t in thread_counts}
    for _ in range(repeats):
        for t, pipeline in pipelines.items():
            wall, answers = run_batch(pipeline, frames, t)
            walls[t].append(wall)
            identical[t] += sum(not compare_detections(a, s) for a, s in zip(answers, sequential))
    rows = []
    for t in thread_counts:
        fps = [len(frames) / w for w in walls[t]]
        rows.append({
            "threads": t,
            "concurrency": t,
            "median_fps": statistics.median(fps),
            "min_fps": min(fps),
            "max_fps": max(fps),
            "identical": identical[t],
            "compared": repeats * len(frames),
        })
    base = rows[0]["median_fps"]
    for row in rows:
        row["speedup"] = row["median_fps"] / base
    return {
        "model": first.source.description or str(first.source.path),
        "engine": first.engine.name,
        "frame_hw": list(frames[0].shape[:2]),
        "frames_per_batch": len(frames),
        "repeats": repeats,
        "pipeline_depth": first.depth,
        "mean_detections": statistics.fmean(len(d) for d in sequential),
        "rows": rows,
    }


def report(result: dict) -> str:
    lines = [
        f"model: {result['model']}; engine: {result['engine']}; "
        f"frames {result['frame_hw'][1]}x{result['frame_hw'][0]}, "
        f"{result['frames_per_batch']} per batch, median of {result['repeats']}; "
        f"mean detections/frame {result['mean_detections']:.1f}",
        f"{'threads':>7} {'fps (median)':>13} {'min':>7} {'max':>7} {'vs 1':>6}  identical",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['threads']:>7} {row['median_fps']:>13.2f} {row['min_fps']:>7.2f} {row['max_fps']:>7.2f} "
            f"{row['speedup']:>5.2f}x  {row['identical']}/{row['compared']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="seg-nano", help="seg-nano (cached export), tiny, or a model path")
    parser.add_argument("--video", default="312p", help="sample name or video path")
    parser.add_argument("--frames", type=int, default=24, help="frames per batch (decoded once)")
    parser.add_argument("--threads", default="1,2,4", help="comma-separated client thread counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)

    thread_counts = [int(t) for t in args.threads.split(",")]
    frames = list(VideoFrames(resolve_source(args.video), limit=args.frames))
    with tempfile.TemporaryDirectory() as workdir:
        model = resolve_bench_model(args.model, Path(workdir))
        result = bench(model, frames, thread_counts, args.repeats)
    result["video"] = args.video
    print(report(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if all(r["identical"] == r["compared"] for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
