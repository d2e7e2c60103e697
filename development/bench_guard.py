"""Regression guard, quick mode: the fast/reference fps ratio against the committed matrix JSON.

Runs two cells of the flag matrix (all fast and all reference, depth 1) on a
few frames of one video, one run (well under 2 minutes on 2 cores), and
compares their fps ratio with the ratio in the committed
``docs/bench/matrix.json`` of the same machine class (same engine and
video). The floor is 60% of the committed ratio (``--floor-fraction``); with
no committed figure for this machine class it is 1.0 (fast must not lose to
the reference). Absolute times are never judged: a shared machine's load
slows both cells alike. A drop below the floor is printed loudly and the
exit status is 1; 0 otherwise; 2 when no ratio could be measured.

    python development/bench_guard.py [--video 1080p] [--frames 4] [--baseline docs/bench/matrix.json]
    python development/bench_guard.py --current run.json      # judge a matrix JSON instead of measuring
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference_accel.benchsuite.guard import FLOOR_FRACTION, QUICK_FRAMES, QUICK_VIDEO, QUICK_WARMUP, run_guard

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=ROOT / "docs" / "bench" / "matrix.json")
    parser.add_argument("--current", type=Path, help="a matrix JSON to judge instead of measuring")
    parser.add_argument("--video", default=QUICK_VIDEO, help=f"sample name or video path (default {QUICK_VIDEO})")
    parser.add_argument("--frames", type=int, default=QUICK_FRAMES, help=f"timed frames (default {QUICK_FRAMES})")
    parser.add_argument("--warmup", type=int, default=QUICK_WARMUP)
    parser.add_argument("--model", help="default: the cached seg-nano export")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--floor-fraction", type=float, default=FLOOR_FRACTION)
    parser.add_argument("--json", type=Path, help="write the measured two-cell matrix JSON here")
    args = parser.parse_args(argv)
    current = json.loads(args.current.read_text()) if args.current else None
    verdict, lines, document = run_guard(args.baseline, current, args.floor_fraction, video=args.video, frames=args.frames,
                               warmup=args.warmup, model=args.model, device=args.device)
    if args.json:
        args.json.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print("\n".join(lines), flush=True)
    if verdict is None:
        return 2
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
