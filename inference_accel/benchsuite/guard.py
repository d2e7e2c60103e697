"""Regression guard: has the fast/reference fps ratio dropped on this kind of machine?

Quick mode (:func:`quick_run`: two cells of the matrix, a few frames of one
video, one run) measures the all-fast and the all-reference configuration
in the same run and takes their fps ratio. A ratio, never an absolute time:
load on a shared machine slows both alike. :func:`judge` compares it with
the committed matrix JSON (``docs/bench/matrix.json``) of the **same machine
class** (:func:`~inference_accel.benchsuite.machine.machine_class`), same
engine and video: the floor is :data:`FLOOR_FRACTION` of the committed ratio.
With no committed figure for this class the floor is :data:`FLOOR_WITHOUT_BASELINE`
(the fast paths must not be slower than the reference), and the verdict says so.
A drop below the floor is printed loudly and ``development/bench_guard.py``
exits 1; whether CI calls it is the lead's decision.

>>> judge(current=2.4, baseline=2.5).ok
True
>>> verdict = judge(current=1.2, baseline=2.5)
>>> verdict.ok, round(verdict.floor, 2)
(False, 1.5)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FLOOR_FRACTION = 0.6  # the ratio may fall to 60% of the committed one (noise of short runs on shared machines)
FLOOR_WITHOUT_BASELINE = 1.0  # no committed figure for this machine class: fast must at least not lose
QUICK_VIDEO = "1080p"  # where the fast paths gain most on a CPU (2.5x), so a loss stands out from noise
QUICK_FRAMES = 4
QUICK_WARMUP = 1
FAST = {"preproc": "fast", "postproc": "fast", "depth": 1}
REFERENCE = {"preproc": "reference", "postproc": "reference", "cuda_graphs": "off", "depth": 1}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    current: float
    floor: float
    baseline: float | None
    note: str

    def lines(self) -> list[str]:
        head = "PASS" if self.ok else "REGRESSION"
        base = f"committed {self.baseline:.2f}x" if self.baseline is not None else "no committed ratio"
        text = [f"bench guard {head}: fast/reference fps ratio {self.current:.2f}x, floor {self.floor:.2f}x ({base}); "
                f"{self.note}"]
        if not self.ok:
            bar = "!" * 78
            text = [bar, *text, "the fast paths lost ground against the reference on this machine class", bar]
        return text


def judge(current: float, baseline: float | None, floor_fraction: float = FLOOR_FRACTION) -> Verdict:
    """The verdict for ratio ``current`` against the committed ``baseline`` ratio (None: none committed)."""
    if not 0 < floor_fraction <= 1:
        raise ValueError(f"floor_fraction must be in (0, 1], got {floor_fraction}")
    if baseline is None:
        return Verdict(current >= FLOOR_WITHOUT_BASELINE, current, FLOOR_WITHOUT_BASELINE, None,
                       f"floor {FLOOR_WITHOUT_BASELINE:.2f}x: no committed figure to compare with")
    floor = floor_fraction * baseline
    return Verdict(current >= floor, current, floor, baseline, f"floor = {floor_fraction:.0%} of the committed ratio")


def ratio_of(document: dict, engine: str, video: str) -> float | None:
    """fps(all fast, depth 1) / fps(all reference, depth 1) of one engine and video in a matrix document.

    The fast cell takes CUDA graphs on where that cell ran (TensorRT), else off.
    """
    from inference_accel.benchsuite.matrix import cell_rows, find_cell

    rows = [r for r in cell_rows(document, engine, video) if r["status"] == "ok"]
    reference = find_cell(rows, **REFERENCE)
    fast = find_cell(rows, **FAST, cuda_graphs="on") or find_cell(rows, **FAST, cuda_graphs="off")
    if reference is None or fast is None or not reference["fps"]["mean"]:
        return None
    return fast["fps"]["mean"] / reference["fps"]["mean"]


def baseline_ratio(path: Path, machine_class: str, engine: str, video: str) -> tuple[float | None, str]:
    """The committed ratio of this machine class, engine and video, and where it came from (or why none)."""
    if not path.is_file():
        return None, f"no committed matrix JSON at {path}"
    document = json.loads(path.read_text())
    if document.get("machine_class") != machine_class:
        return None, f"{path} is of machine class {document.get('machine_class')!r}, this machine is {machine_class!r}"
    ratio = ratio_of(document, engine, video)
    if ratio is None:
        return None, f"{path} has no fast and reference {engine} cells on {video}"
    return ratio, f"{path} ({document.get('created_utc', '?')})"


def quick_run(video: str = QUICK_VIDEO, frames: int = QUICK_FRAMES, warmup: int = QUICK_WARMUP,
              model: str | None = None, device: str = "cpu", progress: bool = False) -> dict:
    """The two cells of the guard, one run: a small matrix document."""
    from inference_accel.benchsuite.matrix import MatrixSettings, all_cells, run_matrix

    pinned = {"depth": 1}
    document = run_matrix(MatrixSettings(videos=[video], runs=1, frames=frames, warmup=warmup, model=model,
                                         device=device, pinned=pinned), progress=progress,
                          cells=[c for c in all_cells(pinned) if c.flags.preproc_fast == c.flags.postproc_fast])
    return document


def run_guard(baseline_path: Path, current: dict | None = None, floor_fraction: float = FLOOR_FRACTION,
              **quick) -> tuple[Verdict | None, list[str], dict]:
    """Measure (or take ``current``), compare, and say so: ``(verdict, lines, the judged document)``.

    The verdict is None when no ratio could be measured.
    """
    document = current if current is not None else quick_run(**quick)
    engine = next((e["name"] for e in document.get("engines", []) if e.get("status") == "ok"), None)
    video = (document.get("settings", {}).get("videos") or [None])[0]
    ratio = ratio_of(document, engine, video) if engine and video else None
    if ratio is None:
        return None, [f"bench guard: no fast/reference ratio measured (engine {engine}, video {video}); nothing judged"], document
    machine = document.get("machine_class", "?")
    baseline, source = baseline_ratio(baseline_path, machine, engine, video)
    verdict = judge(ratio, baseline, floor_fraction)
    return verdict, [f"bench guard: {engine} on {video}, machine class {machine}; baseline: {source}", *verdict.lines()], document
