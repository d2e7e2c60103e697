"""Benchmark: a model package's preprocessing, inference-models' ``pre_process`` vs ours (reference and fast).

Runs in the integration venv (it needs inference-models)::

    .venv-integration/bin/python development/bench_package_steps.py [--repeats 15] [--json FILE]

Packages (a 312x312-input model with RF-DETR-Seg's I/O; only preprocessing
runs): ``stretch`` (no step), ``crop+gray`` (static crop 10..90 % x
5..95 %, grayscale), ``letterbox-640`` (a dataset-version first step to
640x640, padding 127), ``crop+letterbox-640``. Frame: 1080p (a sample-media
photograph). Paths, all producing the (1, 3, 312, 312) float32 model input:

- ``stock``: ``model.pre_process(frame)`` of the package loaded by
  ``AutoModel.from_pretrained``;
- ``ours-ref``: ``PackageSteps.apply`` + ``preprocess_reference`` (Pillow);
- ``ours-fast``: ``PackageSteps.apply`` + ``preprocess_into`` with the fast
  flags on (native or cpu path).

Before timing, each path's tensor is checked bit-identical to stock's
(``exact``). Paths are interleaved repeat by repeat after a warm-up; the
table gives medians (ms) and the ratio stock / path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CROP = {"static-crop": {"enabled": True, "x_min": 10, "x_max": 90, "y_min": 5, "y_max": 95}}
PACKAGES = {
    "stretch": {},
    "crop+gray": {"image_pre_processing": {**CROP, "grayscale": {"enabled": True}}},
    "letterbox-640": {"resize_mode": "letterbox", "dataset_hw": (640, 640), "padding_value": 127},
    "crop+letterbox-640": {"resize_mode": "letterbox", "dataset_hw": (640, 640), "image_pre_processing": CROP},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from inference_accel.flags import Flags
    from inference_accel.media import SAMPLE_SIZES, camera_frames
    from inference_accel.models.source import resolve_model
    from inference_accel.preprocess.api import preprocess_into
    from inference_accel.preprocess.reference import preprocess_reference
    from tests.helpers_onnx import write_tiny_seg_model
    from tests.integration.conftest import load, write_package

    frame = next(iter(camera_frames(SAMPLE_SIZES["1080p"], 1)))
    root = Path(tempfile.mkdtemp(prefix="bench_package_steps_"))
    weights = write_tiny_seg_model(root / "model.onnx", size=312)
    results = {}
    for name, options in PACKAGES.items():
        package = write_package(root / name, weights, ["a", "b", "c", "d"], (312, 312), **options)
        model, source = load(package), resolve_model(package)
        out = torch.empty(1, 3, 312, 312)

        def stock():
            return model.pre_process(frame)[0]

        def ours_reference():
            prepared, _ = source.package_steps.apply(frame)
            return preprocess_reference(prepared, source.input_hw, "stretch", source.normalization)[0]

        def ours_fast():
            prepared, _ = source.package_steps.apply(frame)
            preprocess_into(prepared, out, 0, flags=Flags(), normalization=source.normalization)
            return out

        paths = {"stock": stock, "ours-ref": ours_reference, "ours-fast": ours_fast}
        expected = stock()
        exact = {p: bool(torch.equal(expected.view(torch.int32), f().view(torch.int32))) for p, f in paths.items()}
        times = {p: [] for p in paths}
        for _ in range(2):
            for f in paths.values():
                f()
        for _ in range(args.repeats):
            for p, f in paths.items():
                start = time.perf_counter()
                f()
                times[p].append((time.perf_counter() - start) * 1e3)
        medians = {p: statistics.median(t) for p, t in times.items()}
        results[name] = {
            "median_ms": medians,
            "ratio_vs_stock": {p: medians["stock"] / m for p, m in medians.items()},
            "exact": exact,
        }
    print(f"{'package':<20}" + "".join(f"{p:>22}" for p in ("stock", "ours-ref", "ours-fast")))
    for name, r in results.items():
        cells = "".join(
            f"{r['median_ms'][p]:>10.2f} ms {r['ratio_vs_stock'][p]:>5.2f}x{'' if r['exact'][p] else ' !'}"
            for p in ("stock", "ours-ref", "ours-fast")
        )
        print(f"{name:<20}{cells}")
    print("(1080p frame -> 312x312; ratio = stock median / path median; '!' marks a tensor not equal to stock's)")
    if args.json:
        args.json.write_text(json.dumps({"frame": "1080p", "input": 312, "repeats": args.repeats, "results": results}, indent=2))
    return 0 if all(all(r["exact"].values()) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
