"""The compiled CPU path: Pillow's BILINEAR resize, exactly, vectorized and fused with the normalisation.

Host side of ``_resize_native.c``. The kernel knows nothing about Pillow,
torch or geometry; this module hands it what the one rule says:

- **the tables**: ``pillow_resize.coefficients`` (Pillow's float64 weights
  as int32 at 22 bits, the same tables every path uses);
- **the pass order**: ``pillow_resize.pass_sizes`` of the installed Pillow
  (``"hv"``, ``"vh"``, one pass, or none), read on every call, so the
  dispatcher's self-check (``pillow_resize.pass_order_mismatch``) and this
  path can never disagree about it;
- **the window**: the visible part of the resized image (centre-crop cuts
  it; letterbox pads around it, the pads written here as
  ``cpu.write_normalized`` writes them);
- **the lookup table**: ``cpu.normalization_lut`` of the model's
  :class:`~inference_accel.preprocess.normalization.Normalization` (float32
  or float16, bit-identical to the reference's ``/ 255``, scale, ``- mean``,
  ``/ std``), and whether plane ``c`` reads channel ``2 - c`` (the colour order).

The second pass writes straight into ``out[index]`` (float32 or float16
NCHW, channels reordered on the way when the model's order is not the
frame's); the only intermediate is the uint8 row ring of the first pass, a
few rows per thread. Chunks of output rows run on the process's worker threads (:mod:`inference_accel.workers`, the
``preprocess-cpu`` pool), claimed in C from a shared atomic counter, so a
late or preempted thread never holds the frame up; each thread releases the
GIL once per frame.

**Instruction set.** The helper carries portable C, AVX2, AVX-512
(BW/VL/VBMI/VNNI) and, on aarch64, NEON kernels and reports which of them
this CPU runs. :data:`ISA_FLAG` (``INFERENCE_ACCEL_PREPROC_ISA``) picks one:
``auto`` (default: the best this CPU runs), ``portable``, ``avx2``,
``avx512`` or ``neon``. A value outside that list is a
:class:`~inference_accel.errors.FlagValueError` naming the variable; a valid
one this CPU or build cannot run makes the native path unavailable (the
Pillow-band ``cpu`` path takes over, ``doctor`` says why).

>>> import numpy as np
>>> from PIL import Image
>>> frame = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
>>> if native_reason() is None:
...     ours = resize_native(frame, (31, 47))
...     theirs = np.asarray(Image.fromarray(frame).resize((47, 31), Image.BILINEAR))
...     assert (ours == theirs).all()
"""

from __future__ import annotations

import functools
import os
from typing import Mapping

import numpy as np
import torch

from inference_accel.errors import FlagValueError
from inference_accel.preprocess import pillow_resize
from inference_accel.preprocess.cpu import POOL, check_cpu_out, fill_padding, normalization_lut, visible_content
from inference_accel.preprocess.cpu import _parts as band_parts  # one band rule for both CPU paths
from inference_accel.preprocess.geometry import Geometry
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.normalization import resolve as resolve_normalization
from inference_accel.workers import CPU_THREADS, pool

ISA_FLAG = "INFERENCE_ACCEL_PREPROC_ISA"
ISA_CHOICES = ("auto", "portable", "avx2", "avx512", "neon")
# Best first: what "auto" takes among the instruction sets this CPU runs.
ISA_PREFERENCE = ("avx512", "avx2", "neon", "portable")
# The largest frame side this path takes. The C plan refuses any table that
# breaks the premises of its exactness proof; test_preprocess_native checks
# that tables of this size keep them (coefficient sum bound) with room to spare.
MAX_SIDE = 1 << 16
# Work units of a frame: source pixels + OUTPUT_WEIGHT x visible output pixels
# (an output pixel costs a few source pixels' worth: its taps, the second
# pass, the table lookups). Below PARALLEL_MIN_PIXELS units a second thread
# costs more than it saves: waking a pool thread takes 50-150 us here.
# Measured on the 2-core dev machine (1 vs 2 threads, -> 312x312): 320x240
# 0.31 vs 0.36 ms, 640x360 0.42 vs 0.37 ms, 1280x720 1.16 vs 0.81 ms.
OUTPUT_WEIGHT = 4
PARALLEL_MIN_PIXELS = 1 << 19
THREADS = CPU_THREADS

try:
    from inference_accel.preprocess import _resize_native
except ImportError as _exc:  # not built (no compiler at install time): the Pillow-band path runs
    _resize_native = None
    _IMPORT_ERROR: str | None = f"compiled helper not importable ({_exc})"
else:
    _IMPORT_ERROR = None

__all__ = [
    "ISA_FLAG",
    "ISA_CHOICES",
    "MAX_SIDE",
    "available_isas",
    "read_isa",
    "resolve_isa",
    "native_reason",
    "isa_line",
    "threads_rule",
    "resize_native",
    "preprocess_native",
]


def available_isas() -> tuple[str, ...]:
    """Instruction sets the built helper can run on this CPU (``()`` if it is not built).

    >>> "portable" in available_isas() or native_reason() is not None
    True
    """
    return _isas_of(_resize_native) if _resize_native is not None else ()


@functools.lru_cache(maxsize=4)
def _isas_of(module) -> tuple[str, ...]:
    return tuple(module.isas())  # CPU features do not change while the process runs


def read_isa(environ: Mapping[str, str] | None = None) -> str:
    """:data:`ISA_FLAG` from ``environ`` (default ``os.environ``): one of :data:`ISA_CHOICES`.

    Unset or empty is ``auto``; case and surrounding spaces are ignored;
    anything else raises :class:`FlagValueError`.

    >>> read_isa({}), read_isa({ISA_FLAG: " AVX2 "})
    ('auto', 'avx2')
    """
    raw = (os.environ if environ is None else environ).get(ISA_FLAG, "")
    value = raw.strip().lower() or "auto"
    if value not in ISA_CHOICES:
        raise FlagValueError(f"{ISA_FLAG}={raw!r} is not one of {', '.join(ISA_CHOICES)}")
    return value


def resolve_isa(requested: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(instruction set to use, None) or (None, why the native path cannot run).

    ``requested``: an explicit choice (tests); ``None`` reads :data:`ISA_FLAG`.
    """
    if _resize_native is None:
        return None, _IMPORT_ERROR
    choice = read_isa(environ) if requested is None else requested
    if choice not in ISA_CHOICES:
        raise FlagValueError(f"instruction set {choice!r} is not one of {', '.join(ISA_CHOICES)}")
    runs = available_isas()
    if choice == "auto":
        return next(isa for isa in ISA_PREFERENCE if isa in runs), None
    if choice not in runs:
        return None, f"{ISA_FLAG}={choice} but this CPU and build run only {', '.join(runs)}"
    return choice, None


def native_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the native path cannot run in this process (None: it can).

    Raises :class:`FlagValueError` for a malformed :data:`ISA_FLAG`.
    """
    return resolve_isa(None, environ)[1]


def isa_line(environ: Mapping[str, str] | None = None) -> str:
    """One line for ``inference-accel doctor``: the instruction set in use and why."""
    if _resize_native is None:
        return f"not built: {_IMPORT_ERROR}"
    runs = ", ".join(available_isas())
    try:
        setting = read_isa(environ)
        isa, reason = resolve_isa(None, environ)
    except FlagValueError as exc:
        return f"error: {exc}"
    if isa is None:
        return f"none: {reason}"
    return f"{isa} ({ISA_FLAG}={setting}; this CPU runs: {runs})"


def threads_rule() -> str:
    """The native path's thread count in words, for ``inference-accel doctor``."""
    return (
        f"up to {THREADS} thread(s) on the {POOL} pool: 2 from {PARALLEL_MIN_PIXELS} work units on "
        f"(source pixels + {OUTPUT_WEIGHT} x output pixels), chunks of rows claimed from a shared counter"
    )


# -- plans: tables and pass order for one geometry, cached ----------------------------------
def _table(in_size: int, out_size: int) -> tuple:
    t = pillow_resize.coefficients(in_size, out_size)
    return (t.xmin, t.xsize, t.coef, t.ksize)


@functools.lru_cache(maxsize=64)
def _plan(
    in_hw: tuple[int, int], out_hw: tuple[int, int], window: tuple[int, int, int, int], isa: str, order: str
) -> object:
    """The C plan (a capsule): split coefficient tables of the visible outputs, checked."""
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    rx0, rx1, ry0, ry1 = window
    htable = _table(in_w, out_w) if "h" in order else None
    vtable = _table(in_h, out_h) if "v" in order else None
    return _resize_native.make_plan(isa, order, in_h, in_w, out_h, out_w, rx0, rx1, ry0, ry1, htable, vtable)


def _order(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str:
    """The installed Pillow's passes as the kernel spells them: "hv", "vh", "h", "v" or ""."""
    return "".join(pillow_resize.pass_sizes(in_hw, out_hw))


def _frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` itself if the kernel can read it (pixels packed, rows at a positive stride), else a copy."""
    s = frame.strides
    if s[2] == 1 and s[1] == 3 and s[0] >= 3 * frame.shape[1]:
        return frame
    return np.ascontiguousarray(frame)


def _parts(threads: int, pixels: int) -> int:
    """Threads worth using for ``pixels`` work units (see OUTPUT_WEIGHT), up to ``threads``.

    >>> _parts(2, 100_000), _parts(2, 2_073_600), _parts(1, 2_073_600), _parts(8, 2_073_600)
    (1, 2, 1, 3)
    """
    return band_parts(threads, pixels, PARALLEL_MIN_PIXELS)  # the module global: tests patch it


# Chunks per thread when several threads share a frame, and the fewest output
# rows a chunk gets (each chunk boundary recomputes a few first-pass rows).
CHUNKS_PER_THREAD = 4
MIN_CHUNK_ROWS = 16


def _chunk_rows(y0: int, y1: int, threads: int) -> int:
    """Rows per chunk when ``threads`` threads share rows [y0, y1) (all of them for one thread).

    >>> _chunk_rows(0, 312, 1), _chunk_rows(0, 312, 2), _chunk_rows(0, 20, 2)
    (312, 39, 20)
    """
    rows = y1 - y0
    if threads <= 1:
        return max(rows, 1)
    parts = max(1, min(threads * CHUNKS_PER_THREAD, rows // MIN_CHUNK_ROWS))
    return -(-rows // parts)


def _run_rows(run, y0: int, y1: int, threads: int) -> None:
    """Compute rows [y0, y1) with ``run(y0, y1, counter, chunk)`` on up to ``threads`` threads.

    One call per thread, the calling thread included: in C, with the GIL
    released once, each claims chunks of rows from the shared ``counter``
    (an atomic increment) until none is left. A pool thread that wakes late,
    or a core taken by another process, just ends up with fewer chunks: the
    frame never waits for a band that has not started, and no thread has to
    win the GIL back between chunks.
    """
    chunk = _chunk_rows(y0, y1, threads)
    if chunk >= y1 - y0:
        run(y0, y1)
        return
    counter = np.zeros(1, np.int64)
    helpers = min(threads, -(-(y1 - y0) // chunk)) - 1
    futures = [pool(POOL, CPU_THREADS).submit(run, y0, y1, counter, chunk) for _ in range(helpers)]
    try:
        run(y0, y1, counter, chunk)
    finally:
        for future in futures:
            future.result()


def _require(isa: str | None) -> str:
    chosen, reason = resolve_isa(isa)
    if chosen is None:
        raise RuntimeError(f"the native preprocessing path cannot run: {reason}")
    return chosen


def resize_native(
    frame: np.ndarray, out_hw: tuple[int, int], isa: str | None = None, threads: int = THREADS
) -> np.ndarray:
    """Pillow's BILINEAR resize of a uint8 (H, W, 3) frame, channel order kept (uint8 (h, w, 3)).

    Byte-identical to ``Image.fromarray(frame).resize((w, h), BILINEAR)`` of
    the installed Pillow. ``isa``: force an instruction set (default: the
    :data:`ISA_FLAG` choice).
    """
    chosen = _require(isa)
    frame = _frame(frame)
    in_hw = (int(frame.shape[0]), int(frame.shape[1]))
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    out = np.empty(out_hw + (3,), np.uint8)
    plan = _plan(in_hw, out_hw, (0, out_hw[1], 0, out_hw[0]), chosen, _order(in_hw, out_hw))
    run = functools.partial(_resize_native.run, plan, frame, out, None, False)
    _run_rows(run, 0, out_hw[0], _parts(threads, in_hw[0] * in_hw[1] + OUTPUT_WEIGHT * out_hw[0] * out_hw[1]))
    return out


def preprocess_native(
    frame: np.ndarray,
    out: torch.Tensor,
    index: int,
    geometry: Geometry,
    bgr: bool = True,
    threads: int = THREADS,
    isa: str | None = None,
    normalization: Normalization | None = None,
) -> None:
    """Preprocess a uint8 (H, W, 3) frame into ``out[index]`` (CPU, float32/float16), exactly.

    ``bgr``: the frame's order; ``normalization``: the model's constants and
    channel order (None: ImageNet, RGB). Preconditions (checked by
    ``api.preprocess_into``): ``frame`` a validated uint8 HWC array of size
    ``geometry.frame_hw`` with sides <= :data:`MAX_SIDE`; ``out`` a CPU
    float32/float16 tensor (N, 3, H, W), (H, W) == ``geometry.input_hw``,
    unit stride along W. Canvas pixels outside the
    content (letterbox) get the value of a black pixel; content outside the
    canvas (centre-crop) is never computed.
    """
    check_cpu_out(out)
    chosen = _require(isa)
    normalization = resolve_normalization(normalization)
    lut = normalization_lut(out.dtype, normalization)
    target = out.detach()[index].numpy()  # (3, H, W) view of the caller's buffer
    x0, y0 = geometry.content[:2]
    cx0, cy0, cx1, cy1 = visible_content(geometry)
    fill_padding(target, lut, (cx0, cy0, cx1, cy1))
    if cx0 >= cx1 or cy0 >= cy1:
        return
    frame = _frame(frame)
    in_hw = (int(frame.shape[0]), int(frame.shape[1]))
    window = (cx0 - x0, cx1 - x0, cy0 - y0, cy1 - y0)  # visible part, resized coordinates
    plan = _plan(in_hw, tuple(geometry.resized_hw), window, chosen, _order(in_hw, geometry.resized_hw))
    visible = target[:, cy0:cy1, cx0:cx1]
    run = functools.partial(_resize_native.run, plan, frame, visible, lut, normalization.reverses(bgr))
    work = in_hw[0] * in_hw[1] + OUTPUT_WEIGHT * (cx1 - cx0) * (cy1 - cy0)
    _run_rows(run, window[2], window[3], _parts(threads, work))
