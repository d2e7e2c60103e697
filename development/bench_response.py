"""Benchmark the response stage: today's flat response vs Roboflow's payload.

Frames from the bundled sample videos go through the pipeline (the cached
seg-nano, CPU, ``build_response=False``); each frame's detections are then
turned into a response by

- ``before``: the previous stage (:func:`legacy_response`, kept here as it
  was: ``{x1, y1, x2, y2, confidence, class_id, class_name, points}`` with
  the largest-area contour from the tight-crop painter);
- ``after``: :func:`inference_accel.response.build_response` (Roboflow's
  payload, points of the transposed column-major trace);
- ``after (row-major)``: the same payload with ``transposed_trace=False``
  (the tight-crop painter with Roboflow's choice of contour);
- ``after (rle)``: the payload with ``mask_format="rle"``;
- ``after (json bytes)``: :func:`inference_accel.response.response_json`,
  the payload already serialised (compact JSON, points written as text),
  what ``SegmentationPipeline(response_format="json")`` runs;
- ``after (references)`` / ``after (json bytes, references)``: the same two
  with ``INFERENCE_ACCEL_RESPONSE_NATIVE=false`` (numpy painting, Python
  point dicts, numpy point text: what the compiled helper replaces);
- ``before + json.dumps``: the previous stage plus compact ``json.dumps``, the
  serialised baseline to hold ``after (json bytes)`` against.

Garbage collection decides the ``before`` figures: its payload is ~133k
Python lists per 1080p frame, which trigger the collector, and a full
collection walks every live object of the process (torch's included).
Two policies are measured in one run:

- ``natural`` (``rows``): the collector as a default Python process runs it
  (the pipeline's case); the **mean** carries the collections' amortised
  cost (a median can miss them: 312p ``before`` medians of 30, 62 and 87 ms
  were seen in three runs);
- ``frozen heap`` (``rows_frozen_heap``): after ``gc.freeze()`` (what a
  server may do after start-up) and from a collected heap each call: the
  work of the path itself.

``before`` and ``after`` alternate frame by frame, after one warm-up pass;
each row is the median over frames and repeats of the per-frame wall time
(``perf_counter``) and the calling thread's CPU time (``thread_time``:
steadier on a busy machine, and blind to onnxruntime's pool threads, which
may still spin after the capture; every step here runs on the calling
thread). Ratios are ``before / after`` of the medians from the same run.
Every ``after`` polygon is compared with inference-core's dense ``mask2poly``
(``cv2.findContours`` on the dense frame, the contour with the most points)
and the counts are reported; ``json_ms`` is ``json.dumps`` of the payload
(compact separators), the serialization a server adds on top.

Run: ``.venv/bin/python development/bench_response.py [--frames 4] [--repeats 3]
[--samples 312p 1080p] [--json docs/bench/response.json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from inference_accel import media
from inference_accel.flags import RESPONSE_NATIVE_FLAG
from inference_accel.masks.polygons import masks_to_polygons
from inference_accel.pipeline import SegmentationPipeline
from inference_accel.response import build_response, response_json

COMMAND = ".venv/bin/python development/bench_response.py"


def legacy_response(detections: sv.Detections) -> list[dict]:
    """The response stage before Roboflow's format (kept as the baseline, unchanged)."""
    names = detections.data.get("class_name") if detections.data else None
    polygons = masks_to_polygons(detections.mask, "largest") if detections.mask is not None else None
    payload = []
    for i in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        item = {
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "confidence": float(detections.confidence[i]) if detections.confidence is not None else None,
            "class_id": int(detections.class_id[i]) if detections.class_id is not None else None,
            "class_name": str(names[i]) if names is not None else None,
        }
        if polygons is not None:
            item["points"] = np.asarray(polygons[i]).reshape(-1, 2).tolist()
        payload.append(item)
    return payload


def server_points(dense: np.ndarray) -> np.ndarray:
    """inference-core's ``mask2poly`` on one dense (H, W) mask (float32 (K, 2))."""
    mask = np.ascontiguousarray(dense.astype(bool)).view(np.uint8)
    if not mask.any():
        return np.zeros((0, 2), np.float32)
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    return np.array(contours[np.array([len(c) for c in contours]).argmax()]).reshape(-1, 2).astype(np.float32)


def capture(sample: str, frames: int, model: str | None) -> list[sv.Detections]:
    """Detections of the first ``frames`` frames of a bundled sample, through the pipeline."""
    pipeline = SegmentationPipeline(model, device="cpu", build_response=False)
    video = media.VideoFrames(media.resolve_source(sample), limit=frames)
    detections = [result.detections for result in pipeline.run(iter(video))]
    del pipeline  # its engine's threads must not run beside the timed stage
    gc.collect()
    return detections


def _with_references(fn: Callable[[sv.Detections], Any], detections: sv.Detections) -> Any:
    """``fn`` with the compiled response helper switched off (its numpy/Python references run)."""
    saved = os.environ.get(RESPONSE_NATIVE_FLAG)
    os.environ[RESPONSE_NATIVE_FLAG] = "false"
    try:
        return fn(detections)
    finally:
        if saved is None:
            del os.environ[RESPONSE_NATIVE_FLAG]
        else:
            os.environ[RESPONSE_NATIVE_FLAG] = saved


def timed(fn: Callable[[], Any], collect: bool) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call; ``collect``: from a collected heap (see the module docstring)."""
    if collect:
        gc.collect()
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3


def measure(
    paths: dict[str, Callable[[sv.Detections], Any]], detections_list: list[sv.Detections], repeats: int,
    collect: bool,
) -> dict[str, dict[str, float]]:
    """Every path on every frame, ``repeats`` times, interleaved; per path: mean, median, CPU median, ratios."""
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    for repeat in range(repeats):
        for index, detections in enumerate(detections_list):
            for name in order if (repeat + index) % 2 == 0 else order[::-1]:
                w, c = timed(lambda: paths[name](detections), collect)
                wall[name].append(w)
                cpu[name].append(c)
    rows = {
        name: {"mean_ms": statistics.mean(wall[name]), "median_ms": statistics.median(wall[name]),
               "median_cpu_ms": statistics.median(cpu[name])}
        for name in paths
    }
    for name in paths:
        for key, ratio in (("mean_ms", "mean_ratio_vs_before"), ("median_ms", "ratio_vs_before"),
                           ("median_cpu_ms", "cpu_ratio_vs_before")):
            rows[name][ratio] = rows["before"][key] / rows[name][key]
    return rows


def check_points(detections_list: list[sv.Detections]) -> dict[str, int]:
    """How many ``after`` polygons equal the dense server path."""
    same = total = 0
    for detections in detections_list:
        payload = build_response(detections)
        dense = detections.mask.to_dense()
        for prediction, mask in zip(payload["predictions"], dense):
            got = np.array([[p["x"], p["y"]] for p in prediction["points"]], np.float32).reshape(-1, 2)
            same += bool(np.array_equal(got, server_points(mask)))
            total += 1
    return {"identical": same, "masks": total}


def bench_sample(sample: str, frames: int, repeats: int, model: str | None) -> dict[str, Any]:
    detections_list = capture(sample, frames, model)
    paths: dict[str, Callable[[sv.Detections], Any]] = {
        "before": legacy_response,
        "after": build_response,
        "after (row-major)": lambda d: build_response(d, transposed_trace=False),
        "after (rle)": lambda d: build_response(d, mask_format="rle"),
        "after (json bytes)": response_json,
        "after (references)": lambda d: _with_references(build_response, d),
        "after (json bytes, references)": lambda d: _with_references(response_json, d),
        "before + json.dumps": lambda d: json.dumps(legacy_response(d), separators=(",", ":")),
    }
    for detections in detections_list:  # warm-up: allocator, caches, the one-time self-check
        for fn in paths.values():
            fn(detections)
    policies = {"natural": measure(paths, detections_list, repeats, collect=False)}
    # The process's long-lived objects (torch, onnxruntime, the captured detections) go to
    # the permanent generation, as a server may do with gc.freeze() after start-up.
    gc.collect()
    gc.freeze()
    try:
        policies["frozen"] = measure(paths, detections_list, repeats, collect=True)
        payloads = [build_response(d) for d in detections_list]
        json_ms = [timed(lambda: json.dumps(p, separators=(",", ":")), True)[0] for p in payloads]
    finally:
        gc.unfreeze()
    h, w = media.SAMPLE_SIZES[sample]
    return {
        "sample": sample,
        "frame_hw": [h, w],
        "frames": len(detections_list),
        "repeats": repeats,
        "detections_per_frame": statistics.mean(len(d) for d in detections_list),
        "points_per_frame": statistics.mean(sum(len(p["points"]) for p in pl["predictions"]) for pl in payloads),
        "rows": policies["natural"],
        "rows_frozen_heap": policies["frozen"],
        "json_dumps_ms": statistics.median(json_ms),
        "json_bytes_per_frame": statistics.mean(len(json.dumps(p, separators=(",", ":"))) for p in payloads),
        "points_vs_dense_server_path": check_points(detections_list),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", nargs="+", default=["312p", "1080p"], choices=sorted(media.SAMPLE_SIZES))
    parser.add_argument("--model", default=None, help="default: the cached seg-nano")
    parser.add_argument("--json", default="docs/bench/response.json")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    print(f"command: {command}")
    results = [bench_sample(s, args.frames, args.repeats, args.model) for s in args.samples]
    print(f"{'sample':7} {'path':31} {'mean ms':>8} {'ratio':>6} {'median':>8} {'ratio':>6}   "
          f"{'frozen heap: median':>19} {'ratio':>6}")
    for result in results:
        for name, row in result["rows"].items():
            frozen = result["rows_frozen_heap"][name]
            print(
                f"{result['sample']:7} {name:31} {row['mean_ms']:8.1f} {row['mean_ratio_vs_before']:6.2f} "
                f"{row['median_ms']:8.1f} {row['ratio_vs_before']:6.2f}   {frozen['median_ms']:19.1f} "
                f"{frozen['ratio_vs_before']:6.2f}"
            )
        check = result["points_vs_dense_server_path"]
        print(
            f"{result['sample']:7} {result['detections_per_frame']:.0f} detections, "
            f"{result['points_per_frame']:.0f} points/frame; json.dumps {result['json_dumps_ms']:.1f} ms "
            f"({result['json_bytes_per_frame'] / 1e6:.2f} MB); points identical to the dense server path: "
            f"{check['identical']}/{check['masks']}"
        )
    report = {
        "command": command,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "opencv": cv2.__version__, "numpy": np.__version__},
        "results": results,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
