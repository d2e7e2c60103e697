"""GPU self-check: parity and fps of every GPU fast path, in one command.

For a person with an NVIDIA GPU (we have none). It checks, on this GPU:

1. preprocessing: the Triton kernel against the PIL reference chain on random
   frames of many sizes (up/downscale, 1-pixel sides, portrait, 4K, 8K),
   fp32 and fp16 outputs: max |difference| must be <= 5e-7 (fp32);
2. postprocessing: the Triton crop-RLE kernels against the dense reference
   computed *on the same GPU* with torch's CUDA ``F.interpolate``: boxes,
   scores and class ids identical, masks identical in every pixel;
3. end to end: the pipeline with fast paths vs the reference paths on the
   sample videos (identical detections), and fps of both. With a TensorRT
   engine (``--model engine.plan``) and CUDA graphs on, the fast pipeline
   runs whole-frame graphs (``inference_accel.frame_graph``); the line says
   whether it did, or why not.

    python parity/gpu_selfcheck.py                      # onnxruntime-gpu, then a TensorRT engine built here
    python parity/gpu_selfcheck.py --model engine.plan  # a TensorRT engine of seg-nano
    python parity/gpu_selfcheck.py --json selfcheck.json

With no ``--model``, the end-to-end check runs the cached seg-nano ONNX on
onnxruntime-gpu and, when the full ``tensorrt`` package is installed (gpu
extra), on a TensorRT engine it builds from that ONNX (once, cached beside
it): the TensorRT run is the one that exercises whole-frame CUDA graphs.

Exit status 0 only if every check passes. Paste the printed table into an
issue: those are the GPU numbers we may quote.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from inference_accel.flags import read_flags
from inference_accel.parity import compare_detections

PREPROC_SIZES = [(1080, 1920), (1920, 1080), (2160, 3840), (4320, 7680), (1, 1), (1, 517), (517, 1), (311, 313), (97, 4000)]
TARGETS = [(312, 312), (432, 432), (624, 624)]


def check_preprocess(flags, rng) -> list[str]:
    from inference_accel.preprocess.api import preprocess_into
    from inference_accel.preprocess.reference import preprocess_reference

    failures = []
    for size in PREPROC_SIZES:
        for target in TARGETS:
            frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            expected, _ = preprocess_reference(frame, target)
            for dtype, tolerance in ((torch.float32, 5e-7), (torch.float16, 1e-3)):
                out = torch.empty((2, 3, *target), dtype=dtype, device="cuda")
                _, impl = preprocess_into(frame, out, 1, flags=flags)
                torch.cuda.synchronize()
                error = (out[1].float().cpu() - expected[0]).abs().max().item()
                ok = impl == "triton" and error <= tolerance
                print(f"preprocess {size[1]}x{size[0]} -> {target[1]}x{target[0]} {str(dtype)[6:]:8} {impl:9} max|d|={error:.2e} {'ok' if ok else 'FAIL'}")
                if not ok:
                    failures.append(f"preprocess {size}->{target} {dtype}: impl={impl} err={error}")
    return failures


def check_postprocess(flags, rng) -> list[str]:
    from inference_accel.postprocess.api import postprocess
    from inference_accel.postprocess.reference import postprocess_reference
    from inference_accel.preprocess.geometry import plan_geometry

    failures = []
    cases = [((1080, 1920), 100, 91, 78), ((2160, 3840), 300, 91, 156), ((1920, 1080), 100, 91, 78), ((4320, 7680), 300, 91, 192), ((313, 517), 100, 91, 78)]
    for frame_hw, queries, classes, side in cases:
        logits = torch.randn(queries, classes, device="cuda") * 2 - 3
        boxes = torch.rand(queries, 4, device="cuda") * 0.5 + 0.25
        masks = torch.randn(queries, side, side, device="cuda") * 4 - 2
        geometry = plan_geometry(frame_hw, (side * 4, side * 4))
        start = time.perf_counter()
        fast, impl = postprocess(logits, boxes, masks, geometry, flags=flags)
        torch.cuda.synchronize()
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        reference = postprocess_reference(logits, boxes, masks, geometry=geometry)
        torch.cuda.synchronize()
        reference_s = time.perf_counter() - start
        problems = compare_detections(fast, reference)
        ok = impl == "triton" and not problems
        print(
            f"postprocess {frame_hw[1]}x{frame_hw[0]} Q={queries} masks {side}^2: {len(reference)} dets, {impl}, "
            f"{fast_s * 1e3:.1f} ms vs dense {reference_s * 1e3:.1f} ms {'ok' if ok else 'FAIL ' + '; '.join(problems)}"
        )
        if not ok:
            failures.append(f"postprocess {frame_hw}: impl={impl} {problems}")
    return failures


def check_end_to_end(model, flags, frames_per_video: int) -> tuple[list[str], list[dict]]:
    from inference_accel.media import VideoFrames, resolve_source
    from inference_accel.pipeline import SegmentationPipeline

    failures, rows = [], []
    for video in ("312p", "1080p", "portrait"):
        frames = list(VideoFrames(resolve_source(video), limit=frames_per_video))
        results = {}
        for name, variant in (("fast", replace(flags, preproc_fast=True, postproc_fast=True)), ("reference", replace(flags, preproc_fast=False, postproc_fast=False))):
            pipeline = SegmentationPipeline(model, device="cuda", flags=variant, build_response=False)
            list(pipeline.run(frames[:3]))  # warm-up: compile kernels, capture graphs
            if name == "fast":
                graphs = "on" if pipeline.frame_graphs is not None else f"off ({pipeline.frame_graph_reason})"
                print(f"end-to-end {video}: whole-frame CUDA graphs {graphs}")
            torch.cuda.synchronize()
            start = time.perf_counter()
            results[name] = list(pipeline.run(frames))
            torch.cuda.synchronize()
            fps = len(frames) / (time.perf_counter() - start)
            rows.append({"video": video, "paths": name, "fps": fps, "implementations": results[name][-1].implementations})
        mismatched = sum(bool(compare_detections(f.detections, r.detections)) for f, r in zip(results["fast"], results["reference"]))
        fast_fps, ref_fps = rows[-2]["fps"], rows[-1]["fps"]
        print(f"end-to-end {video}: fast {fast_fps:.1f} fps vs reference {ref_fps:.1f} fps ({fast_fps / ref_fps:.2f}x), {mismatched}/{len(frames)} frames mismatched")
        if mismatched:
            failures.append(f"end-to-end {video}: {mismatched} mismatched frames")
    return failures, rows


def built_tensorrt_engine() -> list[str]:
    """The cached seg-nano ONNX built into a TensorRT engine here ([] when the builder is missing)."""
    from inference_accel.engine.tensorrt_build import build_engine, default_plan_path
    from inference_accel.errors import EngineBuildError
    from inference_accel.models.source import resolve_model

    onnx = resolve_model(None).path
    plan = default_plan_path(onnx)
    if plan.is_file() and plan.stat().st_mtime >= onnx.stat().st_mtime:
        return [str(plan)]  # built from this ONNX before
    try:
        print(f"building a TensorRT engine from {onnx} (minutes, once) ...")
        return [str(build_engine(onnx))]
    except EngineBuildError as exc:
        print(f"no TensorRT engine: {exc}")
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="seg-nano ONNX/package/.plan (default: cached seg-nano ONNX on onnxruntime-gpu)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU visible: this self-check needs one", file=sys.stderr)
        return 2
    print(f"GPU: {torch.cuda.get_device_name(0)} sm_{''.join(map(str, torch.cuda.get_device_capability(0)))}")
    flags = read_flags()
    rng = np.random.default_rng(0)
    failures = check_preprocess(flags, rng)
    failures += check_postprocess(flags, rng)
    models = [args.model] if args.model else [None, *built_tensorrt_engine()]
    rows = []
    for model in models:
        print(f"end-to-end model: {model or 'cached seg-nano ONNX (onnxruntime-gpu)'}")
        e2e_failures, model_rows = check_end_to_end(model, flags, args.frames)
        failures += e2e_failures
        rows += model_rows
    print("\nALL CHECKS PASSED" if not failures else "\nFAILURES:\n  " + "\n  ".join(failures))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"gpu": torch.cuda.get_device_name(0), "failures": failures, "end_to_end": rows}, handle, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
