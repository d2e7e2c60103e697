"""The flag matrix: every combination of the four flags, on every engine and video, several runs each.

A *cell* is one combination of the four flags of :mod:`inference_accel.flags`
(``INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED``, ``..._POSTPROC_ENABLED``,
``ENABLE_AUTO_CUDA_GRAPHS_FOR_TRT_BACKEND``, ``RFDETR_PIPELINE_DEPTH``): 16
cells. A cell that cannot apply on this machine with this engine is a row
``"n/a"`` with the reason, never left out: CUDA graphs with an onnxruntime
engine or without a GPU (:func:`inference_accel.frame_graph.process_reason`,
:func:`~inference_accel.frame_graph.engine_reason`), or a fast path that
dispatch cannot choose here (its verdicts, as ``doctor`` prints them).

Engines: on a CPU, onnxruntime; on a GPU, TensorRT (an engine built from the
ONNX export on first use and cached beside it, see
:mod:`~inference_accel.engine.tensorrt_build`) and onnxruntime-gpu. The GPU
code path is written but has not run on a GPU.

Timing, per run of a cell: a fresh pipeline (not timed), ``warmup`` frames,
then ``frames`` timed frames decoded from the video file as ``bench`` does;
fps is timed frames over wall time (decode included). Runs go round the
cells (run 1 of every cell, then run 2, ...), so load on a shared machine
hits every cell alike. Peak RSS is the process's high-water mark over the
cell's run, model load included (``VmHWM`` reset through
``/proc/self/clear_refs`` on Linux; elsewhere the process peak so far,
labelled so); peak device memory is torch's allocator peak on a GPU.

>>> len(all_cells())
16
>>> all_cells()[0].label
'pre=reference post=reference graphs=off depth=1'
"""

from __future__ import annotations

import itertools
import logging
import resource
import statistics
import sys
import time
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from inference_accel.flags import CUDA_GRAPHS_FLAG, PIPELINE_DEPTH_FLAG, POSTPROC_FLAG, PREPROC_FLAG, Flags

logger = logging.getLogger("inference_accel")

SCHEMA = "inference_accel.bench_matrix/1"
STAGES = ("decode", "preprocess", "inference", "postprocess", "response")
FLAG_NAMES = {"preproc": PREPROC_FLAG, "postproc": POSTPROC_FLAG, "cuda_graphs": CUDA_GRAPHS_FLAG,
              "depth": PIPELINE_DEPTH_FLAG}


@dataclass(frozen=True)
class Cell:
    """One combination of the four flags."""

    flags: Flags

    @property
    def label(self) -> str:
        f = self.flags
        return (f"pre={'fast' if f.preproc_fast else 'reference'} post={'fast' if f.postproc_fast else 'reference'} "
                f"graphs={'on' if f.cuda_graphs else 'off'} depth={f.pipeline_depth}")

    @property
    def short(self) -> str:
        """A compact label for chart axes: ``F/F g1 d1`` (F fast, R reference).

        >>> Cell(Flags(preproc_fast=False, cuda_graphs=False)).short
        'R/F g0 d1'
        """
        f = self.flags
        return (f"{'F' if f.preproc_fast else 'R'}/{'F' if f.postproc_fast else 'R'} "
                f"g{int(f.cuda_graphs)} d{f.pipeline_depth}")

    def as_dict(self) -> dict:
        f = self.flags
        return {"preproc": "fast" if f.preproc_fast else "reference",
                "postproc": "fast" if f.postproc_fast else "reference",
                "cuda_graphs": "on" if f.cuda_graphs else "off", "depth": f.pipeline_depth}


def all_cells(pinned: dict | None = None) -> list[Cell]:
    """Every combination of the four flags, reference first; ``pinned`` fixes axes (``{"depth": 1}``).

    >>> [c.label for c in all_cells({"preproc": True, "postproc": True, "cuda_graphs": False})]
    ['pre=fast post=fast graphs=off depth=1', 'pre=fast post=fast graphs=off depth=2']
    """
    pinned = pinned or {}
    unknown = set(pinned) - set(FLAG_NAMES)
    if unknown:
        raise ValueError(f"unknown matrix axes {sorted(unknown)}; the axes are {sorted(FLAG_NAMES)}")
    axes = {
        "preproc": [pinned["preproc"]] if "preproc" in pinned else [False, True],
        "postproc": [pinned["postproc"]] if "postproc" in pinned else [False, True],
        "cuda_graphs": [pinned["cuda_graphs"]] if "cuda_graphs" in pinned else [False, True],
        "depth": [pinned["depth"]] if "depth" in pinned else [1, 2],
    }
    return [Cell(Flags(preproc_fast=p, postproc_fast=q, cuda_graphs=g, pipeline_depth=d))
            for p, q, g, d in itertools.product(axes["preproc"], axes["postproc"], axes["cuda_graphs"], axes["depth"])]


# -- engines ------------------------------------------------------------------------------
@dataclass
class EngineChoice:
    """One engine the matrix runs: ``name`` (tensorrt, onnxruntime, onnxruntime-gpu), its model and device."""

    name: str
    model: str | None
    device: str
    reason: str | None = None  # None: it can run here

    def as_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "device": self.device,
                "status": "ok" if self.reason is None else "n/a", "reason": self.reason}


def tensorrt_plan(model: str | None) -> tuple[str | None, str | None]:
    """``(plan path, None)``: the model's TensorRT engine, built from its ONNX and cached on first use;
    ``(None, reason)`` when none can be had. GPU code path: not yet run on a GPU."""
    from inference_accel.engine.tensorrt_build import build_engine, default_plan_path
    from inference_accel.errors import InferenceAccelError
    from inference_accel.models.source import resolve_model

    source = resolve_model(model)
    if source.kind == "tensorrt":
        return str(source.path), None
    onnx = Path(source.path)
    plan = default_plan_path(onnx)
    if plan.is_file() and plan.stat().st_mtime >= onnx.stat().st_mtime:
        return str(plan), None
    try:
        logger.info("building a TensorRT engine from %s (once; cached as %s)", onnx, plan)
        return str(build_engine(onnx, plan)), None
    except InferenceAccelError as exc:
        return None, f"no TensorRT engine: {exc}"


def engines_for(device: str, model: str | None) -> list[EngineChoice]:
    """The engines of this device: ``cpu`` -> onnxruntime; ``cuda`` -> TensorRT and onnxruntime-gpu."""
    from inference_accel import extras

    is_plan = model is not None and str(model).lower().endswith(".plan")
    if device == "cpu":
        reason = "a TensorRT .plan needs a CUDA GPU" if is_plan else None
        return [EngineChoice("onnxruntime", model, "cpu", reason)]
    plan, why = tensorrt_plan(model)
    engines = [EngineChoice("tensorrt", plan, "cuda", why)]
    if is_plan:
        engines.append(EngineChoice("onnxruntime-gpu", model, "cuda", "the model is a TensorRT .plan; onnxruntime needs the ONNX"))
    else:
        providers = extras.onnxruntime().get_available_providers()
        reason = None if "CUDAExecutionProvider" in providers else (
            f"onnxruntime has no CUDAExecutionProvider (providers: {', '.join(providers)}): install onnxruntime-gpu")
        engines.append(EngineChoice("onnxruntime-gpu", model, "cuda", reason))
    return engines


# -- why a cell cannot apply ------------------------------------------------------------------
def cell_reason(cell: Cell, engine: EngineChoice) -> str | None:
    """Why ``cell`` cannot apply with ``engine`` on this machine (None: it runs)."""
    import inference_accel.postprocess.api  # noqa: F401 - registers the ops' implementations
    import inference_accel.preprocess.api  # noqa: F401
    from inference_accel import dispatch, frame_graph

    if engine.reason is not None:
        return f"engine {engine.name} n/a: {engine.reason}"
    flags = cell.flags
    if flags.cuda_graphs:
        if engine.name != "tensorrt":
            # onnxruntime's run cannot be captured: the flag would change nothing (the same run as graphs=off).
            why = frame_graph.engine_reason(types.SimpleNamespace(name=engine.name))
            device = frame_graph.process_reason(replace(flags, preproc_fast=True, postproc_fast=True))
            extra = f"; {device}" if device and device.startswith("torch.cuda") else ""
            return f"{CUDA_GRAPHS_FLAG}=true has no effect: {why}{extra}"
    for op, wanted in (("preprocess", flags.preproc_fast), ("postprocess", flags.postproc_fast)):
        if not wanted:
            continue
        fast = [v for v in dispatch.explain(op, flags) if v.implementation.name != dispatch.REFERENCE]
        if fast and not any(v.available for v in fast):
            reasons = "; ".join(f"{v.implementation.name}: {v.reason}" for v in fast)
            return f"{op} fast path unavailable here ({reasons})"
    return None


# -- memory -----------------------------------------------------------------------------------
class PeakRss:
    """The process's resident-set high-water mark over a span (MB), and how it was measured.

    >>> with PeakRss() as peak: data = bytearray(8 << 20)
    >>> peak.mb > 0 and peak.method in (PeakRss.RESET, PeakRss.PROCESS)
    True
    """

    RESET = "VmHWM, reset at the start (clear_refs)"
    PROCESS = "ru_maxrss: process peak so far"

    @staticmethod
    def method_here() -> str:
        """The method this machine allows (without resetting anything)."""
        import os

        return PeakRss.RESET if os.access("/proc/self/clear_refs", os.W_OK) else PeakRss.PROCESS

    def __enter__(self) -> PeakRss:
        self.method = self.PROCESS
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.method = self.RESET
        except OSError:
            pass
        self.mb = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.mb = self.read()

    def read(self) -> float:
        if self.method == self.RESET:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024.0


class PeakDeviceMemory:
    """torch's CUDA allocator peak over a span (MB); ``None`` on a CPU.

    TensorRT's and onnxruntime-gpu's own allocations are outside torch's
    allocator and not counted (the JSON says so).
    """

    NOTE = "torch.cuda.max_memory_allocated (allocations outside torch's allocator not counted)"

    def __init__(self, device: str):
        self.device = device
        self.mb: float | None = None

    def __enter__(self) -> PeakDeviceMemory:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.mb = torch.cuda.max_memory_allocated() / 2**20


# -- one run ----------------------------------------------------------------------------------
@dataclass
class RunSample:
    fps: float
    frames: int
    stage_ms: dict[str, list[float]]
    implementations: dict[str, set]
    detections: list[int]
    peak_rss_mb: float
    peak_device_mb: float | None
    engine_name: str = ""
    frame_graphs: str = ""


def time_run(pipeline, video_path: Path, frames: int, warmup: int) -> tuple[float, list]:
    """``(fps, timed results)``: ``warmup`` untimed frames, then ``frames`` timed ones, as ``bench`` times them."""
    from inference_accel.media import VideoFrames

    video = VideoFrames(video_path, limit=frames + warmup)
    results = []
    start = time.perf_counter() if warmup == 0 else None
    stream = pipeline.run(video)
    try:
        for result in stream:
            if result.index < warmup:
                if result.index == warmup - 1:
                    start = time.perf_counter()
                continue
            results.append(result)
    finally:
        stream.close()
    elapsed = time.perf_counter() - start if start is not None else 0.0
    if not results:
        raise ValueError(f"video {video_path} has no frames past the {warmup} warm-up frame(s)")
    return (len(results) / elapsed if elapsed > 0 else 0.0), results


def run_cell(cell: Cell, engine: EngineChoice, video_path: Path, frames: int, warmup: int,
             pipeline_options: dict) -> RunSample:
    """One run of ``cell``: a fresh pipeline (untimed), warm-up, timed frames; memory peaks over all of it."""
    from inference_accel.pipeline import SegmentationPipeline

    with PeakRss() as rss, PeakDeviceMemory(engine.device) as device_memory:
        pipeline = SegmentationPipeline(engine.model, device=engine.device, flags=cell.flags, **pipeline_options)
        fps, results = time_run(pipeline, video_path, frames, warmup)
        graphs = "on" if pipeline.frame_graphs is not None else f"off ({pipeline.frame_graph_reason})"
        engine_name = pipeline.engine.name
        del pipeline
    impls: dict[str, set] = {}
    for r in results:
        for stage, impl in r.implementations.items():
            impls.setdefault(stage, set()).add(impl)
    return RunSample(
        fps=fps, frames=len(results),
        stage_ms={s: [r.times_ms.get(s, 0.0) for r in results] for s in STAGES},
        implementations=impls, detections=[len(r.detections) for r in results],
        peak_rss_mb=rss.mb, peak_device_mb=device_memory.mb, engine_name=engine_name, frame_graphs=graphs,
    )


def summarize(samples: Sequence[RunSample]) -> dict:
    """A cell's figures over its runs: fps mean and spread, per-stage medians over every timed frame, peaks.

    >>> s = RunSample(2.0, 1, {k: [1.0] for k in STAGES}, {"preprocess": {"cpu"}}, [3], 100.0, None)
    >>> summarize([s, replace(s, fps=4.0)])["fps"]
    {'mean': 3.0, 'stdev': 1.4142135623730951, 'min': 2.0, 'max': 4.0}
    """
    fps = [s.fps for s in samples]
    impls: dict[str, set] = {}
    for s in samples:
        for stage, names in s.implementations.items():
            impls.setdefault(stage, set()).update(names)
    devices = [s.peak_device_mb for s in samples if s.peak_device_mb is not None]
    return {
        "fps": {"mean": statistics.fmean(fps), "stdev": statistics.stdev(fps) if len(fps) > 1 else 0.0,
                "min": min(fps), "max": max(fps)},
        "median_ms": {stage: statistics.median(v for s in samples for v in s.stage_ms[stage]) for stage in STAGES},
        "peak_rss_mb": max(s.peak_rss_mb for s in samples),
        "peak_device_mb": max(devices) if devices else None,
        "implementations": {k: sorted(v) for k, v in sorted(impls.items())},
        "mean_detections": statistics.fmean(d for s in samples for d in s.detections),
        "frame_graphs": sorted({s.frame_graphs for s in samples}),
        "runs": [{"fps": s.fps, "frames": s.frames,
                  "median_ms": {st: statistics.median(s.stage_ms[st]) for st in STAGES},
                  "peak_rss_mb": s.peak_rss_mb, "peak_device_mb": s.peak_device_mb} for s in samples],
    }


# -- the whole matrix --------------------------------------------------------------------------
@dataclass
class MatrixSettings:
    videos: list[str]
    runs: int = 3
    frames: int = 30
    warmup: int = 2
    model: str | None = None
    device: str = "cpu"
    pinned: dict = field(default_factory=dict)
    pipeline_options: dict = field(default_factory=dict)
    time_budget_s: float | None = None  # cell runs not started within it are "not run" (time budget)


def resolve_videos(names: Iterable[str]) -> list[tuple[str, Path]]:
    """``(name, path)`` per video: a sample name (rendered into the cache on first use) or a file path."""
    from inference_accel import media

    return [(name, media.resolve_source(name)) for name in names]


def run_matrix(settings: MatrixSettings, progress: bool = True, cells: Sequence[Cell] | None = None,
               run_cell_fn: Callable[..., RunSample] = run_cell) -> dict:
    """Run every cell (default: :func:`all_cells` of ``settings.pinned``) on every engine and video.

    Returns the run's JSON document (see the module docstring).

    Ctrl-C stops the run: the runs finished so far are kept (the cell in progress is dropped) and the
    document says ``"interrupted": true``.
    """
    from tqdm import tqdm

    from inference_accel.benchsuite.machine import describe_machine, machine_class
    from inference_accel.media import VideoFrames

    started = time.perf_counter()
    machine = describe_machine()
    engines = engines_for(settings.device, settings.model)
    cells = list(cells) if cells is not None else all_cells(settings.pinned)
    videos = resolve_videos(settings.videos)
    rows: list[dict] = []
    todo: list[tuple[dict, Cell, EngineChoice, Path]] = []
    for engine in engines:
        for name, path in videos:
            probe = VideoFrames(path, limit=1)
            hw = list(probe.size_hw)
            probe.capture.release()
            for cell in cells:
                reason = cell_reason(cell, engine)
                row = {"engine": engine.name, "device": engine.device, "video": name, "video_path": str(path),
                       "frame_hw": hw, "flags": cell.as_dict(), "label": cell.label, "short": cell.short,
                       "status": "n/a" if reason else "ok", "reason": reason}
                rows.append(row)
                if reason is None:
                    todo.append((row, cell, engine, path))
    samples: dict[int, list[RunSample]] = {id(row): [] for row, *_ in todo}
    total = len(todo) * settings.runs * (settings.frames + settings.warmup)
    bar = tqdm(total=total, desc="bench matrix", unit="frame", file=sys.stderr, disable=not progress)
    interrupted = False
    out_of_time = False
    try:
        for run in range(settings.runs):
            for row, cell, engine, path in todo:
                if settings.time_budget_s is not None and time.perf_counter() - started > settings.time_budget_s:
                    out_of_time = True
                    break
                bar.set_postfix_str(f"run {run + 1}/{settings.runs} {engine.name} {row['video']} {cell.short}")
                samples[id(row)].append(run_cell_fn(cell, engine, path, settings.frames, settings.warmup,
                                                    settings.pipeline_options))
                bar.update(settings.frames + settings.warmup)
            if out_of_time:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    for row, *_ in todo:
        done = samples[id(row)]
        if done:
            row.update(summarize(done))
            row["engine_name"] = done[0].engine_name
        else:
            why = f"time budget ({settings.time_budget_s:.0f} s) spent" if out_of_time else "interrupted"
            row.update(status="not run", reason=f"{why} before this cell ran")
    document = {
        "schema": SCHEMA,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "machine_class": machine_class(machine),
        "settings": {"videos": [n for n, _ in videos], "runs": settings.runs, "frames": settings.frames,
                     "warmup": settings.warmup, "model": settings.model or "cached seg-nano export",
                     "device": settings.device, "pinned_axes": {k: v for k, v in settings.pinned.items()},
                     **{k: v for k, v in settings.pipeline_options.items()}},
        "flag_names": FLAG_NAMES,
        "method": ("per run: fresh pipeline (untimed), warm-up frames, timed frames decoded from the file; "
                   "fps = timed frames / wall time (decode included); runs go round the cells; stage times "
                   "are medians over every timed frame of every run; peak RSS: " + PeakRss.method_here()
                   + "; peak device memory: " + PeakDeviceMemory.NOTE),
        "engines": [e.as_dict() for e in engines],
        "cells": rows,
        "elapsed_s": time.perf_counter() - started,
    }
    if interrupted:
        document["interrupted"] = True
    if out_of_time:
        document["time_budget_spent"] = True
    return document


def cell_rows(document: dict, engine: str | None = None, video: str | None = None) -> list[dict]:
    """The document's cells, optionally of one engine and one video."""
    return [r for r in document.get("cells", []) if (engine is None or r["engine"] == engine)
            and (video is None or r["video"] == video)]


def find_cell(rows: Iterable[dict], **flags) -> dict | None:
    """The first row whose flags include ``flags`` (``preproc="fast", depth=1``...)."""
    for row in rows:
        if all(row["flags"].get(k) == v for k, v in flags.items()):
            return row
    return None
