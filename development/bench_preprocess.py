"""Benchmark: preprocessing, reference chain vs CPU fast path (vs Triton on a GPU).

Cases (all stretch): 1080p -> 312x312, 4K (3840x2160) -> 432x432, portrait
1080x1920 -> 312x312 (vertical-first on Pillow 13). Inputs are real
photographs from scikit-image resized with OpenCV to the frame size.

Both CPU paths are measured in the same run, interleaved repeat by repeat (so
a burst of load on a shared machine hits both), after a warm-up; the table
shows medians and the ratio, plus the CPU path on one thread (what the
avoided copies alone buy).

Note: the reference chain runs torch ops, after which torch's OpenMP worker
spins on a core for a while (OpenMP's default wait policy). Interleaved with
the reference, the CPU path's second thread competes with that spinning
worker; ``OMP_WAIT_POLICY=PASSIVE`` shows the path without it. Run both. Each path writes into the same preallocated
(1, 3, H, W) float32 buffer; for the reference chain that is
``preprocess_reference`` followed by a copy into the buffer, as
``api.preprocess_into`` does. The CPU result is checked bit-identical to the
reference before timing.

On a machine with CUDA the Triton path is timed too, with CUDA events:
``host`` = numpy frame through the pinned staging buffer, H2D copy and kernel;
``kernel`` = frame already on the device. Without CUDA the script says it
skipped them and why; it never prints GPU numbers it did not measure.

    python development/bench_preprocess.py [--repeats 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np
import PIL
import skimage.data
import torch

from inference_accel.preprocess.cpu import THREADS, preprocess_cpu
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.pillow_resize import vertical_first
from inference_accel.preprocess.reference import preprocess_reference

CASES = [
    ("1080p -> 312", (1080, 1920), (312, 312), "astronaut"),
    ("4K -> 432", (2160, 3840), (432, 432), "coffee"),
    ("portrait 1080x1920 -> 312", (1920, 1080), (312, 312), "chelsea"),
]


def photograph(name: str, frame_hw: tuple[int, int]) -> np.ndarray:
    rgb = getattr(skimage.data, name)()
    return np.ascontiguousarray(cv2.resize(rgb[:, :, ::-1], (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_CUBIC))


def time_cpu_paths(frame: np.ndarray, input_hw, repeats: int) -> dict:
    out = torch.empty((1, 3) + tuple(input_hw))
    geometry = plan_geometry(frame.shape[:2], input_hw)

    def reference() -> None:
        x, _ = preprocess_reference(frame, input_hw)
        out[0].copy_(x[0])

    def fast() -> None:
        preprocess_cpu(frame, out, 0, geometry)

    def fast_one_thread() -> None:
        preprocess_cpu(frame, out, 0, geometry, threads=1)

    fast()
    expected, _ = preprocess_reference(frame, input_hw)
    exact = bool(torch.equal(out[0], expected[0]))
    paths = {"reference_ms": reference, "cpu_ms": fast, "cpu_1thread_ms": fast_one_thread}
    for _ in range(3):
        for run in paths.values():
            run()
    times: dict[str, list[float]] = {key: [] for key in paths}
    for _ in range(repeats):
        for key, run in paths.items():
            start = time.perf_counter()
            run()
            times[key].append((time.perf_counter() - start) * 1e3)
    ref_ms, cpu_ms = times["reference_ms"], times["cpu_ms"]
    return {
        "reference_ms": statistics.median(ref_ms),
        "cpu_ms": statistics.median(cpu_ms),
        "cpu_1thread_ms": statistics.median(times["cpu_1thread_ms"]),
        "speedup": statistics.median(ref_ms) / statistics.median(cpu_ms),
        "cpu_bit_identical": exact,
    }


def time_triton(frame: np.ndarray, input_hw, repeats: int) -> dict:
    from inference_accel.preprocess.triton_launch import TritonPreprocessor

    device = torch.device("cuda")
    pre = TritonPreprocessor()
    out = torch.empty((1, 3) + tuple(input_hw), device=device)
    geometry = plan_geometry(frame.shape[:2], input_hw)
    on_device = torch.from_numpy(frame).to(device)
    expected, _ = preprocess_reference(frame, input_hw)
    pre(frame, out, 0, geometry)
    torch.cuda.synchronize()
    exact = bool(torch.equal(out[0].cpu(), expected[0]))
    results = {}
    for label, source in (("triton_host_ms", frame), ("triton_kernel_ms", on_device)):
        for _ in range(5):
            pre(source, out, 0, geometry)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            pre(source, out, 0, geometry)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        results[label] = statistics.median(times)
    results["triton_bit_identical"] = exact
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed repeats per path and case")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    gpu_note = (
        f"Triton timed on {torch.cuda.get_device_name(0)}"
        if cuda
        else f"Triton path skipped: torch.cuda is not available (torch {torch.__version__}, no GPU/driver visible)"
    )
    meta = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_threads_used": THREADS,
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "repeats": args.repeats,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "gpu": gpu_note,
    }
    rows = []
    for name, frame_hw, input_hw, photo in CASES:
        frame = photograph(photo, frame_hw)
        row = {
            "case": name,
            "frame_hw": list(frame_hw),
            "input_hw": list(input_hw),
            "pass_order": "vertical first" if vertical_first(frame_hw, input_hw) else "horizontal first",
            **time_cpu_paths(frame, input_hw, args.repeats),
        }
        if cuda:
            row.update(time_triton(frame, input_hw, args.repeats))
        rows.append(row)

    print(f"Pillow {PIL.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU cores, "
          f"CPU path threads {THREADS}, median of {args.repeats} repeats, "
          f"OMP_WAIT_POLICY={meta['OMP_WAIT_POLICY']}")
    header = f"{'case':<28} {'order':<17} {'reference ms':>12} {'cpu ms':>8} {'ratio':>6} {'cpu 1-thread ms':>15} {'exact':>6}"
    if cuda:
        header += f" {'triton host ms':>14} {'triton kernel ms':>16}"
    print(header)
    for r in rows:
        line = (f"{r['case']:<28} {r['pass_order']:<17} {r['reference_ms']:>12.2f} {r['cpu_ms']:>8.2f} "
                f"{r['speedup']:>5.2f}x {r['cpu_1thread_ms']:>15.2f} {str(r['cpu_bit_identical']):>6}")
        if cuda:
            line += f" {r['triton_host_ms']:>14.3f} {r['triton_kernel_ms']:>16.3f}"
        print(line)
    print(gpu_note)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"meta": meta, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
