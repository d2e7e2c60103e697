"""The compiled executor of :mod:`~inference_accel.integrations.stock_masks`: dense canvases and COCO RLE.

``_stock_masks_native`` (``_stock_masks_native.c``, built by ``setup.py``)
runs the stock ``resize(BILINEAR, antialias) > 0`` chain of every mask in C,
exactly (the argument is in the C file's header), and writes the result
where the caller wants it: straight into a dense (N, CH, CW) bool canvas,
each byte once, or as COCO compressed RLE strings (column-major over the
canvas), without a Python step per mask. Masks are split over the
post-processing worker threads (the GIL is released per call); the thread
count follows the sparse postprocessing's rule
(``sparse_cpu._threads``: one thread per 4 masks from 8 masks on, up to the
usable CPUs; ``INFERENCE_ACCEL_POSTPROC_THREADS`` overrides).

It covers what :func:`stock_masks.unsupported_reason` accepts (upsampling and
unchanged axes). :func:`native_reason` says why it does not run (not built,
or ``INFERENCE_ACCEL_POSTPROC_NATIVE=false``); the caller then runs the numpy
path of :mod:`stock_masks` and says so once.

>>> import numpy as np, torch
>>> from torchvision.transforms import functional as TF
>>> logits = np.random.default_rng(0).standard_normal((2, 6, 5)).astype(np.float32)
>>> stock = TF.resize(torch.from_numpy(logits), [37, 23], interpolation=TF.InterpolationMode.BILINEAR) > 0
>>> from inference_accel.integrations.stock_masks import kernel_check
>>> mode, _ = kernel_check()  # the chain the installed torch uses
>>> native_reason() is not None or bool((threshold_dense(logits, (37, 23), mode) == stock.numpy()).all())
True
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np

from inference_accel.flags import POSTPROC_NATIVE_FLAG, read_postproc_native
from inference_accel.integrations.stock_masks import FMA, PLAIN, axis_plan, unsupported_reason
from inference_accel.postprocess.sparse_cpu import _threads as sparse_threads
from inference_accel.workers import CPU_THREADS, pool

try:
    from inference_accel.integrations import _stock_masks_native
except ImportError as _exc:  # not built (no compiler at install time): the numpy path runs
    _stock_masks_native = None
    _IMPORT_ERROR: str | None = f"compiled helper _stock_masks_native not importable ({_exc})"
else:
    _IMPORT_ERROR = None


def native_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the compiled executor does not run (None: it does).

    >>> native_reason({POSTPROC_NATIVE_FLAG: "false"})
    'INFERENCE_ACCEL_POSTPROC_NATIVE=false'
    """
    if not read_postproc_native(environ):
        return f"{POSTPROC_NATIVE_FLAG}=false"
    return _IMPORT_ERROR


def instruction_set() -> str | None:
    """``"avx2+fma"`` or ``"portable"`` (the build the helper picked at import), None when not built."""
    return None if _stock_masks_native is None else _stock_masks_native.instruction_set()


@functools.lru_cache(maxsize=256)
def _axis(in_size: int, out_size: int) -> tuple:
    """One axis as the helper takes it: (first, length, taps (G, K), weights (K, out), in, out, K)."""
    plan = axis_plan(in_size, out_size)
    k = int(plan.weights.shape[1])
    return (
        np.ascontiguousarray(plan.first, np.int64),
        np.ascontiguousarray(plan.length, np.int64),
        np.ascontiguousarray(plan.group_taps, np.int64),
        np.ascontiguousarray(plan.weights.T, np.float32),
        in_size,
        out_size,
        k,
    )


def _prepare(logits: np.ndarray, out_hw, mode: str, canvas_hw, offset):
    if _stock_masks_native is None:
        raise RuntimeError(_IMPORT_ERROR)
    if mode not in (FMA, PLAIN):
        raise ValueError(f"mode must be {FMA!r} or {PLAIN!r}, got {mode!r}")
    values = np.ascontiguousarray(logits, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"logits must be (N, h, w), got shape {values.shape}")
    if not np.isfinite(values).all():
        # torch's chain has no zero-weight taps past a window; ours may (0 * inf is NaN)
        raise ValueError("logits must be finite (the stock code handles inf / NaN)")
    n, h, w = values.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    reason = unsupported_reason((h, w), (oh, ow))
    if reason is not None:
        raise ValueError(reason)
    canvas = (oh, ow) if canvas_hw is None else (int(canvas_hw[0]), int(canvas_hw[1]))
    oy, ox = int(offset[0]), int(offset[1])
    if oy < 0 or ox < 0 or oy + oh > canvas[0] or ox + ow > canvas[1]:
        raise ValueError(f"a {oh}x{ow} mask at {(oy, ox)} does not fit a {canvas[0]}x{canvas[1]} canvas")
    head = (values, n, h, w, _axis(h, oh), _axis(w, ow), canvas, (oy, ox))
    return values, head, canvas


def _chunks(n: int, area: int, threads: int | None) -> list[tuple[int, int]]:
    threads = sparse_threads(n, area, native=True) if threads is None else max(1, int(threads))
    bounds = np.linspace(0, n, min(threads, max(n, 1)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run(call, chunks: Sequence[tuple[int, int]], threads: int) -> list:
    if len(chunks) <= 1:
        return [call(a, b) for a, b in chunks]
    return list(pool("postprocess-cpu", max(threads, CPU_THREADS)).map(lambda ab: call(*ab), chunks))


def threshold_dense(
    logits: np.ndarray,
    out_hw: tuple[int, int],
    mode: str,
    canvas_hw: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """``resize(logits, out_hw) > 0`` per mask, stock-exact, on an (N, CH, CW) bool canvas at ``offset`` (y, x).

    ``out``: a C-contiguous (N, CH, CW) one-byte array to fill (e.g. a bool
    tensor's ``.numpy()``), every byte written once; default: a new one.
    ``mode``: ``"fma"`` or ``"plain"`` (:func:`stock_masks.kernel_check`).
    """
    values, head, canvas = _prepare(logits, out_hw, mode, canvas_hw, offset)
    n = values.shape[0]
    if out is None:
        out = np.empty((n, *canvas), bool)
    if out.shape != (n, *canvas) or out.itemsize != 1 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous one-byte array of shape {(n, *canvas)}, got {out.shape} {out.dtype}")
    chunks = _chunks(n, int(out_hw[0]) * int(out_hw[1]), threads)
    _run(lambda a, b: _stock_masks_native.threshold_dense(*head, a, b, mode == FMA, out), chunks, len(chunks))
    return out


def threshold_rle(
    logits: np.ndarray,
    out_hw: tuple[int, int],
    mode: str,
    canvas_hw: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
    threads: int | None = None,
) -> list[bytes]:
    """The same masks as COCO compressed RLE strings over the canvas (pycocotools' ``counts`` bytes).

    >>> from pycocotools import mask as mask_utils
    >>> logits = np.array([[[-1.0, 2.0], [3.0, -4.0]]], np.float32)
    >>> dense = threshold_dense(logits, (3, 4), "fma", canvas_hw=(4, 5), offset=(1, 0))
    >>> rle = threshold_rle(logits, (3, 4), "fma", canvas_hw=(4, 5), offset=(1, 0))
    >>> rle[0] == mask_utils.encode(np.asfortranarray(dense[0].astype(np.uint8)))["counts"]
    True
    """
    values, head, _ = _prepare(logits, out_hw, mode, canvas_hw, offset)
    chunks = _chunks(values.shape[0], int(out_hw[0]) * int(out_hw[1]), threads)
    parts = _run(lambda a, b: _stock_masks_native.threshold_rle(*head, a, b, mode == FMA, None), chunks, len(chunks))
    return [s for part in parts for s in part]
