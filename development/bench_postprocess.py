"""Benchmark: sparse CPU postprocessing vs the dense reference.

Cases (``CASES``): seg-nano (Q=100, C=91, 78x78 mask logits) with 100
detections at 1080p, and seg-xlarge (Q=300, C=91, 156x156) with 300
detections at 4K; each mask a random polygon covering 5%, 20% or 50% of the
frame (drawn at the model input size, area-downsampled to the logit size and
scaled to logits). Implementations: the dense ``reference``; the sparse CPU
path with its ``numpy`` executor (1 thread) and its compiled ``native``
executor (1 and 2 threads).

Every measurement runs in a **fresh subprocess** (``--one``): it builds the
inputs, runs the implementation once to warm up, then ``repeats`` timed runs
(median reported). Peak memory is the growth of the process's peak resident
set during one run after the warm-up: the kernel's peak mark (``VmHWM``) is
reset through ``/proc/self/clear_refs`` just before the run and compared with
the resident set (``VmRSS``) at that moment. It covers torch's allocations,
which ``tracemalloc`` does not see; it is page-granular and counts only pages
touched, so small figures are approximate. Ratios compare runs of the same
invocation.

"Ideal" is frame area / crop area: the speed-up a method whose cost is
proportional to the tight crop area (instead of the frame area) would get.

    python development/bench_postprocess.py [--json FILE] [--cases nano-05,...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zlib

import numpy as np

CASES = {
    # name: (queries, classes, mask side, frame (h, w), detections, fill, dense repeats)
    "nano-1080p-05": (100, 91, 78, (1080, 1920), 100, 0.05, 3),
    "nano-1080p-20": (100, 91, 78, (1080, 1920), 100, 0.20, 3),
    "nano-1080p-50": (100, 91, 78, (1080, 1920), 100, 0.50, 3),
    "xlarge-4k-05": (300, 91, 156, (2160, 3840), 300, 0.05, 1),
    "xlarge-4k-20": (300, 91, 156, (2160, 3840), 300, 0.20, 1),
    "xlarge-4k-50": (300, 91, 156, (2160, 3840), 300, 0.50, 1),
}
SPARSE_REPEATS = 7


def make_inputs(name: str):
    """Deterministic raw outputs for a case: (logits, boxes, mask logits, frame_hw)."""
    import cv2
    import torch

    q, c, side, frame_hw, n_det, fill, _ = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    logits = np.full((q, c), -8.0, np.float32)
    logits[np.arange(n_det), rng.integers(0, c, n_det)] = rng.uniform(1.0, 6.0, n_det)
    boxes = np.clip(rng.random((q, 4)), 0.05, 0.95).astype(np.float32)
    draw_hw = (side * 4, side * 4)
    masks = np.empty((q, side, side), np.float32)
    for i in range(q):
        v = int(rng.integers(8, 600))
        ang = np.sort(rng.uniform(0, 2 * np.pi, v))
        rad = rng.uniform(0.55, 1.0, v)
        d = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
        unit = 0.5 * np.sum(rad * np.roll(rad, -1) * np.sin(d))
        r = np.sqrt(fill * draw_hw[0] * draw_hw[1] / unit)
        cx, cy = rng.uniform(0.35, 0.65, 2) * draw_hw[0]
        pts = np.stack([cx + r * rad * np.cos(ang), cy + r * rad * np.sin(ang)], 1)
        poly = np.zeros(draw_hw, np.uint8)
        cv2.fillPoly(poly, [np.round(pts).astype(np.int32)], 1)
        frac = cv2.resize(poly.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
        masks[i] = (frac - 0.5) * 12 + rng.normal(0, 0.02, (side, side))
    return torch.from_numpy(logits), torch.from_numpy(boxes), torch.from_numpy(masks), frame_hw


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_growth(run) -> int:
    """Peak resident-set growth (bytes) while ``run()`` executes."""
    if _reset_peak():
        before = _status_kb("VmRSS")
        run()
        return (_status_kb("VmHWM") - before) * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # fallback: first run only
    run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024


def measure_one(name: str, impl: str, repeats: int, threads: int) -> dict:
    """Run in a fresh process: time and peak-memory growth of one implementation."""
    import torch

    from inference_accel.postprocess.reference import postprocess_reference
    from inference_accel.postprocess.sparse_cpu import postprocess_sparse_cpu, torch_cpu_arith

    torch_cpu_arith()  # the one-time self-check is not part of a frame
    logits, boxes, masks, frame_hw = make_inputs(name)

    def run():
        if impl == "reference":
            return postprocess_reference(logits, boxes, masks, frame_hw)
        return postprocess_sparse_cpu(
            logits, boxes, masks, frame_hw, threads=threads, native=impl == "native"
        )

    det = run()  # warm-up: first-call allocations (tables, pools) are not per frame
    peak = _peak_growth(run)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    fh, fw = frame_hw
    row = {
        "case": name,
        "impl": impl if impl == "reference" else f"{impl}-{threads}t",
        "detections": len(det),
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_rss_growth_bytes": int(peak),
        "frame_area": fh * fw * len(det),
    }
    if impl != "reference":
        shapes = det.mask._crop_shapes  # noqa: SLF001
        row["crop_area"] = int((shapes[:, 0].astype(np.int64) * shapes[:, 1]).sum())
        row["fill"] = float(det.mask.area.sum() / row["frame_area"])
        row["rle_bytes"] = int(sum(r.nbytes for r in det.mask._rles))  # noqa: SLF001
    return row


def run_case(name: str, quick: bool) -> list[dict]:
    rows = []
    dense_repeats = 1 if quick else CASES[name][-1]
    plan = [
        ("reference", dense_repeats, 1),
        ("numpy", SPARSE_REPEATS, 1),
        ("native", SPARSE_REPEATS, 1),
        ("native", SPARSE_REPEATS, 2),
    ]
    for impl, repeats, threads in plan:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, impl, str(repeats), str(threads)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def report(rows: list[dict]) -> str:
    lines = [
        f"{'case':<16} {'impl':<15} {'dets':>4} {'median s':>9} {'speed-up':>8} {'ideal':>6} "
        f"{'of ideal':>8} {'peak MB':>8} {'mem ratio':>9} {'fill':>5}"
    ]
    by_case: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["impl"]] = r
    for case, impls in by_case.items():
        ref = impls.get("reference")
        for impl, r in impls.items():
            speed = ref["median_s"] / r["median_s"] if ref else float("nan")
            ideal = r["frame_area"] / r["crop_area"] if "crop_area" in r else 1.0
            mem = r["peak_rss_growth_bytes"] / 2**20
            mem_ratio = ref["peak_rss_growth_bytes"] / max(r["peak_rss_growth_bytes"], 4096) if ref else float("nan")
            lines.append(
                f"{case:<16} {impl:<15} {r['detections']:>4} {r['median_s']:>9.4f} {speed:>7.1f}x "
                f"{ideal:>5.1f}x {speed / ideal:>7.2f}x {mem:>8.1f} {mem_ratio:>8.0f}x "
                f"{r.get('fill', float('nan')):>5.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write every measurement to this file")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--quick", action="store_true", help="one dense repeat per case")
    parser.add_argument("--one", nargs=4, metavar=("CASE", "IMPL", "REPEATS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        case, impl, repeats, threads = args.one
        print(json.dumps(measure_one(case, impl, int(repeats), int(threads))))
        return 0
    rows = []
    for name in args.cases.split(","):
        rows.extend(run_case(name, args.quick))
        print(f"done {name}", file=sys.stderr, flush=True)
    print(report(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
