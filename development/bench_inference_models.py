"""Benchmark: inference-models' stock RF-DETR-Seg class vs the accelerated one, same process.

One ``inference-models`` package (default: the cached seg-nano export wrapped
as a Roboflow package in a temporary directory), loaded once; the stock
object and its accelerated copy (``accelerate(copy.copy(model))``: same ONNX
session) run the same frames of the bundled sample media, interleaved frame
by frame (the order alternates), stage by stage: ``pre_process``,
``forward``, ``post_process``, and their sum (what ``model(frame)`` costs).
Medians per stage and the stock / accelerated ratio are printed per video
size (312p, 1080p, portrait 1080x1920) and mask format (dense, rle). Every
frame's outputs are compared field by field (boxes, scores, classes, every
mask pixel or RLE byte) and the preprocessed tensors bit for bit; a mismatch
aborts the run. The header (and ``--json``'s ``mask_executor``) says which
mask executor ran: the compiled one, or numpy with the reason
(``INFERENCE_ACCEL_POSTPROC_NATIVE=false`` measures the latter).

Run it in the integration venv (``.ci/integration_env.sh``)::

    .venv-integration/bin/python development/bench_inference_models.py [--frames 5] [--json FILE]
        [--sizes 312p,1080p,portrait] [--formats dense,rle] [--confidence default] [--package DIR]

With random weights (no network here) seg-nano's masks are noisy and large
(half the frame on average): the hardest case for a sparse path. ``--json``
also records the detections per frame and the mean mask fill.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("pre_process", "forward", "post_process", "total")


def build_package(directory: Path) -> Path:
    from tests.integration.conftest import NANO_ONNX, write_package

    if not NANO_ONNX.is_file():
        sys.exit(f"no cached seg-nano export at {NANO_ONNX}; run `inference-accel export` in the main venv first")
    names_file = NANO_ONNX.with_suffix(".json")
    names = json.loads(names_file.read_text())["class_names"] if names_file.is_file() else [f"c{i}" for i in range(91)]
    return write_package(directory / "seg-nano", NANO_ONNX, names, (312, 312))


def timed_run(model, frame, mask_format, confidence):
    times = {}
    t0 = time.perf_counter()
    x, meta = model.pre_process(frame)
    t1 = time.perf_counter()
    raw = model.forward(x)
    t2 = time.perf_counter()
    out = model.post_process(raw, meta, mask_format=mask_format, confidence=confidence)
    t3 = time.perf_counter()
    times.update(pre_process=t1 - t0, forward=t2 - t1, post_process=t3 - t2, total=t3 - t0)
    return times, (x, meta), out


def mask_fill(detections) -> float:
    import numpy as np

    if len(detections) == 0:
        return 0.0
    sv = detections.to_supervision(compact=True)
    h, w = sv.mask.shape[1:]
    return float(np.mean(sv.mask.area) / (h * w))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5, help="timed frames per size and format (after 1 warm-up)")
    parser.add_argument("--sizes", default="312p,1080p,portrait")
    parser.add_argument("--formats", default="dense,rle")
    parser.add_argument("--confidence", default="default", help='"default" (0.4) or a float')
    parser.add_argument("--package", type=Path, help="an RF-DETR-Seg ONNX package directory (default: cached seg-nano)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    confidence = args.confidence if args.confidence in ("default", "best") else float(args.confidence)

    import torch
    from inference_models import AutoModel

    from inference_accel.integrations import stock_masks_native
    from inference_accel.integrations.inference_models import accelerate, require_inference_models
    from inference_accel.media import SAMPLE_SIZES, camera_frames
    from inference_accel.workers import usable_cpus
    from tests.integration.conftest import assert_same_detections, assert_same_inputs

    version = require_inference_models()
    with tempfile.TemporaryDirectory() as scratch:
        package = args.package or build_package(Path(scratch))
        stock = AutoModel.from_pretrained(str(package), onnx_execution_providers=["CPUExecutionProvider"])
        accelerated = accelerate(copy.copy(stock))
        models = {"stock": stock, "accelerated": accelerated}
        results = {"inference_models": version, "torch_threads": torch.get_num_threads(), "cpus": usable_cpus(),
                   "package": str(args.package or "seg-nano (cached export, random weights)"), "cases": []}
        reason = stock_masks_native.native_reason()
        results["mask_executor"] = f"compiled ({stock_masks_native.instruction_set()})" if reason is None else f"numpy ({reason})"
        print(f"inference-models {version}, torch threads {torch.get_num_threads()}, package {results['package']}, "
              f"mask executor {results['mask_executor']}")
        header = f"{'case':<16}{'stage':<14}{'stock ms':>10}{'accel ms':>10}{'ratio':>8}"
        print(header)
        for size in args.sizes.split(","):
            frames = list(camera_frames(SAMPLE_SIZES[size], args.frames + 1))
            for mask_format in args.formats.split(","):
                samples = {name: {stage: [] for stage in STAGES} for name in models}
                detections, fills = [], []
                for index, frame in enumerate(frames):
                    order = list(models) if index % 2 == 0 else list(reversed(list(models)))
                    runs = {name: timed_run(models[name], frame, mask_format, confidence) for name in order}
                    assert_same_inputs(runs["stock"][1], runs["accelerated"][1])
                    assert_same_detections(runs["stock"][2], runs["accelerated"][2])
                    if accelerated.acceleration.get("post_process", ("",))[0] != "inference_accel":
                        print(f"  note: {accelerated.acceleration}")
                    if index == 0:
                        continue  # warm-up
                    for name in models:
                        for stage in STAGES:
                            samples[name][stage].append(runs[name][0][stage] * 1e3)
                    detections.append(len(runs["stock"][2][0]))
                    fills.append(mask_fill(runs["accelerated"][2][0]))
                case = {"size": size, "frame_hw": SAMPLE_SIZES[size], "mask_format": mask_format, "frames": args.frames,
                        "detections_per_frame": detections, "mean_mask_fill": statistics.fmean(fills) if fills else 0.0,
                        "identical": True, "stages": {}}
                for stage in STAGES:
                    s = statistics.median(samples["stock"][stage])
                    a = statistics.median(samples["accelerated"][stage])
                    case["stages"][stage] = {"stock_ms": s, "accelerated_ms": a, "ratio": s / a if a else None}
                    print(f"{size + ' ' + mask_format:<16}{stage:<14}{s:>10.1f}{a:>10.1f}{s / a:>7.2f}x")
                print(f"{'':<16}detections/frame {statistics.fmean(detections):.1f}, mean mask fill "
                      f"{case['mean_mask_fill']:.1%}, outputs identical on every frame")
                results["cases"].append(case)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
