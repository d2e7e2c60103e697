"""``inference-accel doctor``: what this machine can run, and why not.

>>> from inference_accel.flags import Flags
>>> "preprocess" in doctor_report(Flags())
True
"""

from __future__ import annotations

import importlib
import platform

from inference_accel import dispatch
from inference_accel.flags import (
    CUDA_GRAPHS_FLAG,
    PIPELINE_DEPTH_FLAG,
    POSTPROC_FLAG,
    PREPROC_FLAG,
    Flags,
)


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"not importable ({type(exc).__name__}: {exc})".splitlines()[0][:100]
    return str(getattr(mod, "__version__", "installed"))


def _cuda_line() -> str:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        major, minor = torch.cuda.get_device_capability(0)
        return f"available: {name} (sm_{major}{minor}), torch CUDA {torch.version.cuda}"
    return f"not available (torch built for CUDA {torch.version.cuda}; no GPU/driver visible)"


def _tensorrt_line() -> str:
    from inference_accel.engine.tensorrt_engine import import_tensorrt

    try:
        trt = import_tensorrt()
    except RuntimeError as exc:
        return f"not usable: {exc}"
    import torch

    where = f"{trt.__name__} {getattr(trt, '__version__', '?')}"
    if not torch.cuda.is_available():
        return f"{where} installed; engines cannot run: no CUDA GPU"
    return f"{where} installed; engines can run"


def _onnxruntime_line() -> str:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"not importable: {exc}"
    return f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}"


def doctor_report(flags: Flags) -> str:
    # Importing the op APIs registers their implementations with dispatch.
    import inference_accel.frame_graph  # noqa: F401
    import inference_accel.postprocess.api  # noqa: F401
    import inference_accel.preprocess.api  # noqa: F401

    lines = [
        f"python       {platform.python_version()} on {platform.machine()}",
        f"torch        {_version('torch')}",
        f"triton       {_version('triton')}",
        f"pillow       {_version('PIL')}",
        f"supervision  {_version('supervision')}",
        f"onnxruntime  {_onnxruntime_line()}",
        f"CUDA         {_cuda_line()}",
        f"TensorRT     {_tensorrt_line()}",
        "",
        "flags (environment, then CLI overrides):",
        f"  {PREPROC_FLAG}={str(flags.preproc_fast).lower()}",
        f"  {POSTPROC_FLAG}={str(flags.postproc_fast).lower()}",
        f"  {CUDA_GRAPHS_FLAG}={str(flags.cuda_graphs).lower()}",
        f"  {PIPELINE_DEPTH_FLAG}={flags.pipeline_depth}",
    ]
    for op in ("preprocess", "postprocess", "frame-graph"):
        verdicts = dispatch.explain(op, flags)
        chosen = next((v.implementation.name for v in verdicts if v.available), "none")
        lines += ["", f"{op}: active implementation = {chosen}"]
        for verdict in verdicts:
            state = "available" if verdict.available else f"unavailable: {verdict.reason}"
            mark = "*" if verdict.implementation.name == chosen else " "
            lines.append(f"  {mark} {verdict.implementation.name:<10} {state}")
        if op == "preprocess":
            lines += [f"  (native instruction set: {_native_isa()})", f"  (native threads: {_native_threads()})",
                      f"  (host frames on the GPU: {_host_frames_line()})",
                      "  (model package steps, before the resize: static crop = a window of the frame, grayscale and "
                      "the dataset-version first step = OpenCV on the host, as stock; contrast = scikit-image on the "
                      "host, the reference path only; these packages run per stage, not as whole-frame graphs)"]
        if op == "postprocess":
            lines.append(f"  (cpu executor: {_cpu_postprocess_executor()})")
            lines.append(f"  (response stage: {_response_helper()})")
    lines.append("  (whole-frame graphs also need a TensorRT engine: onnxruntime's run cannot be captured)")
    lines += ["", *_threads_lines()]
    return "\n".join(lines)


def _threads_lines() -> list[str]:
    """Usable CPUs, where the number came from, and each CPU pool's size."""
    from inference_accel.workers import CPU_BUDGET, pool_sizes

    lines = [f"CPUs usable: {CPU_BUDGET.describe()}", "thread pools (CPU paths):"]
    return lines + [f"  {name:<16} {rule}" for name, rule in pool_sizes().items()]


def _host_frames_line() -> str:
    """How a numpy frame reaches the Triton kernel: read in place (integrated GPU) or copied, and why."""
    import torch

    from inference_accel import host_memory
    from inference_accel.errors import FlagValueError

    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        reason = host_memory.zero_copy_reason(torch.device("cuda", 0))
    except FlagValueError as exc:
        return f"ERROR: {exc}"
    return "read in place (zero copy, integrated GPU)" if reason is None else f"copied once ({reason})"


def _native_isa() -> str:
    from inference_accel.preprocess.native import isa_line

    return isa_line()


def _native_threads() -> str:
    from inference_accel.preprocess.native import threads_rule

    return threads_rule()


def _response_helper() -> str:
    from inference_accel.masks.polygons_native import native_reason

    reason = native_reason()
    return "compiled helper (canvas painting, points)" if reason is None else f"numpy/Python references ({reason})"


def _cpu_postprocess_executor() -> str:
    from inference_accel.postprocess.sparse_cpu import native_reason

    reason = native_reason()
    return "compiled helper" if reason is None else f"numpy ({reason})"
