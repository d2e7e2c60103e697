"""A/B parity: the pipeline with fast paths vs the reference paths, on real media.

Runs the same frames twice, once with both fast paths on and once with
``INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED=false`` and
``INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED=false`` semantics, and
checks boxes, scores and class ids identical and masks identical in every
pixel. Exit status 0 only when every frame matches.

    python parity/ab_pipeline.py                       # 1080p sample, 10 frames
    python parity/ab_pipeline.py --video 312p --frames 30 --resize-mode letterbox
    python parity/ab_pipeline.py --video my.mp4 --model my_package/ --json ab.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from inference_accel.flags import read_flags
from inference_accel.media import VideoFrames, resolve_source
from inference_accel.parity import compare_detections
from inference_accel.pipeline import SegmentationPipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--video", help="sample name or video path (default: 1080p sample)")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--resize-mode", choices=("stretch", "letterbox", "center-crop"))
    parser.add_argument("--json", help="write the per-frame report here")
    args = parser.parse_args(argv)

    flags = read_flags()
    fast_flags = replace(flags, preproc_fast=True, postproc_fast=True)
    reference_flags = replace(flags, preproc_fast=False, postproc_fast=False)
    common = dict(device=args.device, threshold=args.threshold, resize_mode=args.resize_mode, build_response=False)
    fast = SegmentationPipeline(args.model, flags=fast_flags, **common)
    reference = SegmentationPipeline(args.model, flags=reference_flags, **common)
    frames = list(VideoFrames(resolve_source(args.video), limit=args.frames))

    timings = {}
    outputs = {}
    for name, pipeline in (("fast", fast), ("reference", reference)):
        start = time.perf_counter()
        outputs[name] = list(pipeline.run(frames))
        timings[name] = time.perf_counter() - start

    report, mismatched, detections = [], 0, 0
    for f, r in zip(outputs["fast"], outputs["reference"]):
        problems = compare_detections(f.detections, r.detections)
        detections += len(r.detections)
        mismatched += bool(problems)
        report.append({"frame": f.index, "detections": len(r.detections), "implementations": f.implementations, "problems": problems})
        status = "identical" if not problems else "; ".join(problems)
        print(f"frame {f.index:4d}  {len(r.detections):3d} detections  fast={f.implementations}  {status}")
    print(
        f"\n{len(frames)} frames, {detections} detections: {len(frames) - mismatched} identical, {mismatched} mismatched; "
        f"fast {timings['fast']:.2f} s vs reference {timings['reference']:.2f} s ({timings['reference'] / timings['fast']:.2f}x)"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"frames": report, "seconds": timings}, handle, indent=1)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
