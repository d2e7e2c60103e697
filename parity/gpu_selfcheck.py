"""GPU self-check: bitwise parity and fps of every GPU fast path, in one command.

For a person with an NVIDIA GPU (we have none). On this GPU it checks, with
**exact** comparisons only (no tolerance anywhere):

1. preprocessing: the Triton kernel (through ``preprocess_into``) against the
   PIL reference chain, fp32 and fp16 outputs: the output tensor equals the
   reference tensor (cast to the output dtype) byte for byte, on frames from
   1x1 to 8K, portrait and strips, at three model input sizes;
2. postprocessing: the Triton crop-RLE kernels (through ``postprocess``)
   against the dense reference computed *on the same GPU* (torch CUDA's
   ``F.interpolate``, chunked so an 8K frame never needs an (N, H, W) mask):
   boxes, scores and class ids identical, every mask pixel identical;
3. end to end: the pipeline on the sample videos (312p, 1080p) with the fast
   paths on and off, on the cached seg-nano ONNX (onnxruntime-gpu) and on a
   TensorRT engine built here from it (when the full ``tensorrt`` is
   installed): detections of the fast paths identical to the reference paths,
   whole-frame CUDA graphs identical to the eager (graphs off) run, and fps.
4. fps: then, if the time left allows, a short flag matrix (``inference-accel
   bench --matrix``'s code: every flag combination on TensorRT and
   onnxruntime-gpu, 8 frames of the 1080p sample), written as a GPU benchmark
   page (``BENCHMARKS.md``, ``bench/matrix.json`` and charts in ``--out``);
   ``--skip-bench`` leaves it out.

    python parity/gpu_selfcheck.py                    # quick sizes, < 10 minutes on a desktop GPU
    python parity/gpu_selfcheck.py --full             # more frames per video
    python parity/gpu_selfcheck.py --model engine.plan

It writes ``gpu_selfcheck.json`` and ``gpu_selfcheck.md`` (``--out DIR``):
the Markdown is the summary to paste into an issue, with the GPU, driver,
CUDA, TensorRT, torch, triton, Pillow and inference_accel versions. Each part
has a time budget; cases left out for time are listed as not run.

Exit status: 0 every case ran and passed; 1 a case failed; 2 no CUDA device;
3 nothing failed but some cases were not run (time budget).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

NO_CUDA_MESSAGE = (
    "gpu_selfcheck: no CUDA device (torch.cuda.is_available() is False): run it on a machine with an NVIDIA GPU"
)
EXIT_OK, EXIT_FAILED, EXIT_NO_GPU, EXIT_INCOMPLETE = 0, 1, 2, 3

# Sizes. Quick: what fits in 10 minutes on a desktop GPU with a cold cache.
PREPROC_FRAMES = [(1080, 1920), (1920, 1080), (2160, 3840), (4320, 7680), (1, 1), (1, 517), (517, 1), (311, 313),
                  (97, 4000)]
PREPROC_TARGETS = [(312, 312), (432, 432), (624, 624)]
# (frame_hw, queries, detections, mask side, resize mode, mask dtype)
POSTPROC_CASES = [
    ((1080, 1920), 100, 100, 78, "stretch", "float32"),
    ((1920, 1080), 200, 200, 108, "letterbox", "float16"),
    ((2160, 3840), 300, 300, 156, "stretch", "float32"),
    ((4320, 7680), 300, 100, 192, "stretch", "float16"),
    ((313, 517), 100, 100, 78, "center-crop", "float32"),
]
POSTPROC_CAPACITY = 1 << 23  # runs: room for 300 object masks at 4K (the default is sized for 1080p)
VIDEOS = ("312p", "1080p")
BUDGET_S = {"preprocessing": 120.0, "postprocessing": 120.0, "end to end": 330.0}
TOTAL_BUDGET_S = 570.0  # quick: everything, the engine build and a first ONNX export included
SELFCHECK_LIMIT_S = 600.0  # quick: parity and the short flag matrix together stay under 10 minutes
BENCH_BUDGET_S = 150.0  # the short flag matrix's cells (--skip-bench leaves it out)
BENCH_MIN_S = 45.0  # less time than this left: the matrix is not started (said so in the report)
REFERENCE_CHUNK = 16


# -- comparison helpers (pure: tested on the CPU) ---------------------------------------
def bitwise_difference(got, expected) -> str | None:
    """None when ``got`` and ``expected`` have the same dtype, shape and bytes, else what differs.

    Bytes, not values: -0.0 differs from 0.0, a NaN equals the same NaN, and a
    1-ulp difference is a difference.

    >>> import torch
    >>> bitwise_difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) is None
    True
    """
    import torch

    got = got.detach().cpu().contiguous().reshape(-1)
    expected = expected.detach().cpu().contiguous().reshape(-1)
    if got.dtype != expected.dtype:
        return f"dtype {got.dtype} vs {expected.dtype}"
    if got.shape != expected.shape:
        return f"{got.numel()} vs {expected.numel()} elements"
    size = got.element_size()
    differs = (got.view(torch.uint8) != expected.view(torch.uint8)).view(-1, size).any(1)
    count = int(differs.sum())
    if count == 0:
        return None
    first = int(differs.nonzero()[0])
    return (f"{count} of {got.numel()} elements differ; first at flat index {first}: "
            f"{got[first].item()!r} vs {expected[first].item()!r}")


@dataclass
class Part:
    """One check: its cases and their outcome."""

    name: str
    claim: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)

    def record(self, label: str, problem: str | None) -> None:
        if problem is None:
            self.passed += 1
        else:
            self.failures.append(f"{label}: {problem}")

    def as_dict(self) -> dict:
        return {"name": self.name, "claim": self.claim, "passed": self.passed, "failed": len(self.failures),
                "not_run": len(self.not_run), "seconds": round(self.seconds, 1), "failures": self.failures,
                "not_run_cases": self.not_run, "rows": self.rows}


def verdict(parts: Iterable[Part]) -> str:
    parts = list(parts)
    if any(p.failures for p in parts):
        return "FAIL"
    if any(p.not_run for p in parts):
        return "INCOMPLETE"
    return "PASS"


def exit_status(status: str) -> int:
    return {"PASS": EXIT_OK, "FAIL": EXIT_FAILED, "INCOMPLETE": EXIT_INCOMPLETE}[status]


def build_report(env: dict, parts: list[Part], end_to_end: list[dict], seconds: float) -> dict:
    return {"verdict": verdict(parts), "environment": env, "seconds": round(seconds, 1),
            "parts": [p.as_dict() for p in parts], "end_to_end": end_to_end}


def render_markdown(report: dict) -> str:
    """The paste-ready summary of a report."""
    env = report["environment"]
    lines = [f"## inference_accel GPU self-check: {report['verdict']}", "", "| | |", "|---|---|"]
    for key, label in (("gpu", "GPU"), ("driver", "driver"), ("cuda", "CUDA"), ("tensorrt", "TensorRT"),
                       ("torch", "torch"), ("triton", "triton"), ("pillow", "Pillow"),
                       ("onnxruntime", "onnxruntime"), ("inference_accel", "inference_accel"),
                       ("python", "Python")):
        lines.append(f"| {label} | {env.get(key, '?')} |")
    lines += ["", f"Total {report['seconds']:.0f} s.", "", "### Parity (exact: bytes and pixels)", "",
              "| check | claim | passed | failed | not run | s |", "|---|---|---|---|---|---|"]
    for part in report["parts"]:
        lines.append(f"| {part['name']} | {part['claim']} | {part['passed']} | {part['failed']} | "
                     f"{part['not_run']} | {part['seconds']:.0f} |")
    if report["end_to_end"]:
        lines += ["", "### End to end", "",
                  "| model | video | paths | CUDA graphs | fps | preprocess ms | inference ms | postprocess ms | "
                  "identical to |", "|---|---|---|---|---|---|---|---|---|"]
        for row in report["end_to_end"]:
            ms = row.get("median_ms", {})
            lines.append(
                f"| {row['model']} | {row['video']} | {row['paths']} | {row.get('graphs', '-')} | {row['fps']:.1f} | "
                f"{ms.get('preprocess', 0):.2f} | {ms.get('inference', 0):.2f} | {ms.get('postprocess', 0):.2f} | "
                f"{row.get('identical', '-')} |"
            )
    problems = [(p["name"], f) for p in report["parts"] for f in p["failures"]]
    skipped = [(p["name"], n) for p in report["parts"] for n in p["not_run_cases"]]
    if problems:
        lines += ["", "### Failures", ""] + [f"- {name}: {text}" for name, text in problems[:50]]
    if skipped:
        lines += ["", "### Not run (time budget)", ""] + [f"- {name}: {text}" for name, text in skipped[:50]]
    return "\n".join(lines) + "\n"


# -- environment ------------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported as such
        return f"not importable ({type(exc).__name__})"


def _driver_version() -> str:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import ctypes

        version = ctypes.c_int()
        if ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version)) == 0:
            return f"CUDA driver API {version.value // 1000}.{version.value % 1000 // 10} (no nvidia-smi)"
    except OSError:
        pass
    return "unknown"


def environment() -> dict:
    """Versions of everything the numbers depend on (the GPU fields say "none" without one)."""
    import PIL
    import torch

    import inference_accel

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "pillow": PIL.__version__,
        "onnxruntime": _version("onnxruntime"),
        "inference_accel": inference_accel.__version__,
        "cuda": f"torch built for CUDA {torch.version.cuda}",
        "gpu": "none",
        "driver": "none",
    }
    try:
        from inference_accel.engine.tensorrt_engine import import_tensorrt

        trt = import_tensorrt()
        env["tensorrt"] = f"{trt.__name__} {trt.__version__}"
    except RuntimeError as exc:
        env["tensorrt"] = f"not usable: {exc}"
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        env["gpu"] = f"{torch.cuda.get_device_name(0)} (sm_{major}{minor})"
        env["driver"] = _driver_version()
    return env


# -- the checks -------------------------------------------------------------------------------
class Clock:
    """A part's time budget: ``over()`` once it is spent."""

    def __init__(self, seconds: float):
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.elapsed() > self.seconds


def run_cases(part: Part, cases: list, label: Callable[[Any], str], body: Callable[[Any], str | None],
              budget: float) -> None:
    clock = Clock(budget)
    for i, case in enumerate(cases):
        if clock.over():
            part.not_run += [label(c) for c in cases[i:]]
            break
        try:
            problem = body(case)
        except Exception as exc:  # noqa: BLE001 - a crash is this case's failure, the others still run
            problem = f"raised {type(exc).__name__}: {exc}"
        part.record(label(case), problem)
        print(f"  {part.name}: {label(case)}: {'ok' if problem is None else 'FAIL ' + problem}", flush=True)
    part.seconds = clock.elapsed()


def check_preprocess(flags, budget: float) -> Part:
    import numpy as np
    import torch

    from inference_accel.preprocess.api import preprocess_into
    from inference_accel.preprocess.reference import preprocess_reference

    from inference_accel import host_memory

    upload = host_memory.zero_copy_reason(torch.device("cuda"))
    upload = "host frames read in place (zero copy)" if upload is None else f"host frames copied ({upload})"
    part = Part("preprocessing", f"Triton output == PIL reference chain, byte for byte (fp32 and fp16); {upload}")
    rng = np.random.default_rng(0)
    cases = [(size, target) for size in PREPROC_FRAMES for target in PREPROC_TARGETS]

    def body(case):
        size, target = case
        frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        expected, _ = preprocess_reference(frame, target)
        problems = []
        for dtype in (torch.float32, torch.float16):
            out = torch.full((2, 3, *target), 77.0, dtype=dtype, device="cuda")
            _, impl = preprocess_into(frame, out, 1, flags=flags)
            torch.cuda.synchronize()
            if impl != "triton":
                problems.append(f"{str(dtype)[6:]}: ran {impl}, not triton")
                continue
            diff = bitwise_difference(out[1], expected[0].to(dtype))
            if diff:
                problems.append(f"{str(dtype)[6:]}: {diff}")
            if not bool((out[0] == 77.0).all()):
                problems.append(f"{str(dtype)[6:]}: wrote outside slot 1")
        return "; ".join(problems) or None

    run_cases(part, cases, lambda c: f"{c[0][1]}x{c[0][0]} -> {c[1][1]}x{c[1][0]}", body, budget)
    return part


def object_masks(generator, queries: int, side: int, dtype):
    """Mask logits shaped like a model's: one irregular blob per query, positive inside, with values
    within a few ulps of zero along every edge and in some rows; made on the GPU."""
    import torch
    import torch.nn.functional as F

    def uniform(low, high):
        return torch.rand(queries, 1, 1, generator=generator, device="cuda") * (high - low) + low

    axis = (torch.arange(side, device="cuda", dtype=torch.float32) + 0.5) / side
    y, x = axis.view(1, side, 1), axis.view(1, 1, side)
    cy, cx, ry, rx = uniform(0.2, 0.8), uniform(0.2, 0.8), uniform(0.05, 0.3), uniform(0.05, 0.3)
    coarse = torch.randn(queries, 1, 6, 6, generator=generator, device="cuda")
    wobble = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)[:, 0] * 0.15
    masks = (1 - ((y - cy) / ry) ** 2 - ((x - cx) / rx) ** 2 + wobble) * uniform(4, 20)
    masks[:, ::7] *= 1e-5
    return masks.to(dtype).contiguous()


def compare_with_chunked_reference(got, logits, boxes, masks, geometry, chunk: int = REFERENCE_CHUNK) -> str | None:
    """``postprocess_reference``'s own steps on the GPU, ``chunk`` detections at a time, vs ``got``."""
    import numpy as np

    from inference_accel.postprocess.mask_geometry import mask_placement
    from inference_accel.postprocess.reference import selection_to_detections, upsample_masks_dense
    from inference_accel.postprocess.selection import select_detections

    frame_hw = geometry.frame_hw
    selection = select_detections(logits, boxes, frame_hw, geometry=geometry)
    expected = selection_to_detections(selection, None, None)
    if len(got) != len(expected):
        return f"{len(got)} detections vs {len(expected)}"
    for name in ("xyxy", "confidence", "class_id"):
        if not np.array_equal(getattr(got, name), getattr(expected, name)):
            return f"{name} differs"
    placement = mask_placement(geometry, masks.shape[-2:], frame_hw)
    bad = []
    for start in range(0, len(expected), chunk):
        planes = upsample_masks_dense(masks.index_select(0, selection.query[start : start + chunk]), placement,
                                      frame_hw).cpu().numpy()
        for j, plane in enumerate(planes):
            mine = np.asarray(got.mask[start + j], dtype=bool)
            if not np.array_equal(mine, plane):
                bad.append(f"mask {start + j}: {int(np.count_nonzero(mine != plane))} pixel(s)")
    return "; ".join(bad[:5]) or None


def check_postprocess(flags, budget: float) -> Part:
    import torch

    from inference_accel import dispatch
    from inference_accel.postprocess import api
    from inference_accel.postprocess.triton_launch import TritonPostprocessor
    from inference_accel.preprocess.geometry import plan_geometry

    part = Part("postprocessing", "Triton detections == dense torch CUDA reference: boxes, scores, classes, pixels")
    generator = torch.Generator(device="cuda").manual_seed(0)
    launcher = TritonPostprocessor(capacity=POSTPROC_CAPACITY)

    def inputs(queries, detections, side, dtype):
        logits = torch.full((queries, 91), -9.0, device="cuda")
        classes = torch.randint(0, 91, (detections,), generator=generator, device="cuda")
        logits[torch.arange(detections, device="cuda"), classes] = (
            torch.rand(detections, generator=generator, device="cuda") * 5.5 + 0.5
        )
        boxes = torch.rand(queries, 4, generator=generator, device="cuda") * 0.5 + 0.25
        return logits, boxes, object_masks(generator, queries, side, getattr(torch, dtype))

    def body(case):
        frame_hw, queries, detections, side, mode, dtype = case
        logits, boxes, masks = inputs(queries, detections, side, dtype)
        geometry = plan_geometry(frame_hw, (side * 4, side * 4), mode)
        torch.cuda.synchronize()
        start = time.perf_counter()
        got = launcher(logits, boxes, masks, geometry, frame_hw)
        fast_ms = (time.perf_counter() - start) * 1e3
        part.rows.append({"case": list(map(str, case)), "detections": len(got), "triton_ms": round(fast_ms, 2)})
        return compare_with_chunked_reference(got, logits, boxes, masks, geometry)

    def through_the_api(case):
        """The whole gate (its one-time self-check on this GPU) and the default run capacity."""
        frame_hw, queries, detections, side, mode, dtype = case
        logits, boxes, masks = inputs(queries, detections, side, dtype)
        geometry = plan_geometry(frame_hw, (side * 4, side * 4), mode)
        api.reset_fallback_counts()
        got, impl = api.postprocess(logits, boxes, masks, geometry, flags=flags)
        if impl != "triton":
            gate = {v.implementation.name: v.reason for v in dispatch.explain(api.OP, flags)}.get("triton")
            return f"ran {impl}, not triton (fallbacks {api.fallback_counts()}, gate: {gate})"
        return compare_with_chunked_reference(got, logits, boxes, masks, geometry)

    def one_launch_per_batch(case, batch=3):
        """A batched engine's outputs through postprocess_batch: one launch, each image == its reference."""
        frame_hw, queries, detections, side, mode, dtype = case
        images = [inputs(queries, detections, side, dtype) for _ in range(batch)]
        logits, boxes, masks = (torch.stack(parts) for parts in zip(*images))
        geometry = plan_geometry(frame_hw, (side * 4, side * 4), mode)
        answers = api.postprocess_batch(logits, boxes, masks, [geometry] * batch, flags=flags)
        used = sorted({impl for _, impl in answers})
        if used != [api.BATCH]:
            return f"ran {used}, not {api.BATCH!r} (fallbacks {api.fallback_counts()})"
        for image, (got, _) in enumerate(answers):
            problem = compare_with_chunked_reference(got, logits[image], boxes[image], masks[image], geometry)
            if problem:
                return f"image {image}: {problem}"
        return None

    def stock_mode_runs(case):
        """inference-models' mask semantics from the run kernels (stock mode) == torchvision's CUDA resize > 0,
        on a logit window placed at an offset on a bigger canvas."""
        from torchvision.transforms import functional as TF

        from inference_accel.postprocess.crop_rle import build_compact_mask
        from inference_accel.postprocess.mask_geometry import MaskPlacement

        frame_hw, queries, detections, side, mode, dtype = case
        masks = object_masks(generator, queries, side, torch.float32)
        chosen = torch.randperm(queries, generator=generator, device="cuda")[:detections].to(torch.int32)
        window = (2, side - 3, 0, side)  # rows cut as a letterbox unpad does
        top_left = (5, 9)
        canvas = (frame_hw[0] + 7, frame_hw[1] + 11)
        placement = MaskPlacement(window[:2], window[2:], tuple(frame_hw), top_left)
        pending = launcher.launch_masks_batch(
            masks[None], chosen[None], torch.tensor([detections], dtype=torch.int32, device="cuda"), placement, canvas
        )
        crops = launcher.finish_masks(pending)[0]
        compact = build_compact_mask(crops, canvas)
        for start in range(0, detections, REFERENCE_CHUNK):
            picked = masks[chosen[start : start + REFERENCE_CHUNK].long(), window[0] : window[1], window[2] : window[3]]
            resized = TF.resize(picked, list(frame_hw), interpolation=TF.InterpolationMode.BILINEAR) > 0
            expected = torch.zeros((picked.shape[0], *canvas), dtype=torch.bool, device="cuda")
            expected[:, top_left[0] : top_left[0] + frame_hw[0], top_left[1] : top_left[1] + frame_hw[1]] = resized
            got = torch.from_numpy(compact[start : start + picked.shape[0]].to_dense()).cuda()
            differ = int((got != expected).sum())
            if differ:
                return f"stock-mode runs differ from torchvision's CUDA resize in {differ} pixels (masks {start}+)"
        return None

    clock = Clock(budget)
    run_cases(part, [POSTPROC_CASES[0]], lambda c: f"api.postprocess {c[0][1]}x{c[0][0]} Q={c[1]}", through_the_api,
              budget)
    run_cases(part, [POSTPROC_CASES[0]], lambda c: f"stock-mode runs {c[0][1]}x{c[0][0]} dets={c[2]} masks {c[3]}^2",
              stock_mode_runs, max(budget - clock.elapsed(), 0.0))
    run_cases(part, [POSTPROC_CASES[0]], lambda c: f"api.postprocess_batch 3 x {c[0][1]}x{c[0][0]} Q={c[1]}",
              one_launch_per_batch, max(budget - clock.elapsed(), 0.0))
    run_cases(part, POSTPROC_CASES,
              lambda c: f"{c[0][1]}x{c[0][0]} Q={c[1]} dets={c[2]} masks {c[3]}^2 {c[4]} {c[5]}", body,
              max(budget - clock.elapsed(), 0.0))
    part.seconds = clock.elapsed()
    return part


def built_tensorrt_engine() -> tuple[list[str], str]:
    """The cached seg-nano ONNX built into a TensorRT engine here ([] and why not, without a builder)."""
    from inference_accel.engine.tensorrt_build import build_engine, default_plan_path
    from inference_accel.errors import EngineBuildError
    from inference_accel.models.source import resolve_model

    onnx = resolve_model(None).path
    plan = default_plan_path(onnx)
    if plan.is_file() and plan.stat().st_mtime >= onnx.stat().st_mtime:
        return [str(plan)], "cached"
    try:
        print(f"building a TensorRT engine from {onnx} (a few minutes, once) ...", flush=True)
        return [str(build_engine(onnx))], "built"
    except EngineBuildError as exc:
        return [], str(exc)


def _timed_run(pipeline, frames, warmup: int, device: str) -> tuple[list, float]:
    import torch

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    list(pipeline.run(frames[:warmup]))  # compile kernels, let TensorRT allocate, capture graphs
    sync()
    start = time.perf_counter()
    results = list(pipeline.run(frames))
    sync()
    return results, len(frames) / (time.perf_counter() - start)


def video_frames(video: str, limit: int) -> list:
    from inference_accel.media import VideoFrames, resolve_source

    return list(VideoFrames(resolve_source(video), limit=limit))


def _paths_not_taken(results, device: str) -> str | None:
    """Why the "fast" run is not the fast paths' run (None: every frame took them)."""
    if device != "cuda":
        return None  # a CPU run (tests) takes the CPU fast paths
    seen = {}
    for r in results:
        for stage in ("preprocess", "postprocess"):
            impl = r.implementations.get(stage, "?")
            if not impl.startswith("triton"):
                seen[f"{stage}={impl}"] = seen.get(f"{stage}={impl}", 0) + 1
    return f"frames off the Triton paths: {seen}" if seen else None


def _graphs_not_taken(results, graphs: str) -> str | None:
    """Why the TensorRT "fast" run did not replay whole-frame graphs on every frame (None: it did)."""
    if graphs != "on":
        return f"whole-frame graphs did not run: {graphs}"
    per_stage = sum(r.implementations.get("postprocess") != "triton (frame graph)" for r in results)
    return f"{per_stage}/{len(results)} frames took the per-stage path" if per_stage else None


def check_end_to_end(models: list[str | None], flags, frames_per_video: int, budget: float, *,
                     videos: Iterable[str] = VIDEOS, device: str = "cuda") -> tuple[list[Part], list[dict]]:
    from inference_accel.parity import compare_detections
    from inference_accel.pipeline import STAGES, SegmentationPipeline

    fast_vs_ref = Part("end to end: fast vs reference paths", "detections identical on every frame")
    graphs_vs_eager = Part("end to end: whole-frame CUDA graphs vs eager",
                           "detections identical on every frame (TensorRT)")
    rows: list[dict] = []
    clock = Clock(budget)
    variants = {
        "fast": replace(flags, preproc_fast=True, postproc_fast=True, cuda_graphs=True),
        "fast, graphs off": replace(flags, preproc_fast=True, postproc_fast=True, cuda_graphs=False),
        "reference": replace(flags, preproc_fast=False, postproc_fast=False, cuda_graphs=False),
    }
    for model in models:
        model_name = Path(model).name if model else "seg-nano ONNX (onnxruntime-gpu)"
        is_plan = bool(model) and str(model).endswith(".plan")
        for video in videos:
            label = f"{model_name} {video}"
            if clock.over():
                fast_vs_ref.not_run.append(label)
                if is_plan:
                    graphs_vs_eager.not_run.append(label)
                continue
            frames = video_frames(video, frames_per_video)
            results = {}
            for name, variant in variants.items():
                if name == "fast, graphs off" and not is_plan:
                    continue  # whole-frame graphs need a TensorRT engine
                pipeline = SegmentationPipeline(model, device=device, flags=variant, build_response=False)
                got, fps = _timed_run(pipeline, frames, warmup=3, device=device)
                results[name] = got
                graphs = "on" if pipeline.frame_graphs is not None else f"off ({pipeline.frame_graph_reason})"
                medians = {s: statistics.median(r.times_ms.get(s, 0.0) for r in got) for s in STAGES}
                rows.append({"model": model_name, "video": video, "paths": name, "graphs": graphs, "fps": fps,
                             "median_ms": medians, "implementations": got[-1].implementations})
                print(f"  end to end {label} {name}: {fps:.1f} fps, graphs {graphs}", flush=True)
            fast_row = next(r for r in rows[-len(results):] if r["paths"] == "fast")
            pairs = [(fast_vs_ref, "fast", "reference", _paths_not_taken(results["fast"], device))]
            if is_plan:
                pairs.append((graphs_vs_eager, "fast", "fast, graphs off", _graphs_not_taken(results["fast"],
                                                                                             fast_row["graphs"])))
            for part, a, b, not_taken in pairs:
                bad = [i for i, (x, y) in enumerate(zip(results[a], results[b])) if compare_detections(x.detections,
                                                                                                        y.detections)]
                problems = [f"{len(bad)}/{len(frames)} frames differ (first {bad[:5]})"] if bad else []
                part.record(label, "; ".join(problems + ([not_taken] if not_taken else [])) or None)
                verdict_text = "NO" if bad else "yes"
                fast_row["identical"] = "; ".join(filter(None, [fast_row.get("identical"), f"{b}: {verdict_text}"]))
    fast_vs_ref.seconds = graphs_vs_eager.seconds = clock.elapsed()
    return [fast_vs_ref, graphs_vs_eager], rows


def short_matrix(out: Path, model: str | None, budget: float, left: float) -> str:
    """The flag matrix on a few 1080p frames, both GPU engines (``inference-accel bench --matrix``'s code),
    written as a GPU page under ``out``; one line saying what was written or why not."""
    budget = min(budget, left - 10.0)
    if budget < BENCH_MIN_S:
        return f"not run: {max(left, 0):.0f} s left of the self-check's {SELFCHECK_LIMIT_S:.0f} s (time budget)"
    from inference_accel.benchsuite.suite import SuiteOptions, run_suite, write_outputs

    options = SuiteOptions(videos=["1080p"], frames=8, runs=1, warmup=3, model=model, device="cuda",
                           report_dir=str(out), time_budget_s=budget)
    try:  # a benchmark failure must not cost the parity report
        written = write_outputs(run_suite(options), options)
    except Exception as exc:  # noqa: BLE001 - reported in the self-check's output
        return f"failed: `{options.command()}`: {type(exc).__name__}: {exc}"
    return (f"`{options.command()}` (cells budget {budget:.0f} s): page {written['page']}, JSON {written['json']}; "
            "the full page: inference-accel bench --matrix --videos 312p,1080p,portrait --report docs/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="seg-nano ONNX/package/.plan (default: the cached seg-nano ONNX, then a "
                                        "TensorRT engine built from it)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="quick sizes (the default): under 10 minutes")
    size.add_argument("--full", action="store_true", help="more frames per video and larger time budgets")
    parser.add_argument("--frames", type=int, help="frames per video (default 30 quick, 120 full)")
    parser.add_argument("--out", default=".", help="folder for gpu_selfcheck.json and gpu_selfcheck.md")
    parser.add_argument("--skip-end-to-end", action="store_true", help="parity of the kernels only")
    parser.add_argument("--skip-bench", action="store_true",
                        help="leave out the short flag matrix (inference-accel bench --matrix) run after the parity checks")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA_MESSAGE, file=sys.stderr)
        return EXIT_NO_GPU
    from inference_accel.flags import read_flags

    started = time.perf_counter()
    scale = 3.0 if args.full else 1.0
    frames = args.frames or (120 if args.full else 30)
    env = environment()
    print(f"GPU: {env['gpu']}, driver {env['driver']}, {env['cuda']}, TensorRT: {env['tensorrt']}", flush=True)
    flags = read_flags()
    parts = [check_preprocess(flags, BUDGET_S["preprocessing"] * scale),
             check_postprocess(flags, BUDGET_S["postprocessing"] * scale)]
    rows: list[dict] = []
    if not args.skip_end_to_end:
        if args.model:
            models: list[str | None] = [args.model]
        else:
            plans, why = built_tensorrt_engine()
            env["tensorrt_engine"] = plans[0] if plans else f"none: {why}"
            models = [None, *plans]
        left = TOTAL_BUDGET_S * scale - (time.perf_counter() - started)  # the build and export count too
        e2e_parts, rows = check_end_to_end(models, flags, frames, min(BUDGET_S["end to end"] * scale, left))
        parts += e2e_parts
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = "skipped (--skip-bench)" if args.skip_bench else short_matrix(
        out, args.model, BENCH_BUDGET_S * scale, SELFCHECK_LIMIT_S * scale - (time.perf_counter() - started))
    report = build_report(env, parts, rows, time.perf_counter() - started)
    report["bench"] = bench
    (out / "gpu_selfcheck.json").write_text(json.dumps(report, indent=1, default=str))
    markdown = render_markdown(report) + f"\n### Flag matrix (fps)\n\n{bench}\n"
    (out / "gpu_selfcheck.md").write_text(markdown)
    print("\n" + markdown)
    print(f"wrote {out / 'gpu_selfcheck.json'} and {out / 'gpu_selfcheck.md'}")
    return exit_status(report["verdict"])


if __name__ == "__main__":
    sys.exit(main())
