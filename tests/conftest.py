"""Test-wide setup: which device the kernel tests run on.

``pytest --device cpu|cuda|auto`` (default: ``$INFERENCE_ACCEL_TEST_DEVICE``,
else ``auto``: ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``).

- **cpu**: every Triton kernel runs under Triton's interpreter on CPU tensors
  (``TRITON_INTERPRET=1``, set when this file is imported, before any kernel
  module is: ``triton.jit`` reads it when a kernel is decorated). Tests marked ``gpu``
  (production sizes, CUDA graphs, TensorRT) are deselected and counted in one
  summary line, never shown as passed or as skips.
- **cuda**: ``TRITON_INTERPRET`` stays unset, the kernel tests take the
  ``kernel_device`` fixture's CUDA device (the launchers pick the GPU tile
  shapes there) and the ``gpu`` tests run; tests that need the interpreter
  (``interpreter`` marker, and the modules in ``INTERPRETER_MODULES``) are
  deselected and counted likewise: run ``pytest --device cpu`` for them.

One process is one mode (the interpreter switch is read at kernel import), so
a GPU machine runs both: ``pytest --device cuda`` and ``pytest --device cpu``.
AOT compilation for real GPUs runs in a subprocess with the interpreter unset.
"""

from __future__ import annotations

import os
import sys

import pytest

DEVICE_ENV = "INFERENCE_ACCEL_TEST_DEVICE"
DEVICES = ("auto", "cpu", "cuda")
# Modules whose every test drives Triton kernels on CPU tensors (the interpreter),
# until they carry the ``interpreter`` marker themselves.
INTERPRETER_MODULES = ("test_frame_graph.py", "test_launch_contract.py", "test_aot.py")
_DESELECTED = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        choices=DEVICES,
        default=None,
        help=f"where the kernel tests run: cpu (Triton interpreter), cuda (the GPU, with the gpu-marked "
        f"production cases), auto (cuda if torch sees one); default ${DEVICE_ENV} or auto",
    )


def resolve_device(option: str | None, environ=os.environ, cuda_available=None) -> str:
    """The device a run uses: the option, else the environment variable, else auto.

    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device(None, {"INFERENCE_ACCEL_TEST_DEVICE": "auto"}, cuda_available=lambda: False)
    'cpu'
    """
    choice = option or environ.get(DEVICE_ENV, "").strip().lower() or "auto"
    if choice not in DEVICES:
        raise pytest.UsageError(f"{DEVICE_ENV}={choice!r}: expected one of {', '.join(DEVICES)}")
    if cuda_available is None:
        def cuda_available():
            import torch

            return torch.cuda.is_available()
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice == "cuda" and not cuda_available():
        raise pytest.UsageError("--device cuda: no CUDA device visible (torch.cuda.is_available() is False)")
    return choice


def _device_from_argv(argv: list[str]) -> str | None:
    """``--device X`` / ``--device=X`` on the command line (None: not given).

    >>> _device_from_argv(["-q", "--device", "cuda"]), _device_from_argv(["--device=cpu"]), _device_from_argv([])
    ('cuda', 'cpu', None)
    """
    for i, arg in enumerate(argv):
        if arg == "--device" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    return None


def _kernels_imported() -> bool:
    return any(name.startswith("inference_accel.kernels.") for name in sys.modules)


# Decided once now, before any other conftest (tests/integration's) can import a
# kernel module; pytest_configure checks it against the parsed option.
_EARLY_INTERPRET = False
try:
    if resolve_device(_device_from_argv(sys.argv)) == "cpu" and "TRITON_INTERPRET" not in os.environ:
        os.environ["TRITON_INTERPRET"] = "1"
        _EARLY_INTERPRET = True
except (pytest.UsageError, ValueError):
    pass  # reported by pytest_configure


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device; deselected (and counted) unless --device cuda")
    config.addinivalue_line(
        "markers", "interpreter: drives Triton kernels on CPU tensors; deselected (and counted) under --device cuda"
    )
    device = resolve_device(config.getoption("--device", None))
    if device == "cuda":
        if _EARLY_INTERPRET and not _kernels_imported():
            os.environ.pop("TRITON_INTERPRET", None)  # the early guess was wrong (pytest.main args)
        if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            raise pytest.UsageError("--device cuda: TRITON_INTERPRET is set; unset it to run kernels on the GPU")
    else:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    config.inference_accel_device = device
    config.stash[_DESELECTED] = {}


def pytest_report_header(config):
    device = getattr(config, "inference_accel_device", "cpu")
    mode = "Triton interpreter on CPU tensors" if device == "cpu" else "kernels on the GPU"
    return f"inference_accel test device: {device} ({mode})"


def _needs_interpreter(item) -> bool:
    return item.get_closest_marker("interpreter") is not None or item.path.name in INTERPRETER_MODULES


def pytest_collection_modifyitems(config, items):
    device = getattr(config, "inference_accel_device", "cpu")
    if device == "cuda":
        drop, reason = _needs_interpreter, "interpreter"
    else:
        drop, reason = (lambda item: item.get_closest_marker("gpu") is not None), "gpu"
    deselected = [item for item in items if drop(item)]
    if deselected:
        kept = [item for item in items if not drop(item)]
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    config.stash[_DESELECTED] = {reason: len(deselected)}


def summary_line(device: str, counts: dict, cuda_available: bool) -> str | None:
    """The one line that says which cases this run left out (None: none were).

    >>> summary_line("cpu", {"gpu": 12}, cuda_available=False)
    'GPU cases not run (no CUDA device): 12 — run `pytest --device cuda` on a GPU'
    >>> summary_line("cuda", {"interpreter": 3}, cuda_available=True)
    'interpreter cases not run (--device cuda): 3 — run `pytest --device cpu` for them'
    """
    if counts.get("gpu"):
        why = "--device cpu" if cuda_available else "no CUDA device"
        return f"GPU cases not run ({why}): {counts['gpu']} — run `pytest --device cuda` on a GPU"
    if counts.get("interpreter"):
        return f"interpreter cases not run (--device cuda): {counts['interpreter']} — run `pytest --device cpu` for them"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = config.stash.get(_DESELECTED, {})
    device = getattr(config, "inference_accel_device", "cpu")
    if not counts or not any(counts.values()):
        return
    import torch

    line = summary_line(device, counts, torch.cuda.is_available())
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)


# Imported after TRITON_INTERPRET is decided: nothing below may import a kernel.
@pytest.fixture(autouse=True)
def _fresh_dispatch_state():
    """Each test starts with no disabled fast path and no issued warning."""
    from inference_accel import dispatch

    dispatch.reset_runtime_state()
    yield
    dispatch.reset_runtime_state()


@pytest.fixture(scope="session")
def kernel_device(pytestconfig):
    """The device the kernel tests put their tensors on: ``cpu`` (interpreter) or ``cuda``."""
    import torch

    return torch.device(getattr(pytestconfig, "inference_accel_device", "cpu"))


@pytest.fixture
def restore_output_state(monkeypatch):
    """A CLI run configures the package logger and the third-party switch; put them back."""
    import logging

    from inference_accel.models import export

    ours = logging.getLogger("inference_accel")
    saved = (list(ours.handlers), ours.propagate, ours.level)
    monkeypatch.setattr(export, "_show_third_party", False)
    yield
    ours.handlers[:], ours.propagate = saved[0], saved[1]
    ours.setLevel(saved[2])
