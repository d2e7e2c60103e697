"""Benchmark (GPU only): inference-models' stock mask step on CUDA, three ways, same masks.

The stock step turns each selected mask's logits into a binary mask with
``torchvision resize(BILINEAR, antialias=True) > 0`` on the whole frame.
Measured side by side in one process, per frame of ``N`` masks:

- ``stock``: that torchvision call on the GPU, then the dense masks copied to
  the host (what a dense result costs the server);
- ``dense-crops``: the dense stock-mask kernel (``stock_triton``), crops only;
- ``runs``: the run kernels' stock mode (``TritonPostprocessor.launch_masks_batch``),
  only the column runs copied back (what the integration runs on CUDA).

Every run's masks are checked equal to the stock ones first (a benchmark of a
wrong answer is not a benchmark). Medians of ``--repeats`` after a warm-up,
with each ratio against ``stock`` from the same run; JSON with ``--json``.
On a machine without CUDA it says so and exits 2 (no figure is made up).

    python development/bench_stock_masks_gpu.py [--repeats 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from bench_masks import median_time  # this directory is on sys.path when a script here runs

# name: (masks, logit side, frame (h, w), fraction of the logits above zero)
CASES = {
    "nano-1080p-60": (60, 78, (1080, 1920), 0.15),
    "medium-4k-100": (100, 108, (2160, 3840), 0.10),
}


def masks_for(case: str, device):
    """Deterministic logits: blobs covering about ``fill`` of each mask, negative elsewhere."""
    import torch

    n, side, _, fill = CASES[case]
    rng = np.random.default_rng(len(case))
    yy, xx = np.mgrid[0:side, 0:side]
    logits = np.full((n, side, side), -3.0, np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.2, 0.8, 2) * side
        radius = np.sqrt(fill * side * side / np.pi)
        logits[i] = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2, 2.0, -3.0) + rng.normal(0, 0.3, (side, side))
    return torch.from_numpy(logits).to(device)


def main(argv: list[str] | None = None) -> int:
    import torch
    from torchvision.transforms import functional as TF

    from inference_accel.postprocess.crop_rle import build_compact_mask
    from inference_accel.postprocess.mask_geometry import MaskPlacement
    from inference_accel.postprocess.stock_triton import threshold_upsampled_triton
    from inference_accel.postprocess.triton_launch import TritonPostprocessor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_stock_masks_gpu: no CUDA device here; this benchmark measures GPU kernels only", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    post = TritonPostprocessor(capacity=1 << 21)
    rows = []
    for case, (n, side, frame_hw, _) in CASES.items():
        logits = masks_for(case, device)
        placement = MaskPlacement((0, side), (0, side), frame_hw, (0, 0))
        queries = torch.arange(n, dtype=torch.int32, device=device)[None]
        counts = torch.tensor([n], dtype=torch.int32, device=device)

        def stock():
            return (TF.resize(logits, list(frame_hw), interpolation=TF.InterpolationMode.BILINEAR) > 0).cpu().numpy()

        def dense_crops():
            return threshold_upsampled_triton(logits, frame_hw)

        def runs():
            return post.finish_masks(post.launch_masks_batch(logits[None], queries, counts, placement, frame_hw))[0]

        expected = stock()
        if not np.array_equal(build_compact_mask(runs(), frame_hw).to_dense(), expected):
            print(f"{case}: the run kernels differ from torchvision on this GPU; not timed", file=sys.stderr)
            return 1
        times = {}
        for name, fn in (("stock", stock), ("dense-crops", dense_crops), ("runs", runs)):
            fn()  # warm-up: compiles the kernels, uploads the tables
            seconds, _ = median_time(lambda fn=fn: (fn(), torch.cuda.synchronize()), args.repeats)
            times[name] = seconds * 1e3
        row = {"case": case, "gpu": torch.cuda.get_device_name(), "median_ms": times,
               "speedup_vs_stock": {k: times["stock"] / v for k, v in times.items()}}
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
