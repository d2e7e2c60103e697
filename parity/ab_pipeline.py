"""A/B parity: the pipeline with fast paths vs the reference paths, on real media.

A thin entry point to ``inference-accel parity`` (:mod:`inference_accel.ab`):
it runs ``inference-accel parity ours ours:preproc=reference,postproc=reference``
with the options given (``--input``, ``--frames``, ``--model``, ``--out``, ...;
``--video`` is kept as a synonym of ``--input``). Exit status 0 only when every
frame matches (boxes, scores, classes exact; every mask pixel identical).

    python parity/ab_pipeline.py                                   # 1080p sample, 10 frames
    python parity/ab_pipeline.py --video 312p --frames 30 --resize-mode letterbox
    python parity/ab_pipeline.py --video my.mp4 --model my_package/ --out ab-report/
"""

from __future__ import annotations

import sys

from inference_accel.cli import main as cli_main

SIDES = ["ours:preproc=fast,postproc=fast", "ours:preproc=reference,postproc=reference"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    args = ["--input" if a == "--video" else a for a in args]
    return cli_main(["parity", *SIDES, *args])


if __name__ == "__main__":
    sys.exit(main())
