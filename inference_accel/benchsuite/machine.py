"""What a benchmark ran on: CPU, GPU, driver, TensorRT and library versions.

The version lines are ``doctor``'s own (:mod:`inference_accel.doctor`), so a
benchmark JSON and ``inference-accel doctor`` describe a machine alike.
:func:`machine_class` names the class of machine a committed figure belongs
to (the regression guard compares only within one class).

>>> m = describe_machine()
>>> {"cpu_model", "cpu_cores", "usable_cpus", "gpu", "torch", "pillow", "inference_accel"} <= set(m)
True
>>> machine_class({"arch": "x86_64", "usable_cpus": 2, "gpu": "none"})
'x86_64-2cpu-nogpu'
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`, else the architecture).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"; _ = p.write_text("model name\\t: Intel Xeon\\n")
    >>> cpu_model(p)
    'Intel Xeon'
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def driver_version() -> str:
    """The NVIDIA driver version (``nvidia-smi``), or ``"none"`` without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "none"
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown (nvidia-smi failed: {exc})"
    lines = out.stdout.strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else "unknown (nvidia-smi gave nothing)"


def describe_machine() -> dict:
    """CPU model and cores, GPU, driver, CUDA, TensorRT, onnxruntime, torch, Pillow and our version."""
    import torch

    import inference_accel
    from inference_accel.doctor import _cuda_line, _onnxruntime_line, _tensorrt_line, _version
    from inference_accel.workers import CPU_BUDGET

    gpu = "none"
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        gpu = f"{torch.cuda.get_device_name(0)} (sm_{major}{minor})"
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "usable_cpus": CPU_BUDGET.usable,
        "usable_cpus_from": CPU_BUDGET.describe(),
        "arch": platform.machine(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "gpu": gpu,
        "driver": driver_version() if gpu != "none" else "none",
        "cuda": _cuda_line(),
        "tensorrt": _tensorrt_line(),
        "onnxruntime": _onnxruntime_line(),
        "torch": _version("torch"),
        "triton": _version("triton"),
        "pillow": _version("PIL"),
        "numpy": _version("numpy"),
        "supervision": _version("supervision"),
        "inference_accel": inference_accel.__version__,
    }


def machine_class(machine: dict) -> str:
    """A short key for "the same kind of machine": architecture, usable CPUs, GPU model."""
    gpu = machine.get("gpu", "none")
    gpu_key = "nogpu" if gpu in (None, "none") else re.sub(r"[^a-z0-9]+", "-", gpu.split(" (")[0].lower()).strip("-")
    return f"{machine.get('arch', '?')}-{machine.get('usable_cpus', '?')}cpu-{gpu_key}"


def machine_title(machine: dict) -> str:
    """One line for chart titles and the report header.

    >>> machine_title({"cpu_model": "Xeon", "usable_cpus": 2, "gpu": "none"})
    'Xeon, 2 CPUs, no GPU'
    """
    gpu = machine.get("gpu", "none")
    gpu_text = "no GPU" if gpu in (None, "none") else f"{gpu}, driver {machine.get('driver', '?')}"
    return f"{machine.get('cpu_model', '?')}, {machine.get('usable_cpus', '?')} CPUs, {gpu_text}"
