"""Benchmark: throughput with 1, 2 and 4 frames per engine call on the CPU engine.

For each batch size N one :class:`SegmentationPipeline` is built with
``batch_size=N`` and runs a list of decoded frames through :meth:`run`
(N frames per engine call; a short last batch is padded). *fps* = frames /
wall time of the whole list; the figure reported is the median over
``--repeats`` runs, the configurations interleaved run by run so that load
on a shared machine hits them alike. Every answer is compared with the
``batch_size=1`` answer of the same frame (boxes, scores, classes, every
mask pixel): a throughput figure only counts if ``identical`` is all frames.

    python development/bench_batch.py [--model seg-nano|tiny|FILE] [--video 312p]
        [--frames 8] [--batches 1,2,4] [--repeats 3] [--json docs/bench/batch.json]

``--model seg-nano`` (the default) is a **dynamic-batch** export of seg-nano,
cached beside the bundled one as ``rfdetr-seg-nano-dynbatch.onnx``
(exported on first use: ``export_model(..., dynamic_batch=True)``; the
bundled export has a fixed batch of 1). ``tiny`` is the 64x64
dynamic-batch test model of ``tests/helpers_onnx.py``
(``write_tiny_batch_seg_model``), written to a temporary directory: its
inference is nearly free, so it measures the host side only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import supervision as sv

from inference_accel.flags import read_flags
from inference_accel.media import VideoFrames, resolve_source
from inference_accel.parity import compare_detections
from inference_accel.pipeline import SegmentationPipeline


def dynamic_seg_nano() -> str:
    """The cached dynamic-batch seg-nano export (exported when missing)."""
    from inference_accel.models.cache import cached_model_path
    from inference_accel.models.export import export_model

    path = cached_model_path("seg-nano", dynamic_batch=True)
    if not path.is_file():
        export_model("seg-nano", output=path, dynamic_batch=True)
    return str(path)


def resolve_bench_model(name: str, workdir: Path) -> str:
    if name == "seg-nano":
        return dynamic_seg_nano()
    if name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.helpers_onnx import write_tiny_batch_seg_model

        return str(write_tiny_batch_seg_model(workdir / "tiny-batch.onnx", size=64, queries=10))
    return name


def run_once(pipeline: SegmentationPipeline, frames: list[np.ndarray]) -> tuple[float, list[sv.Detections]]:
    """(wall seconds, answers in frame order) of one pass over ``frames``."""
    start = time.perf_counter()
    answers = [result.detections for result in pipeline.run(frames)]
    return time.perf_counter() - start, answers


def bench(model: str, frames: list[np.ndarray], batch_sizes: list[int], repeats: int) -> dict:
    flags = read_flags()
    pipelines = {n: SegmentationPipeline(model, flags=flags, build_response=False, batch_size=n) for n in batch_sizes}
    one = SegmentationPipeline(model, flags=flags, build_response=False, batch_size=1)
    expected = [one.predict(f) for f in frames]  # also the warm-up
    for n, pipeline in pipelines.items():
        run_once(pipeline, frames[:n])  # warm-up of each configuration
    walls: dict[int, list[float]] = {n: [] for n in batch_sizes}
    identical = {n: 0 for n in batch_sizes}
    for _ in range(repeats):
        for n, pipeline in pipelines.items():
            wall, answers = run_once(pipeline, frames)
            walls[n].append(wall)
            identical[n] += sum(not compare_detections(a, e) for a, e in zip(answers, expected))
    rows = []
    for n in batch_sizes:
        fps = [len(frames) / w for w in walls[n]]
        rows.append({
            "batch_size": n,
            "median_fps": statistics.median(fps),
            "min_fps": min(fps),
            "max_fps": max(fps),
            "identical": identical[n],
            "compared": repeats * len(frames),
        })
    base = rows[0]["median_fps"]
    for row in rows:
        row["ratio_vs_first"] = row["median_fps"] / base
    return {
        "model": one.source.description or str(one.source.path),
        "engine": one.engine.name,
        "batch_range": one.engine.spec.batch.describe(),
        "frame_hw": list(frames[0].shape[:2]),
        "frames": len(frames),
        "repeats": repeats,
        "pipeline_depth": one.depth,
        "mean_detections": statistics.fmean(len(d) for d in expected),
        "rows": rows,
    }


def report(result: dict) -> str:
    lines = [
        f"model: {result['model']} ({result['batch_range']}); engine: {result['engine']}; "
        f"frames {result['frame_hw'][1]}x{result['frame_hw'][0]}, {result['frames']} per run, "
        f"median of {result['repeats']}; mean detections/frame {result['mean_detections']:.1f}",
        f"{'batch':>5} {'fps (median)':>13} {'min':>7} {'max':>7} {'vs first':>8}  identical",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['batch_size']:>5} {row['median_fps']:>13.2f} {row['min_fps']:>7.2f} {row['max_fps']:>7.2f} "
            f"{row['ratio_vs_first']:>7.2f}x  {row['identical']}/{row['compared']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="seg-nano", help="seg-nano (dynamic-batch export), tiny, or a model path")
    parser.add_argument("--video", default="312p", help="sample name or video path")
    parser.add_argument("--frames", type=int, default=8, help="frames per run (decoded once)")
    parser.add_argument("--batches", default="1,2,4", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the measurements to this file (several --model runs: one list)")
    args = parser.parse_args(argv)

    batch_sizes = [int(n) for n in args.batches.split(",")]
    frames = list(VideoFrames(resolve_source(args.video), limit=args.frames))
    with tempfile.TemporaryDirectory() as workdir:
        model = resolve_bench_model(args.model, Path(workdir))
        result = bench(model, frames, batch_sizes, args.repeats)
    result["video"] = args.video
    result["command"] = "python development/bench_batch.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(report(result))
    if args.json:
        path = Path(args.json)
        previous = json.loads(path.read_text()) if path.is_file() else []
        previous = previous if isinstance(previous, list) else [previous]
        runs = [r for r in previous if r.get("model") != result["model"]]  # one entry per model
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(runs + [result], indent=2) + "\n")
    return 0 if all(r["identical"] == r["compared"] for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
