"""Public preprocessing entry point: pick an implementation, fall back when needed.

Four implementations of the op ``preprocess`` are registered with
:mod:`inference_accel.dispatch`, best first:

========== ==== ==============================================================
name       rank process-wide precondition (the capability check)
========== ==== ==============================================================
triton     20   flag on; ``triton`` importable; ``torch.cuda.is_available()``
native     15   flag on; the compiled helper ``_resize_native`` is built and
                runs the instruction set ``INFERENCE_ACCEL_PREPROC_ISA``
                asks for (``auto``: the best this CPU has; see
                :mod:`~inference_accel.preprocess.native`)
cpu        10   flag on (Pillow in bands: the fallback without the helper)
reference  0    always
========== ==== ==============================================================

The flag is ``INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED``
(``Flags.preproc_fast``); false forces the reference path.

Normalisation: every path takes the model's
:class:`~inference_accel.preprocess.normalization.Normalization` (scale,
mean/std, channel order; default ImageNet, RGB) as runtime constants, so a
package's values never force a fallback.

Per-input preconditions, checked on every call (:data:`INPUT_PRECONDITIONS`):

- every path: ``frame`` is a uint8 (H, W, 3) numpy array, BGR, non-empty
  (:func:`inference_accel.frames.validate_frame`; violations raise
  :class:`~inference_accel.errors.InvalidFrameError`); ``mode`` is one of
  ``geometry.RESIZE_MODES``; ``out`` is a floating-point torch tensor of
  shape (N, 3, H, W) and ``0 <= index < N`` (violations raise ``ValueError``);
- triton: ``out`` is float32 or float16 on a CUDA device (or on the CPU
  while ``TRITON_INTERPRET=1``), and the frame has fewer than ``2**31`` bytes
  (int32 offsets in the kernel);
- cpu: ``out`` is float32 or float16 on the CPU;
- native: as cpu, plus unit stride along the last axis of ``out`` and frame
  sides of at most ``native.MAX_SIDE`` pixels;
- triton, native and cpu: the installed Pillow runs this geometry's two resize passes
  in the order ``pillow_resize.vertical_first`` predicts, which is what the three
  paths compute (:func:`pillow_resize.pass_order_mismatch`: Pillow's own bytes
  on a probe of the frame's size, once per (frame size, resized size); about
  26 ms for the first 4K frame, ~4 us after). A geometry where they
  disagree goes to the reference path.

An input a fast path cannot take goes to the next implementation, with a
warning logged once per reason. A Triton compile or launch error, or an
error inside the native helper on valid input, switches that path off for
the process (:func:`dispatch.disable`, one warning) and the frame takes the
next implementation. A malformed ``INFERENCE_ACCEL_PREPROC_ISA`` is a
:class:`~inference_accel.errors.FlagValueError` (raised, and shown by
``doctor``), not a silent fallback. All three modes (stretch,
letterbox, centre-crop) are exact on every path.

>>> import numpy as np, torch
>>> from inference_accel.flags import Flags
>>> out = torch.empty(1, 3, 16, 16)
>>> geometry, used = preprocess_into(np.zeros((30, 40, 3), np.uint8), out, 0, flags=Flags())
>>> used in ("native", "cpu"), geometry.resized_hw  # native when the helper is built
(True, (16, 16))
>>> preprocess_into(np.zeros((30, 40, 3), np.uint8), out, 0, flags=Flags(preproc_fast=False))[1]
'reference'
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from inference_accel import dispatch
from inference_accel.flags import PREPROC_FLAG, Flags, read_flags
from inference_accel.frames import validate_frame
from inference_accel.preprocess import native, pillow_resize
from inference_accel.preprocess.geometry import Geometry, plan_geometry
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.normalization import resolve as resolve_normalization
from inference_accel.preprocess.reference import preprocess_reference

OP = "preprocess"
TRITON, NATIVE, CPU, REFERENCE = "triton", "native", "cpu", dispatch.REFERENCE
# Paths whose failure on valid input switches them off for the process.
GUARDED = (TRITON, NATIVE)
FAST_DTYPES = (torch.float32, torch.float16)
MAX_TRITON_FRAME_BYTES = 2**31


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _flag_reason(flags: Flags | None) -> str | None:
    if flags is not None and not flags.preproc_fast:
        return f"{PREPROC_FLAG}=false"
    return None


def _check_triton(flags: Flags | None) -> str | None:
    reason = _flag_reason(flags)
    if reason:
        return reason
    try:
        import triton  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"triton is not importable: {exc}"
    if not _cuda_available():
        return "torch.cuda is not available"
    return None


def _check_native(flags: Flags | None) -> str | None:
    return _flag_reason(flags) or native.native_reason()


def _check_cpu(flags: Flags | None) -> str | None:
    return _flag_reason(flags)


def _check_reference(flags: Flags | None) -> str | None:
    return None


dispatch.register(dispatch.Implementation(OP, TRITON, 20, _check_triton))
dispatch.register(dispatch.Implementation(OP, NATIVE, 15, _check_native))
dispatch.register(dispatch.Implementation(OP, CPU, 10, _check_cpu))
dispatch.register(dispatch.Implementation(OP, REFERENCE, 0, _check_reference))


# -- per-input preconditions -------------------------------------------------
def _pass_order_input(frame: np.ndarray, geometry: Geometry) -> str | None:
    """The fast paths resize in ``pillow_resize``'s predicted order: is it the installed Pillow's?"""
    return pillow_resize.pass_order_mismatch(frame.shape[:2], geometry.resized_hw)


def _triton_input(frame: np.ndarray, out: torch.Tensor, geometry: Geometry) -> str | None:
    from inference_accel.preprocess.triton_launch import interpreter_active

    if out.dtype not in FAST_DTYPES:
        return f"out dtype {out.dtype} is not float32/float16"
    if out.device.type != "cuda" and not (out.device.type == "cpu" and interpreter_active()):
        return f"out is on {out.device}; the Triton kernel writes CUDA tensors"
    if frame.nbytes >= MAX_TRITON_FRAME_BYTES:
        return f"frame has {frame.nbytes} bytes; the kernel's int32 offsets allow < 2**31"
    return _pass_order_input(frame, geometry)


def _cpu_out_reason(out: torch.Tensor, path: str) -> str | None:
    """Why a CPU path cannot write ``out`` (None: it can)."""
    if out.dtype not in FAST_DTYPES:
        return f"out dtype {out.dtype} is not float32/float16"
    if out.device.type != "cpu":
        return f"out is on {out.device}; the {path} path writes CPU tensors"
    return None


def _cpu_input(frame: np.ndarray, out: torch.Tensor, geometry: Geometry) -> str | None:
    return _cpu_out_reason(out, "CPU") or _pass_order_input(frame, geometry)


def _native_input(frame: np.ndarray, out: torch.Tensor, geometry: Geometry) -> str | None:
    reason = _cpu_out_reason(out, "native")
    if reason:
        return reason
    if out.stride(3) != 1:
        return f"out has stride {out.stride(3)} along W; the native path writes rows with unit stride"
    if max(frame.shape[:2]) > native.MAX_SIDE:
        return f"frame {frame.shape[0]}x{frame.shape[1]} has a side above {native.MAX_SIDE} pixels"
    return _pass_order_input(frame, geometry)


def _reference_input(frame: np.ndarray, out: torch.Tensor, geometry: Geometry) -> str | None:
    return None


INPUT_PRECONDITIONS: dict[str, Callable[[np.ndarray, torch.Tensor, Geometry], str | None]] = {
    TRITON: _triton_input,
    NATIVE: _native_input,
    CPU: _cpu_input,
    REFERENCE: _reference_input,
}


# -- runners ------------------------------------------------------------------
# Each runner: (frame, out, index, geometry, normalization); the frame is BGR.
def _run_triton(frame: np.ndarray, out: torch.Tensor, index: int, geometry: Geometry, norm: Normalization) -> None:
    from inference_accel.preprocess.triton_launch import launch

    launch(frame, out, index, geometry, bgr=True, normalization=norm)


def _run_native(frame: np.ndarray, out: torch.Tensor, index: int, geometry: Geometry, norm: Normalization) -> None:
    native.preprocess_native(frame, out, index, geometry, bgr=True, normalization=norm)


def _run_cpu(frame: np.ndarray, out: torch.Tensor, index: int, geometry: Geometry, norm: Normalization) -> None:
    from inference_accel.preprocess.cpu import preprocess_cpu

    preprocess_cpu(frame, out, index, geometry, bgr=True, normalization=norm)


def _run_reference(frame: np.ndarray, out: torch.Tensor, index: int, geometry: Geometry, norm: Normalization) -> None:
    x, _ = preprocess_reference(frame, geometry.input_hw, geometry.mode, normalization=norm)
    out[index].copy_(x[0])


RUNNERS: dict[str, Callable[[np.ndarray, torch.Tensor, int, Geometry, Normalization], None]] = {
    TRITON: _run_triton,
    NATIVE: _run_native,
    CPU: _run_cpu,
    REFERENCE: _run_reference,
}


def _validate_out(out: object, index: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.ndim != 4 or out.shape[1] != 3:
        raise ValueError(f"out must have shape (N, 3, H, W), got {tuple(out.shape)}")
    if out.shape[2] == 0 or out.shape[3] == 0:
        raise ValueError(f"out has an empty input size: {tuple(out.shape)}")
    if not out.is_floating_point():
        raise ValueError(f"out must be a floating-point tensor, got {out.dtype}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= int(index) < out.shape[0]:
        raise ValueError(f"index {index} is out of range for a batch of {out.shape[0]}")
    return out


def preprocess_into(
    frame: np.ndarray,
    out: torch.Tensor,
    index: int = 0,
    mode: str = "stretch",
    flags: Flags | None = None,
    normalization: Normalization | None = None,
) -> tuple[Geometry, str]:
    """Preprocess a BGR uint8 frame into ``out[index]``; returns (geometry, implementation).

    ``out``: (N, 3, H, W) model input; (H, W) is the model's input size.
    ``flags``: ``None`` reads the environment. ``normalization``: the
    model's scaling, mean/std and colour order (``None``:
    :meth:`Normalization.imagenet`, RF-DETR's default; every path takes any
    valid one, as runtime constants; a value that is not a Normalization
    raises :class:`~inference_accel.errors.InvalidArgumentError`). The result equals the
    reference chain (``reference.preprocess_reference``) on every path: the
    resize byte for byte, the normalised floats bit for bit (fp16 outputs are
    the reference rounded to fp16).
    """
    frame = validate_frame(frame)
    out = _validate_out(out, index)
    normalization = resolve_normalization(normalization)
    index = int(index)
    flags = read_flags() if flags is None else flags
    native.read_isa()  # a malformed INFERENCE_ACCEL_PREPROC_ISA is an error, not a silent fallback
    geometry = plan_geometry(frame.shape[:2], (int(out.shape[2]), int(out.shape[3])), mode)
    for verdict in dispatch.explain(OP, flags):
        if not verdict.available:
            continue
        name = verdict.implementation.name
        reason = INPUT_PRECONDITIONS[name](frame, out, geometry)
        if reason is not None:
            dispatch.warn_once(
                f"{OP}:{name}:{reason}",
                f"{OP}: {name} path cannot take this input ({reason}); using the next implementation",
            )
            continue
        if name not in GUARDED:
            RUNNERS[name](frame, out, index, geometry, normalization)
            return geometry, name
        try:
            RUNNERS[name](frame, out, index, geometry, normalization)
        except Exception as exc:  # compile, launch or helper failure on valid input: off for the process
            dispatch.disable(OP, name, f"{type(exc).__name__}: {exc}")
            continue
        return geometry, name
    raise RuntimeError(f"no implementation of {OP!r} could take this input")  # reference always can


def describe(flags: Flags | None = None) -> list[dispatch.Verdict]:
    """Every preprocessing implementation with why it is unavailable (for ``doctor``)."""
    return dispatch.explain(OP, read_flags() if flags is None else flags)
