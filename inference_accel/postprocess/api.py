"""Public postprocessing entry point: pick an implementation, fall back when needed.

Three implementations of the op ``postprocess`` are registered with
:mod:`inference_accel.dispatch`, best first:

========== ==== ==============================================================
name       rank process-wide precondition (the capability check)
========== ==== ==============================================================
triton     20   flag on; ``triton`` importable; ``torch.cuda.is_available()``
cpu        10   flag on; torch's CPU bilinear order recognised
                (``sparse_cpu.torch_cpu_arith``)
reference  0    always
========== ==== ==============================================================

The flag is ``INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED``
(``Flags.postproc_fast``); false forces the reference path.

Per-input preconditions (:data:`INPUT_PRECONDITIONS`), checked on every call:

- triton: tensors on a CUDA device (or on the CPU while ``TRITON_INTERPRET=1``);
  frame sides <= 8192; mask window sides <= 256; on the CPU (interpreter)
  ``out_h + out_w > 128`` of the upsampled window (torch's CPU kernel switches
  to another arithmetic below that); on CUDA, the device passed the one-time
  arithmetic self-check against ``F.interpolate``;
- cpu: all tensors on the CPU (the pixels reproduce torch's *CPU* kernel).

An input a fast path cannot take goes to the next implementation, with a
warning logged once per reason. A frame whose runs overflow the Triton
buffers is redone by the reference and counted in :func:`fallback_counts`.

**Request isolation.** Arguments are checked before any implementation runs
(:func:`check_arguments`): a threshold outside [0, 1], a ``max_detections``
that is not a positive int (``1.5``, ``0``, ``True``), tensors of the wrong
shape or dtype raise :class:`~inference_accel.errors.InvalidArgumentError`
naming the argument, and every path stays on. A fast path that then raises
on this valid request is switched off for the process
(:func:`dispatch.disable`: a Triton compile or launch failure, an internal
error) once a later implementation has answered the same request; if the
reference raises too, the error is the input's: it is raised and nothing is
switched off.

**Batches.** :func:`postprocess_batch` takes a batched engine's outputs
(B, Q, ...) and one geometry per image. On the Triton path a batch of one
geometry takes one launch of each kernel (implementation ``"triton
(batch)"``); mixed geometries, a batch whose runs overflow, and the other
paths go image by image through :func:`postprocess`, with the reason
logged once. Each image's answer equals :func:`postprocess` on it alone.

**Output type.** Every path returns ``sv.Detections`` whose ``mask`` is an
``sv.CompactMask`` with tight crops (the reference's dense result is encoded
with the same crop convention), so callers see one type; the pixels are
identical to ``postprocess_reference`` on the tensors' device.

>>> import torch
>>> from inference_accel.flags import Flags
>>> from inference_accel.preprocess.geometry import plan_geometry
>>> logits = torch.full((2, 3), -9.0); logits[0, 2] = 3.0
>>> boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2)
>>> masks = -torch.ones(2, 4, 4); masks[0, 1:3, 1:3] = 2.0
>>> det, used = postprocess(logits, boxes, masks, plan_geometry((8, 8), (16, 16)), flags=Flags())
>>> used, det.class_id.tolist(), det.mask.area.tolist()
('cpu', [2], [16])
>>> postprocess(logits, boxes, masks, plan_geometry((8, 8), (16, 16)), flags=Flags(postproc_fast=False))[1]
'reference'
>>> postprocess(logits, boxes, masks, plan_geometry((8, 8), (16, 16)), max_detections=1.5)
Traceback (most recent call last):
...
inference_accel.errors.InvalidArgumentError: max_detections must be a positive int (>= 1), got 1.5 (float)
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Callable, Iterator, Sequence

import numpy as np
import supervision as sv
import torch

from inference_accel import dispatch
from inference_accel.arguments import (
    check_class_mapping,
    check_class_names,
    check_optional_positive_int,
    check_positive_int,
    check_size,
    check_threshold,
)
from inference_accel.errors import FlagValueError, InvalidArgumentError
from inference_accel.postprocess.taps import SMALL_OUTPUT_SUM  # torch's channels-last CPU kernel bound
from inference_accel.flags import POSTPROC_FLAG, Flags, read_flags
from inference_accel.postprocess.crop_rle import build_compact_mask, encode_dense_crop
from inference_accel.postprocess.mask_geometry import mask_placement
from inference_accel.postprocess.reference import postprocess_reference
from inference_accel.preprocess.geometry import Geometry

OP = "postprocess"
TRITON, CPU, REFERENCE = "triton", "cpu", dispatch.REFERENCE
MAX_FRAME_SIDE = 8192
MAX_MASK_SIDE = 256

_fallbacks: Counter[str] = Counter()
_fallback_lock = threading.Lock()
_device_checked: dict[str, str | None] = {}


def fallback_counts() -> dict[str, int]:
    """Frames a fast path handed to the reference at run time, by reason."""
    with _fallback_lock:
        return dict(_fallbacks)


def reset_fallback_counts() -> None:
    with _fallback_lock:
        _fallbacks.clear()


def _count_fallback(reason: str) -> None:
    with _fallback_lock:
        _fallbacks[reason] += 1


# -- process-wide capability checks ---------------------------------------------
def _flag_reason(flags: Flags | None) -> str | None:
    if flags is not None and not flags.postproc_fast:
        return f"{POSTPROC_FLAG}=false"
    return None


def _check_triton(flags: Flags | None) -> str | None:
    reason = _flag_reason(flags)
    if reason:
        return reason
    try:
        import triton  # noqa: F401
    except Exception as exc:
        return f"triton is not importable: {exc}"
    if not torch.cuda.is_available():
        return "torch.cuda is not available"
    return None


def _check_cpu(flags: Flags | None) -> str | None:
    reason = _flag_reason(flags)
    if reason:
        return reason
    from inference_accel.postprocess.sparse_cpu import torch_cpu_arith

    if torch_cpu_arith() is None:
        return "torch's CPU bilinear arithmetic matches neither known order (self-check failed)"
    return None


def _check_reference(flags: Flags | None) -> str | None:
    return None


dispatch.register(dispatch.Implementation(OP, TRITON, 20, _check_triton))
dispatch.register(dispatch.Implementation(OP, CPU, 10, _check_cpu))
dispatch.register(dispatch.Implementation(OP, REFERENCE, 0, _check_reference))


# -- per-input preconditions -------------------------------------------------------
def _tensors(*tensors: torch.Tensor) -> set[str]:
    return {t.device.type for t in tensors}


def _triton_input(logits, boxes, masks, geometry: Geometry) -> str | None:
    from inference_accel.postprocess.triton_launch import interpreter_active

    devices = _tensors(logits, boxes, masks)
    if len(devices) != 1:
        return f"tensors on several devices: {sorted(devices)}"
    device = masks.device
    if device.type != "cuda" and not (device.type == "cpu" and interpreter_active()):
        return f"tensors on {device}; the Triton kernels run on CUDA"
    fh, fw = geometry.frame_hw
    if max(fh, fw) > MAX_FRAME_SIDE:
        return f"frame {fh}x{fw} exceeds {MAX_FRAME_SIDE} per side"
    placement = mask_placement(geometry, masks.shape[-2:], geometry.frame_hw)
    wh = placement.rows[1] - placement.rows[0]
    ww = placement.cols[1] - placement.cols[0]
    if max(wh, ww) > MAX_MASK_SIDE:
        return f"mask window {wh}x{ww} exceeds {MAX_MASK_SIDE} per side"
    if device.type == "cpu" and sum(placement.out_hw) <= SMALL_OUTPUT_SUM:
        return "output this small takes torch's channels-last CPU kernel (another arithmetic)"
    if device.type == "cuda":
        reason = _deterministic_reason(device) or _cuda_self_check(device)
        if reason:
            return reason
    return None


def _deterministic_reason(device: torch.device) -> str | None:
    """Deterministic mode changes the reference's arithmetic on CUDA: pass the kernels over.

    Under ``torch.use_deterministic_algorithms(True)``, CUDA ``F.interpolate``
    runs a Python decomposition (``torch/nn/functional.py``) whose float
    order is not the CUDA kernel's that the Triton path reproduces; the dense
    reference on the same device is then the exact path. Checked per call
    (the mode can change at run time), and before the one-time self-check,
    whose verdict is about the kernel order only.

    >>> import torch
    >>> torch.use_deterministic_algorithms(True)
    >>> _deterministic_reason(torch.device("cuda")) is not None
    True
    >>> torch.use_deterministic_algorithms(False)
    >>> _deterministic_reason(torch.device("cuda")) is None
    True
    """
    if device.type == "cuda" and torch.are_deterministic_algorithms_enabled():
        return (
            "torch.use_deterministic_algorithms(True): CUDA F.interpolate then runs a Python "
            "decomposition with another arithmetic, which the Triton kernels do not reproduce"
        )
    return None


def _cpu_input(logits, boxes, masks, geometry: Geometry) -> str | None:
    devices = _tensors(logits, boxes, masks)
    if devices != {"cpu"}:
        return f"tensors on {sorted(devices)}; the CPU path reproduces torch's CPU kernel"
    return None


def _reference_input(logits, boxes, masks, geometry: Geometry) -> str | None:
    return None


INPUT_PRECONDITIONS: dict[str, Callable[..., str | None]] = {
    TRITON: _triton_input,
    CPU: _cpu_input,
    REFERENCE: _reference_input,
}


def _cuda_self_check(device: torch.device) -> str | None:
    """Once per CUDA device: the kernels' pixels equal ``F.interpolate`` there.

    The CUDA arithmetic (``ARITH_CUDA``) is written from torch's source, not
    measured (no GPU was available when it was written); this check measures
    it on the first call and keeps the Triton path off if it differs.
    """
    key = str(device)
    if key not in _device_checked:
        from inference_accel.postprocess.triton_launch import default_postprocessor

        gen = torch.Generator().manual_seed(7)
        logits = torch.full((6, 3), -9.0)
        logits[:, 1] = 4.0
        boxes = torch.rand(6, 4, generator=gen)
        masks = torch.randn(6, 24, 20, generator=gen)
        masks[:, ::2] *= 1e-6
        frame = (90, 301)
        ref = postprocess_reference(logits.to(device), boxes.to(device), masks.to(device), frame)
        try:
            got = default_postprocessor()(logits.to(device), boxes.to(device), masks.to(device), None, frame)
            same = np.array_equal(got.mask.to_dense(), ref.mask) and np.array_equal(got.xyxy, ref.xyxy)
            _device_checked[key] = None if same else "kernel pixels differ from F.interpolate on this GPU"
        except Exception as exc:  # compile/launch failure is reported by the caller
            _device_checked[key] = f"self-check failed: {type(exc).__name__}: {exc}"
    return _device_checked[key]


# -- runners ----------------------------------------------------------------------
def _dense_to_compact(detections: sv.Detections, frame_hw: tuple[int, int]) -> sv.Detections:
    dense = detections.mask
    crops = [encode_dense_crop(dense[i]) for i in range(len(detections))]
    detections.mask = build_compact_mask(crops, frame_hw)
    return detections


def _run_reference(logits, boxes, masks, geometry, **kw) -> sv.Detections:
    det = postprocess_reference(logits, boxes, masks, geometry=geometry, **kw)
    return _dense_to_compact(det, geometry.frame_hw)


def _run_cpu(logits, boxes, masks, geometry, **kw) -> sv.Detections:
    from inference_accel.postprocess.sparse_cpu import postprocess_sparse_cpu

    return postprocess_sparse_cpu(logits, boxes, masks, geometry=geometry, **kw)


def _run_triton(logits, boxes, masks, geometry, **kw) -> sv.Detections:
    from inference_accel.postprocess.triton_launch import default_postprocessor

    return default_postprocessor()(logits, boxes, masks, geometry, geometry.frame_hw, **kw)


RUNNERS: dict[str, Callable[..., sv.Detections]] = {
    TRITON: _run_triton,
    CPU: _run_cpu,
    REFERENCE: _run_reference,
}


def redo_with_reference(logits, boxes, masks, geometry: Geometry, name: str, exc: Exception, **kw) -> sv.Detections:
    """A frame a fast path overflowed on: counted, warned once, redone by the reference."""
    _count_fallback(f"{name}: run buffer overflow")
    dispatch.warn_once(f"{OP}:{name}:overflow", f"{OP}: {name} {exc}; frame redone by the reference")
    return _run_reference(logits, boxes, masks, geometry, **kw)


def _check_tensors(logits: object, boxes_cxcywh: object, mask_logits: object) -> None:
    """Three floating-point tensors (Q, C), (Q, 4), (Q, Hm, Wm) with one Q and non-empty sides."""
    named = {"logits": logits, "boxes_cxcywh": boxes_cxcywh, "mask_logits": mask_logits}
    for name, tensor in named.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgumentError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise InvalidArgumentError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if logits.ndim != 2 or boxes_cxcywh.ndim != 2 or mask_logits.ndim != 3 or boxes_cxcywh.shape[1] != 4:
        raise InvalidArgumentError(
            "expected logits (Q, C), boxes_cxcywh (Q, 4), mask_logits (Q, Hm, Wm); got "
            f"{tuple(logits.shape)}, {tuple(boxes_cxcywh.shape)}, {tuple(mask_logits.shape)}"
        )
    queries = {int(logits.shape[0]), int(boxes_cxcywh.shape[0]), int(mask_logits.shape[0])}
    if len(queries) != 1:
        raise InvalidArgumentError(
            "logits, boxes_cxcywh and mask_logits must have the same number of queries, got "
            f"{int(logits.shape[0])}, {int(boxes_cxcywh.shape[0])}, {int(mask_logits.shape[0])}"
        )
    if logits.shape[1] == 0 or 0 in mask_logits.shape[1:]:
        raise InvalidArgumentError(
            f"logits need >= 1 class and mask_logits a non-empty (Hm, Wm); got {tuple(logits.shape)}, "
            f"{tuple(mask_logits.shape)}"
        )


def check_arguments(
    logits: object,
    boxes_cxcywh: object,
    mask_logits: object,
    geometry: object,
    *,
    threshold: object,
    max_detections: object,
    class_mapping: object,
    num_classes: object,
    class_names: object,
) -> dict:
    """Refuse an invalid request before any implementation sees it; the normalised keyword arguments.

    Raises :class:`~inference_accel.errors.InvalidArgumentError` (a
    ``ValueError``) naming the argument and its allowed range.
    """
    _check_tensors(logits, boxes_cxcywh, mask_logits)
    if not isinstance(geometry, Geometry):
        raise InvalidArgumentError(
            f"geometry must be a Geometry (preprocess.geometry.plan_geometry), got {type(geometry).__name__}"
        )
    check_size("geometry.frame_hw", geometry.frame_hw)
    return dict(
        threshold=check_threshold(threshold),
        max_detections=check_positive_int("max_detections", max_detections),
        class_mapping=check_class_mapping(class_mapping),
        num_classes=check_optional_positive_int("num_classes", num_classes),
        class_names=check_class_names(class_names),
    )


def _usable(flags: Flags, logits, boxes, masks, geometry: Geometry) -> Iterator[str]:
    """Names of the implementations that can take this input, best first (warning once for the others)."""
    for verdict in dispatch.explain(OP, flags):
        if not verdict.available:
            continue
        name = verdict.implementation.name
        reason = INPUT_PRECONDITIONS[name](logits, boxes, masks, geometry)
        if reason is not None:
            dispatch.warn_once(
                f"{OP}:{name}:{reason}",
                f"{OP}: {name} path cannot take this input ({reason}); using the next implementation",
            )
            continue
        yield name


def _disable_failed(failures: list[tuple[str, Exception]]) -> None:
    """Paths that raised on a request a later implementation answered: their fault, off for the process."""
    for name, exc in failures:
        dispatch.disable(OP, name, f"{type(exc).__name__}: {exc}")


def postprocess(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    mask_logits: torch.Tensor,
    geometry: Geometry,
    *,
    threshold: float = 0.4,
    max_detections: int = 300,
    class_mapping: np.ndarray | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    flags: Flags | None = None,
) -> tuple[sv.Detections, str]:
    """One image's raw outputs -> (detections with a CompactMask, implementation used).

    ``logits``: (Q, C); ``boxes_cxcywh``: (Q, 4) normalised; ``mask_logits``:
    (Q, Hm, Wm), all floating point on one device. ``geometry`` maps the
    model input to the frame (:func:`~inference_accel.preprocess.geometry.plan_geometry`).
    ``threshold``: a real number in [0, 1]; ``max_detections``,
    ``num_classes``: positive ints. ``flags``: ``None`` reads the
    environment. Invalid arguments raise
    :class:`~inference_accel.errors.InvalidArgumentError` and switch nothing off.
    """
    from inference_accel.postprocess.triton_launch import RunsOverflow

    kw = check_arguments(
        logits, boxes_cxcywh, mask_logits, geometry,
        threshold=threshold, max_detections=max_detections, class_mapping=class_mapping,
        num_classes=num_classes, class_names=class_names,
    )
    flags = read_flags() if flags is None else flags
    failures: list[tuple[str, Exception]] = []
    for name in _usable(flags, logits, boxes_cxcywh, mask_logits, geometry):
        try:
            detections = RUNNERS[name](logits, boxes_cxcywh, mask_logits, geometry, **kw)
        except RunsOverflow as exc:
            detections = redo_with_reference(logits, boxes_cxcywh, mask_logits, geometry, name, exc, **kw)
            name = REFERENCE
        except FlagValueError:
            raise  # an operator's setting is wrong, not the path: say so, switch nothing off
        except Exception as exc:
            if name == REFERENCE:
                raise  # the reference fails too: the input's fault, no path is switched off
            failures.append((name, exc))
            continue
        _disable_failed(failures)
        return detections, name
    raise RuntimeError(f"no implementation of {OP!r} could take this input")


# -- batches --------------------------------------------------------------------------
BATCH = "triton (batch)"  # the implementation name of a one-launch batch
_batch_off: list[str] = []  # why one-launch batches are off for the process (a launch raised)


def _batch_reason(flags: Flags, logits, boxes, masks, geometries: Sequence[Geometry]) -> str | None:
    """Why this batch cannot take one launch per kernel (None: it can)."""
    if _batch_off:
        return _batch_off[0]
    best = next((v for v in dispatch.explain(OP, flags) if v.available), None)
    if best is None or best.implementation.name != TRITON:
        return "the Triton path is not this process's best postprocessing"
    if any(g != geometries[0] for g in geometries[1:]):
        return "the images' geometries differ (frame size or resize mode); one launch takes one geometry"
    return INPUT_PRECONDITIONS[TRITON](logits[0], boxes[0], masks[0], geometries[0])


def postprocess_batch(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    mask_logits: torch.Tensor,
    geometries: Sequence[Geometry],
    *,
    threshold: float = 0.4,
    max_detections: int = 300,
    class_mapping: np.ndarray | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    flags: Flags | None = None,
) -> list[tuple[sv.Detections, str]]:
    """A batched engine's outputs -> (detections, implementation used) per image, in batch order.

    ``logits`` (B, Q, C), ``boxes_cxcywh`` (B, Q, 4), ``mask_logits`` (B, Q,
    Hm, Wm); ``geometries``: one per image. On the Triton path, images of one
    geometry (a video's frames) take one launch per kernel for the whole
    batch (implementation ``"triton (batch)"``); otherwise, and when the
    batch's runs overflow the buffer, each image goes through
    :func:`postprocess`, with the reason logged once. Either way each
    image's answer equals :func:`postprocess` on that image alone.

    >>> import torch
    >>> from inference_accel.preprocess.geometry import plan_geometry
    >>> logits = torch.full((2, 2, 3), -9.0); logits[:, 0, 1] = 3.0
    >>> boxes = torch.full((2, 2, 4), 0.5)
    >>> masks = -torch.ones(2, 2, 4, 4); masks[1, 0, :2, :2] = 2.0
    >>> out = postprocess_batch(logits, boxes, masks, [plan_geometry((8, 8), (16, 16))] * 2, flags=Flags())
    >>> [(used, det.mask.area.tolist()) for det, used in out]
    [('cpu', [0]), ('cpu', [16])]
    """
    from inference_accel.postprocess.triton_launch import RunsOverflow, default_postprocessor

    named = {"logits": logits, "boxes_cxcywh": boxes_cxcywh, "mask_logits": mask_logits}
    for name, tensor, ndim in zip(named, named.values(), (3, 3, 4)):
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise InvalidArgumentError(f"{name} must be a batch, a {ndim}-d tensor (B, ...), got {got}")
    sizes = [int(t.shape[0]) for t in named.values()]
    geometries = list(geometries)
    if len(set(sizes + [len(geometries)])) != 1:
        raise InvalidArgumentError(
            f"logits, boxes_cxcywh, mask_logits and geometries must hold the same number of images, got "
            f"{sizes[0]}, {sizes[1]}, {sizes[2]}, {len(geometries)}"
        )
    kw = {}
    for image, geometry in enumerate(geometries):
        kw = check_arguments(
            logits[image], boxes_cxcywh[image], mask_logits[image], geometry,
            threshold=threshold, max_detections=max_detections, class_mapping=class_mapping,
            num_classes=num_classes, class_names=class_names,
        )
    flags = read_flags() if flags is None else flags
    reason = _batch_reason(flags, logits, boxes_cxcywh, mask_logits, geometries) if geometries else None
    if reason is None and len(geometries) > 1:
        try:
            detections = default_postprocessor().run_batch(
                logits, boxes_cxcywh, mask_logits, geometries[0], geometries[0].frame_hw, **kw
            )
            return [(det, BATCH) for det in detections]
        except RunsOverflow:
            reason = "the batch's runs overflow the buffer's capacity"
            _count_fallback(f"{BATCH}: run buffer overflow")
        except FlagValueError:
            raise
        except Exception as exc:  # the per-image path finds out whether Triton itself is broken
            reason = f"the one-launch batch raised {type(exc).__name__}: {exc}"
            _batch_off.append(reason)
    if reason is not None and len(geometries) > 1:
        dispatch.warn_once(f"{OP}:batch:{reason}", f"{OP}: one launch per image for this batch ({reason})")
    return [
        postprocess(
            logits[image], boxes_cxcywh[image], mask_logits[image], geometry,
            flags=flags, **kw,
        )
        for image, geometry in enumerate(geometries)
    ]

def describe(flags: Flags | None = None) -> list[dispatch.Verdict]:
    """Every postprocessing implementation with why it is unavailable (for ``doctor``)."""
    return dispatch.explain(OP, read_flags() if flags is None else flags)
