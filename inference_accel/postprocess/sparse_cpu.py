"""Sparse CPU postprocessing: the reference's pixels without the dense masks.

The reference upsamples every kept mask to the full frame with torch's CPU
``F.interpolate(bilinear, align_corners=False)`` and thresholds at ``> 0``.
This executor computes the same pixels touching only what can be positive.

**torch's CPU arithmetic** (measured bitwise on torch 2.14, see
``docs/bench/postprocess.md``; the kernel is ``upsample_generic_Nd`` with
``HelperInterpLinear``, compiled once per CPU capability):

- per axis, ``scale = float32(in) / float32(out)``;
  ``src = scale * (i + 0.5) - 0.5`` clamped at 0; ``i0 = min(floor(src),
  in - 1)``, ``i1 = i0 + (i0 < in - 1)``; ``l1 = src - i0`` clamped to
  [0, 1]; ``l0 = 1 - l1``; ``in == out`` gives ``i0 = i1 = i``, ``l0 = 1``,
  ``l1 = 0``;
- rows first along x: ``t_r = v[r, x0] * l0x + v[r, x1] * l1x`` for the two
  tap rows, then ``value = t_0 * l0y + t_1 * l1y``;
- AVX2 / AVX512 builds contract ``a * b + c * d`` into ``fma(a, b, c * d)``
  (the first product fused, the second rounded) and ``scale * (i + 0.5) -
  0.5`` into ``fma(scale, i + 0.5, -0.5)``; the DEFAULT build fuses nothing;
- outputs with ``out_h + out_w <= 128`` take another kernel
  (``cpu_upsample_linear_channels_last``): weights ``w_ab = l_a_y * l_b_x``
  and ``v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11`` left to right (FMA
  builds: ``fma(v11, w11, fma(v10, w10, fma(v00, w00, v01 * w01))))``).

:func:`torch_cpu_arith` checks which of the two orders the installed torch
uses on this machine against ``F.interpolate`` itself (once per process)
before the fast path is trusted; the FMA is emulated exactly in float64 with
round-to-odd (:func:`fma32`).

**Sparsity.** A value can be positive only if one of its four taps is, so
per mask: the bounding box of the positive logit cells maps to the output
rows/columns whose taps touch it (exact index tables, not a guessed halo).
Inside, the horizontal pass ``t_r`` is computed once per (source row, output
column) exactly as torch computes it. For each *band* (output rows sharing a
tap pair) and column, the two tap values ``A = t_{y0}``, ``B = t_{y1}`` decide
the whole band segment when they agree: both safely positive -> every row
positive; both ``<= 0`` (or a NaN) -> none. When they have opposite signs the
value along the band is monotone (``l1`` grows, ``l0 = 1 - l1`` shrinks, and a
rounded monotone sum stays monotone), so the positive rows are a prefix or a
suffix of the segment and a binary search over the rows finds the boundary
(``log2(band height)`` evaluations). Only same-sign tiny or infinite taps are
evaluated row by row. The result is foreground column intervals, turned into
tight-crop column-major runs (:mod:`crop_rle`) without ever building the
crop.

**Two executors of that algorithm.** The compiled helper
(``_sparse_native.c``, built at install time with ``-ffp-contract=off`` and
C99's correctly rounded ``fmaf``) runs one mask per call with the GIL
released, so two threads really run in parallel; it evaluates the mixed band
segments pixel by pixel. The numpy executor (:func:`mask_crop_runs`) is the
fallback when the helper is missing or ``INFERENCE_ACCEL_POSTPROC_NATIVE=false``;
it binary-searches the mixed segments. Both are tested against the dense
reference pixel for pixel. :func:`native_reason` says which one runs and why.

>>> import torch
>>> logits = torch.full((2, 3), -9.0); logits[0, 2] = 3.0
>>> boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2)
>>> masks = -torch.ones(2, 4, 4); masks[0, 1, 1] = 2.0
>>> det = postprocess_sparse_cpu(logits, boxes, masks, frame_hw=(8, 8))
>>> det.mask.offsets.tolist(), det.mask.area.tolist()
([[2, 2]], [4])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import supervision as sv
import torch

from inference_accel.arguments import (
    check_optional_positive_int,
    check_positive_int,
    check_size,
    check_threshold,
)
from inference_accel.flags import (
    POSTPROC_NATIVE_FLAG,
    POSTPROC_THREADS_FLAG,
    read_postproc_native,
    read_postproc_threads,
)
from inference_accel.postprocess.crop_rle import (
    CropRuns,
    build_compact_mask,
    encode_dense_crop,
    intervals_to_crop_runs,
)
from inference_accel.postprocess.mask_geometry import MaskPlacement, mask_placement
from inference_accel.postprocess.reference import selection_to_detections
from inference_accel.postprocess.selection import select_detections
# torch's tap tables and bilinear arithmetic (shared with the Triton launcher).
from inference_accel.postprocess.taps import (  # noqa: F401 - re-exported
    FMA,
    PLAIN,
    SMALL_OUTPUT_SUM,
    AxisTable,
    axis_table,
    fma32,
    lin2,
    torch_cpu_arith,
    upsample_values,
)
from inference_accel.preprocess.geometry import Geometry
from inference_accel.workers import CPU_THREADS, pool

ARITHS = (FMA, PLAIN)
# Tap values in [SAFE_LO, SAFE_HI] give a positive product with any weight in
# (2**-40, 1] and no overflow, so two such taps make a positive sum.
SAFE_LO = np.float32(2.0**-60)
SAFE_HI = np.float32(2.0**60)
# float32 rounds an exact value to > 0 iff it exceeds half the smallest
# subnormal (2**-150 itself ties to even, i.e. to 0).
HALF_TINY = 2.0**-150

f32 = np.float32

try:
    from inference_accel.postprocess import _sparse_native
except ImportError as _exc:  # not built (no compiler at install time): numpy executor
    _sparse_native = None
    _NATIVE_IMPORT_ERROR = f"compiled helper not importable ({_exc})"
else:
    _NATIVE_IMPORT_ERROR = None


def native_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the compiled executor is not used (None: it is).

    >>> native_reason({POSTPROC_NATIVE_FLAG: "false"})
    'INFERENCE_ACCEL_POSTPROC_NATIVE=false'
    """
    if not read_postproc_native(environ):
        return f"{POSTPROC_NATIVE_FLAG}=false"
    return _NATIVE_IMPORT_ERROR


# -- exact float32 arithmetic -------------------------------------------------
def positive_lin2(a, wa, b, wb, arith: str) -> npt.NDArray[np.bool_]:
    """``lin2(a, wa, b, wb) > 0`` without rounding the result to float32.

    FMA: the exact value ``a * wa + q`` (q = ``b * wb`` rounded) rounds to a
    positive float32 iff it exceeds 2**-150; its float64 sum decides that
    except when it lands exactly on 2**-150, where the TwoSum error does.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.multiply(b, wb, dtype=np.float32)
        if arith != FMA:
            return np.add(np.multiply(a, wa, dtype=np.float32), q, dtype=np.float32) > 0
        p = np.multiply(a, wa, dtype=np.float64)
        s = p + q
        out = s > HALF_TINY
        tie = s == HALF_TINY
        if tie.any():
            q64 = np.broadcast_to(q, s.shape)[tie].astype(np.float64)
            pt = np.broadcast_to(p, s.shape)[tie]
            st = s[tie]
            bb = st - pt
            err = (pt - (st - bb)) + (q64 - bb)
            out[tie] = err > 0
        return out


# -- the sparse per-mask kernel -----------------------------------------------
@dataclass(frozen=True)
class PlacementTables:
    """Everything per image that does not depend on the mask."""

    ty: AxisTable
    tx: AxisTable
    rows: tuple[int, int]  # visible output rows of the upsampled window
    cols: tuple[int, int]
    top_left: tuple[int, int]
    band_start: npt.NDArray[np.int64]  # first output row of each y band
    band_stop: npt.NDArray[np.int64]
    band_of_row: npt.NDArray[np.int64]
    small: bool


def placement_tables(placement: MaskPlacement, frame_hw: tuple[int, int], arith: str) -> PlacementTables:
    r0, r1 = placement.rows
    c0, c1 = placement.cols
    oh, ow = placement.out_hw
    top, left = placement.top_left
    fh, fw = frame_hw
    ty = axis_table(r1 - r0, oh, arith)
    tx = axis_table(c1 - c0, ow, arith)
    rows = (max(0, -top), min(oh, fh - top))
    cols = (max(0, -left), min(ow, fw - left))
    change = np.flatnonzero(np.diff(ty.i0)) + 1
    band_start = np.concatenate(([0], change)).astype(np.int64)
    band_stop = np.concatenate((change, [oh])).astype(np.int64)
    band_of_row = np.repeat(np.arange(band_start.size), band_stop - band_start)
    return PlacementTables(
        ty, tx, rows, cols, (top, left), band_start, band_stop, band_of_row,
        small=oh + ow <= SMALL_OUTPUT_SUM,
    )


def mask_crop_runs(window: np.ndarray, t: PlacementTables, arith: str) -> CropRuns | None:
    """One mask's (h, w) logit window -> tight crop runs in frame pixels (None: empty)."""
    top, left = t.top_left
    positive = window > 0
    if not positive.any():
        return None  # every tap <= 0 or NaN: nothing can be positive
    if t.small:
        values = upsample_values(window, (t.ty.i0.size, t.tx.i0.size), arith)
        (a, b), (c, d) = t.rows, t.cols
        return encode_dense_crop(values[a:b, c:d] > 0, a + top, c + left)
    pr = np.flatnonzero(positive.any(axis=1))
    pc = np.flatnonzero(positive.any(axis=0))
    ty, tx = t.ty, t.tx
    # Output rows/cols with a tap inside the positive box (tables are monotone).
    i_lo = max(t.rows[0], int(np.searchsorted(ty.i1, pr[0], "left")))
    i_hi = min(t.rows[1], int(np.searchsorted(ty.i0, pr[-1], "right")))
    j_lo = max(t.cols[0], int(np.searchsorted(tx.i1, pc[0], "left")))
    j_hi = min(t.cols[1], int(np.searchsorted(tx.i0, pc[-1], "right")))
    if i_lo >= i_hi or j_lo >= j_hi:
        return None
    s0, s1 = int(ty.i0[i_lo]), int(ty.i1[i_hi - 1]) + 1
    # Horizontal pass, exactly torch's t_r, for the source rows in use.
    rows = window[s0:s1]
    x0, x1 = tx.i0[j_lo:j_hi], tx.i1[j_lo:j_hi]
    hpass = lin2(rows[:, x0], tx.w0[j_lo:j_hi], rows[:, x1], tx.w1[j_lo:j_hi], arith)
    # Bands (output rows sharing a tap pair) inside [i_lo, i_hi).
    b_lo, b_hi = int(t.band_of_row[i_lo]), int(t.band_of_row[i_hi - 1]) + 1
    bs = np.maximum(t.band_start[b_lo:b_hi], i_lo)
    be = np.minimum(t.band_stop[b_lo:b_hi], i_hi)
    tap0 = ty.i0[bs] - s0
    tap1 = ty.i1[bs] - s0
    # (columns, bands): x-major, the order of the output stream.
    A = hpass[tap0].T
    B = hpass[tap1].T
    with np.errstate(invalid="ignore"):
        full = (A >= SAFE_LO) & (A <= SAFE_HI) & (B >= SAFE_LO) & (B <= SAFE_HI)
        maybe = ((A > 0) | (B > 0)) & ~(np.isnan(A) | np.isnan(B))
    mixed = maybe & ~full
    ncols, nb = full.shape
    blen = be - bs
    # Full segments: consecutive full bands of a column make one interval.
    padded = np.zeros((ncols, nb + 2), dtype=np.int8)
    padded[:, 1:-1] = full
    edges = np.diff(padded.ravel())
    run_first = np.flatnonzero(edges == 1)  # flat index (in padded) of the first full band
    run_last = np.flatnonzero(edges == -1)  # one past the last full band
    f_col = run_first // (nb + 2)
    f_start = bs[run_first - f_col * (nb + 2)]
    f_stop = be[run_last - 1 - f_col * (nb + 2)]
    # Mixed segments: taps A (upper row) and B (lower row) disagree.
    m_pair = np.flatnonzero(mixed.ravel())
    if m_pair.size:
        m_col = m_pair // nb
        m_band = m_pair - m_col * nb
        m_start = bs[m_band]
        m_len = blen[m_band]
        a_val = A.ravel()[m_pair]
        b_val = B.ravel()[m_pair]
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(a_val) & np.isfinite(b_val)
            rising = finite & (a_val <= 0) & (b_val >= 0)
            falling = finite & (a_val >= 0) & (b_val <= 0) & ~rising
        mono = rising | falling
        # Opposite-sign taps: along a band l1 grows and l0 = 1 - l1 shrinks
        # (both monotone in float32) and torch's value is a monotone rounding
        # of a monotone exact sum, so the positive rows of the segment are a
        # suffix (rising) or a prefix (falling): binary-search the boundary.
        idx = np.flatnonzero(mono)
        mf = falling[idx]
        k = _first_flip(a_val[idx], b_val[idx], m_start[idx], m_len[idx], mf, ty, arith)
        seg_start = np.where(mf, m_start[idx], m_start[idx] + k)
        seg_stop = np.where(mf, m_start[idx] + k, m_start[idx] + m_len[idx])
        keep = seg_stop > seg_start
        p_col, p_start, p_stop = m_col[idx][keep], seg_start[keep], seg_stop[keep]
        rest = np.flatnonzero(~mono)
        if rest.size:  # same-sign tiny or infinite taps: every pixel evaluated
            seg, r_start, r_stop = _pixelwise(a_val[rest], b_val[rest], m_start[rest], m_len[rest], ty, arith)
            p_col = np.concatenate((p_col, m_col[rest][seg]))
            p_start = np.concatenate((p_start, r_start))
            p_stop = np.concatenate((p_stop, r_stop))
        col = np.concatenate((f_col, p_col))
        start = np.concatenate((f_start, p_start))
        stop = np.concatenate((f_stop, p_stop))
        order = np.argsort(col * (int(be[-1]) + 1) + start, kind="stable")
        col, start, stop = col[order], start[order], stop[order]
    else:
        col, start, stop = f_col, f_start, f_stop
    if col.size == 0:
        return None
    return intervals_to_crop_runs(col + (j_lo + left), start + top, stop + top)


def _first_flip(a_val, b_val, start, length, falling, ty: AxisTable, arith: str) -> np.ndarray:
    """Per segment, the first offset k where ``positive(k) != falling`` (length if none).

    ``positive(k) XOR falling`` is monotone (False then True) on each
    segment, so a vectorised binary search over all segments at once costs
    ``log2(longest band)`` evaluations per segment instead of one per row.
    """
    lo = np.zeros(length.shape, dtype=np.int64)
    hi = length.astype(np.int64)
    if length.size == 0:
        return lo
    for _ in range(int(length.max()).bit_length()):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        row = start + np.minimum(mid, length - 1)
        flip = positive_lin2(a_val, ty.w0[row], b_val, ty.w1[row], arith) != falling
        hi = np.where(active & flip, mid, hi)
        lo = np.where(active & ~flip, mid + 1, lo)
    return lo


def _pixelwise(a_val, b_val, start, length, ty: AxisTable, arith: str):
    """Every pixel of the given segments: (segment index, y_start, y_stop) of positive runs."""
    npix = int(length.sum())
    seg = np.repeat(np.arange(length.size), length)
    first = np.cumsum(length) - length
    rows_pix = np.arange(npix) - np.repeat(first - start, length)
    flag = positive_lin2(a_val[seg], ty.w0[rows_pix], b_val[seg], ty.w1[rows_pix], arith)
    head = np.zeros(npix, dtype=bool)
    head[first] = True
    tail = np.zeros(npix, dtype=bool)
    tail[first + length - 1] = True
    prev = np.concatenate(([False], flag[:-1]))
    nxt = np.concatenate((flag[1:], [False]))
    is_start = flag & (head | ~prev)
    is_stop = flag & (tail | ~nxt)
    return seg[is_start], rows_pix[is_start], rows_pix[is_stop] + 1


def mask_crop_runs_native(window: np.ndarray, t: PlacementTables, arith: str) -> CropRuns | None:
    """:func:`mask_crop_runs` through the compiled helper (same result, GIL released)."""
    if t.small:
        return mask_crop_runs(window, t, arith)
    h, w = window.shape
    ty, tx = t.ty, t.tx
    out = _sparse_native.mask_crop_runs(
        window, h, w, ty.i0, ty.i1, ty.w0, ty.w1, ty.i0.size, tx.i0, tx.i1, tx.w0, tx.w1, tx.i0.size,
        t.rows[0], t.rows[1], t.cols[0], t.cols[1], t.top_left[0], t.top_left[1], arith == FMA,
    )
    if out is None:
        return None
    runs, shape, offset = out
    return np.frombuffer(runs, dtype=np.int32).copy(), shape, offset


# -- image level ----------------------------------------------------------------
# Default worker threads of the CPU postprocessing (no override): the
# compiled executor takes one thread per NATIVE_MASKS_PER_THREAD masks from
# 2 * NATIVE_MASKS_PER_THREAD masks on; the numpy executor takes a second
# thread only for 4K-size frames with NUMPY_4K_MIN_MASKS masks or more.
NATIVE_MASKS_PER_THREAD = 4
NUMPY_4K_AREA = 4_000_000
NUMPY_4K_MIN_MASKS = 16
NUMPY_MAX_THREADS = 2


def _threads(n: int, frame_area: int, native: bool) -> int:
    """Worker threads: ``INFERENCE_ACCEL_POSTPROC_THREADS``, else measured defaults.

    Measured on 2 cores (docs/bench/postprocess.md): the compiled executor
    releases the GIL, so two threads pay from 8 masks on (4 masks a
    thread); with more usable CPUs it keeps that share, one thread per 4
    masks up to :data:`~inference_accel.workers.CPU_THREADS` (8 masks -> 2,
    64 masks -> 16 on a 16-CPU machine; unmeasured beyond 2 cores). numpy
    holds the GIL for much of its work, so there a second thread only pays
    when the per-mask arrays are large (4K frames, 16+ masks), and it stays
    at most 2: more threads would mostly wait for the GIL. On 2 CPUs both
    rules give the measured 2.
    """
    override = read_postproc_threads()
    if override is not None:
        return override
    if native and n >= 2 * NATIVE_MASKS_PER_THREAD:
        return max(1, min(CPU_THREADS, n // NATIVE_MASKS_PER_THREAD))
    if not native and frame_area >= NUMPY_4K_AREA and n >= NUMPY_4K_MIN_MASKS:
        return max(1, min(CPU_THREADS, NUMPY_MAX_THREADS))
    return 1


def threads_rule(native: bool) -> str:
    """The default thread count of :func:`_threads` in words, for ``inference-accel doctor``."""
    override = read_postproc_threads()
    if override is not None:
        return f"{override} thread(s) ({POSTPROC_THREADS_FLAG}={override})"
    if native:
        return (
            f"up to {CPU_THREADS} thread(s): compiled helper, 1 thread per {NATIVE_MASKS_PER_THREAD} masks "
            f"from {2 * NATIVE_MASKS_PER_THREAD} masks on ({POSTPROC_THREADS_FLAG} overrides)"
        )
    return (
        f"up to {min(CPU_THREADS, NUMPY_MAX_THREADS)} thread(s): numpy executor, 2 threads only on 4K frames with "
        f"{NUMPY_4K_MIN_MASKS}+ masks ({POSTPROC_THREADS_FLAG} overrides)"
    )


def sparse_masks(
    windows: np.ndarray,
    placement: MaskPlacement,
    frame_hw: tuple[int, int],
    arith: str,
    threads: int | None = None,
    native: bool | None = None,
) -> sv.CompactMask:
    """(N, h, w) float32 logit windows -> ``sv.CompactMask`` over ``frame_hw``.

    ``native``: use the compiled executor (default: when :func:`native_reason`
    is None); True without the helper raises.
    """
    if native is None:
        native = native_reason() is None
    elif native and _sparse_native is None:
        raise RuntimeError(_NATIVE_IMPORT_ERROR)
    per_mask = mask_crop_runs_native if native else mask_crop_runs
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    t = placement_tables(placement, frame_hw, arith)
    n = windows.shape[0]
    threads = _threads(n, frame_hw[0] * frame_hw[1], native) if threads is None else threads
    if threads > 1 and n >= 8:
        # One pool of a stable size (the CPUs, or a larger explicit count);
        # the number of chunks is this call's parallelism.
        chunks = np.array_split(np.arange(n), min(threads, n))
        parts = pool("postprocess-cpu", max(threads, CPU_THREADS)).map(
            lambda idx: [per_mask(windows[i], t, arith) for i in idx], chunks
        )
        crops = [c for part in parts for c in part]
    else:
        crops = [per_mask(windows[i], t, arith) for i in range(n)]
    return build_compact_mask(crops, frame_hw)


def postprocess_sparse_cpu(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    mask_logits: torch.Tensor,
    frame_hw: tuple[int, int] | None = None,
    *,
    geometry: Geometry | None = None,
    threshold: float = 0.4,
    max_detections: int = 300,
    class_mapping: np.ndarray | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    arith: str | None = None,
    threads: int | None = None,
    native: bool | None = None,
) -> sv.Detections:
    """Same arguments and detections as ``postprocess_reference``; the mask is a CompactMask.

    CPU tensors only (the pixels reproduce torch's *CPU* kernel). An invalid
    ``frame_hw``, ``threshold``, ``max_detections`` or ``num_classes`` raises
    :class:`~inference_accel.errors.InvalidArgumentError`. ``arith``
    defaults to :func:`torch_cpu_arith`; ``native`` picks the
    executor (see :func:`sparse_masks`).
    """
    if frame_hw is None:
        if geometry is None:
            raise ValueError("give frame_hw or geometry")
        frame_hw = geometry.frame_hw
    frame_hw = check_size("frame_hw", frame_hw)
    threshold = check_threshold(threshold)
    max_detections = check_positive_int("max_detections", max_detections)
    num_classes = check_optional_positive_int("num_classes", num_classes)
    if arith is None:
        arith = torch_cpu_arith()
        if arith is None:
            raise RuntimeError("torch's CPU bilinear arithmetic matches no known order")
    selection = select_detections(
        logits,
        boxes_cxcywh,
        frame_hw,
        threshold=threshold,
        max_detections=max_detections,
        class_mapping=class_mapping,
        num_classes=num_classes,
        geometry=geometry,
    )
    placement = mask_placement(geometry, mask_logits.shape[-2:], frame_hw)
    r0, r1 = placement.rows
    c0, c1 = placement.cols
    windows = (
        mask_logits.index_select(0, selection.query)[:, r0:r1, c0:c1]
        .float()
        .contiguous()
        .numpy()
    )
    mask = sparse_masks(windows, placement, frame_hw, arith, threads, native)
    return selection_to_detections(selection, mask, class_names)
