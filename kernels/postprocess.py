"""
Sparse mask postprocessing: selection, bounds and column runs on the device
=========================================================================

Four launches (plus ``torch.sigmoid`` and one ``torch.cumsum`` on the same
stream) turn a batch of images' raw RF-DETR outputs into detections and
foreground column intervals, written into fixed-capacity device buffers.
Every kernel's last grid axis is the image: one launch per batch, each
program working on one image, whose inputs are at ``image * stride`` (the
images of one launch share their geometry: frame size, resize mode). No
launch depends on a value read back by the host, nothing is allocated per
frame, so the sequence can be captured in a CUDA graph; the host reads one
packet back at the end.

1. :func:`select_rank_kernel` - for every (query, class) score above the
   threshold, its rank in rfdetr's flat top-k order (descending score, ties
   by ascending flat index, NaN first as ``torch.argsort`` puts it), then
   whether it survives top-k (rank < Q) and the class mapping.
2. :func:`select_emit_kernel` - each survivor's output slot is the number of
   survivors ranked before it; the first ``max_det`` are written with their
   query, mapped class, score and frame box.
3. :func:`mask_bounds_kernel` - per detection, the bounding box of the
   positive logit cells, mapped through torch's tap tables to the output rows
   and columns whose bilinear taps touch it (exact, via binary search in the
   tables), clipped to the visible window.
4. :func:`mask_runs_kernel` - per (detection, block of columns): the bilinear
   value of each pixel inside the bounds, thresholded at ``> 0``, and the
   foreground runs of each column. Launched twice: ``EMIT=False`` counts runs
   per column, a prefix sum turns counts into offsets, ``EMIT=True`` writes
   ``(x, y_start, y_stop)`` at those offsets, so runs land in (image,
   detection, column, row) order without atomics and the host needs no
   sort; the prefix sum runs over the whole batch, so the images share one
   run buffer.

The run kernel has two mask semantics (``MODE``): rfdetr's ``F.interpolate``
bilinear (``MODE_RFDETR``, the arithmetics below) and inference-models'
stock ``torchvision resize(BILINEAR, antialias=True)`` (``MODE_STOCK``), in
torch CUDA's order of ``upsample_gen2d_aa_out_frame`` (1 to ``STOCK_TAPS``
taps per axis, ``v * w`` then one FMA per further tap, rows then columns;
read from its source and SASS in
``inference_accel.postprocess.stock_cuda_model``). Stock masks of
detections chosen by the stock selection come from the bounds and run
kernels alone (``TritonPostprocessor.launch_masks_batch``): the same fixed
buffers, so the stock mask stage can be captured too. NOT VERIFIED ON A GPU:
under the interpreter the FMAs are emulated exactly (``ARITH_CPU_FMA``) and
every pixel equals that numpy model (``tests/test_postprocess_stock_runs.py``).

Float arithmetic. Pixel parity is with the reference on the *same device*,
so the bilinear arithmetic is a compile-time choice (``ARITH``):

- ``ARITH_CPU_FMA`` (0): torch's CPU kernel on AVX2/AVX512 builds:
  ``t = fma(v0, l0, v1 * l1)`` along x for the two tap rows, then
  ``fma(t0, l0y, t1 * l1y)``. The FMA is computed exactly with float64 and
  round-to-odd (:func:`_fma_exact`), so the interpreter (whose ``tl.fma`` is
  an unfused ``x * y + z``) and a GPU give the same bits. Measured bitwise
  against torch under ``TRITON_INTERPRET=1``.
- ``ARITH_CPU_PLAIN`` (1): torch's CPU DEFAULT build, no fusion.
- ``ARITH_CUDA`` (2): the GPU twin of torch's CUDA kernel
  (``upsample_bilinear2d_out_frame``: ``h0 * (w0 * v00 + w1 * v01) + h1 *
  (w0 * v10 + w1 * v11)`` compiled by nvcc with FMA contraction). Written
  here as ``fma(w0, v00, w1 * v01)`` / ``fma(h0, t0, h1 * t1)``, the order
  read from the SASS of torch's wheel. Its tap tables (``taps.CUDA``) keep
  torch CUDA's unchanged-axis taps ``(i, i + 1)`` with weight 0, so ``0 *
  inf = NaN`` propagates as on the GPU; when neither axis is resized torch
  copies the input, and so does the kernel (``copy_input``). NOT VERIFIED ON
  A GPU: no GPU was available; tested under the interpreter against the
  numpy model ``taps.upsample_values(..., CUDA)``. The launcher checks it
  against ``F.interpolate`` on the device at first use and switches the
  Triton path off if it differs.

Every kernel here is launched with ``enable_fp_fusion=False``: each FMA is
written explicitly and nothing else may be contracted. Each kernel's
parameters are listed once, in its :class:`KernelContract` (``SELECT_RANK``,
``SELECT_EMIT``, ``MASK_BOUNDS``, ``MASK_RUNS``): the launcher binds by those
names, ``inference_accel.aot`` compiles the variants they declare, with the
same options.

The tap tables (source index pair and weights per output row/column) are
computed on the host in the reproduced device's order
(``inference_accel.postprocess.taps.axis_table``) once per (window size,
output size) and uploaded.
"""

from __future__ import annotations

import triton
import triton.language as tl

from inference_accel.triton_common import AotVariant, KernelContract, constexpr, pointer, pointers, scalars

ARITH_CPU_FMA = 0
ARITH_CPU_PLAIN = 1
ARITH_CUDA = 2
ARITHS = (ARITH_CPU_FMA, ARITH_CPU_PLAIN, ARITH_CUDA)

# Mask semantics of the run kernel (``MODE``): rfdetr's ``F.interpolate``
# bilinear (two taps per axis), or inference-models' stock
# ``torchvision resize(BILINEAR, antialias=True)`` as torch CUDA computes it
# (1..STOCK_TAPS taps per axis, ``inference_accel.postprocess.stock_cuda_model``).
MODE_RFDETR = 0
MODE_STOCK = 1
STOCK_TAPS = 3

# Limits (checked by the launcher before launching).
MAX_SIDE = 8192  # output frame side; int32 coordinates, 14-step binary search
MAX_MASK_SIDE = 256  # mask logit window side (seg-2xlarge: 192)
SEARCH_STEPS = 14  # 2**14 > MAX_SIDE

# Launch shapes (GPU). Under the interpreter the run kernel takes bigger tiles
# (it pays per operation, not per element); those are interpreter-only values.
SEL_BLOCK = 64  # candidates per selection program and per inner chunk (64 x 64 compares: no spills)
BOUNDS_BLOCK_R = 8  # mask rows per bounds iteration (8 x 256 cells)
RUNS_BLOCK_R = 16  # output rows per iteration of the run kernel
RUNS_BLOCK_C = 32  # output columns per run program: a warp reads consecutive columns
INTERPRETER_RUNS_BLOCK = 64
NUM_WARPS = 4
# Mask logits may come in any of these dtypes (read as float32, exactly as
# the reference's ``.float()``); the launcher converts any other to float32.
MASK_DTYPES = ("fp32", "fp16", "bf16")

# Packet header words (then one detection count per image: see triton_launch._Layout).
HDR_OVERFLOW, HDR_TOTAL = 0, 1
HEADER_WORDS = 4


# -- selection ------------------------------------------------------------------
@triton.jit
def _precedes(p_f, f, p_e, e):
    """True where candidate f comes before e in torch's descending stable argsort."""
    f_nan = p_f != p_f
    e_nan = p_e != p_e
    before_nan = f_nan & (~e_nan | (f < e))
    before_num = ~f_nan & ~e_nan & ((p_f > p_e) | ((p_f == p_e) & (f < e)))
    return before_nan | before_num


# Each kernel's launch contract: every parameter once, in the kernel's order.
# Every kernel is compiled with ``enable_fp_fusion=False`` (the contracts'
# default): each FMA is written explicitly and nothing else may be contracted.
SELECT_RANK = KernelContract(
    "select_rank",
    (
        pointer("prob_ptr", "fp32"),
        *pointers("i32", "map_ptr", "rank_ptr"),
        *scalars("i32", "qc", "num_classes", "num_queries"),
        *scalars("fp32", "threshold"),
        *scalars("i32", "map_len"),
        constexpr("BLOCK", SEL_BLOCK),
    ),
    num_warps=NUM_WARPS,
)


@SELECT_RANK.jit
def select_rank_kernel(
    # Scores, float32, (Q * C,) contiguous: sigmoid(logits) flattened
    # row-major, element e is query e // C, class e % C.
    # One image after another: (B * Q * C,), image b at b * Q * C.
    prob_ptr,
    # Class mapping, int32, (map_len,): our class id for model class c, -1 drops.
    map_ptr,
    # Output, int32, (B * Q * C,): rank of e in its image's top-k order if e
    # survives (score > threshold, rank < Q, mapped class >= 0), else -1.
    rank_ptr,
    qc, num_classes, num_queries, threshold, map_len,
    # Candidates per program and per inner chunk; a power of two for tl.arange.
    BLOCK: tl.constexpr,
):
    """One program ranks BLOCK candidates against all Q*C scores.

    Only candidates above the threshold need a rank, and every score ranked
    before one of them is above the threshold too, so ranks counted over all
    scores equal rfdetr's top-k positions. A block with no candidate above
    the threshold (the common case) only writes -1.
    """
    pid = tl.program_id(0)
    image = tl.program_id(1)
    prob_ptr += image * qc
    rank_ptr += image * qc
    e = pid * BLOCK + tl.arange(0, BLOCK)
    in_range = e < qc
    p_e = tl.load(prob_ptr + e, mask=in_range, other=0.0)
    above = in_range & (p_e > threshold)
    rank = tl.zeros([BLOCK], dtype=tl.int32)
    if tl.max(above.to(tl.int32), axis=0) > 0:
        for start in range(0, qc, BLOCK):
            f = start + tl.arange(0, BLOCK)
            f_ok = f < qc
            p_f = tl.load(prob_ptr + f, mask=f_ok, other=0.0)
            before = _precedes(p_f[None, :], f[None, :], p_e[:, None], e[:, None]) & f_ok[None, :]
            rank += tl.sum(before.to(tl.int32), axis=1)
    cls = e % num_classes
    has_map = in_range & (cls < map_len)
    mapped = tl.load(map_ptr + cls, mask=has_map, other=-1)
    keep = above & (rank < num_queries) & (mapped >= 0)
    tl.store(rank_ptr + e, tl.where(keep, rank, -1), mask=in_range)


SELECT_EMIT = KernelContract(
    "select_emit",
    (
        pointer("rank_ptr", "i32"),
        pointer("prob_ptr", "fp32"),
        pointer("map_ptr", "i32"),
        pointer("boxes_ptr", "fp32"),
        *pointers("i32", "count_ptr", "det_i_ptr"),
        pointer("det_f_ptr", "fp32"),
        *scalars(
            "i32",
            "qc", "num_classes", "num_queries", "max_det", "map_len",
            "stretch", "frame_w", "frame_h",
            "in_w", "in_h", "content_x0", "content_y0",
        ),
        *scalars("fp32", "kx", "ky"),
        constexpr("BLOCK", SEL_BLOCK),
    ),
    num_warps=NUM_WARPS,
)


@SELECT_EMIT.jit
def select_emit_kernel(
    # int32 (B * Q * C,): ranks from select_rank_kernel (-1: not kept).
    rank_ptr,
    # float32 (B * Q * C,): scores.
    prob_ptr,
    # int32 (map_len,): class mapping.
    map_ptr,
    # float32 (B, Q, 4) contiguous: normalised (cx, cy, w, h) per query.
    boxes_ptr,
    # int32 (B,): per image, the number of detections written (min(survivors, max_det)).
    count_ptr,
    # int32 (B, max_det, 2) contiguous: (query, mapped class) per detection.
    det_i_ptr,
    # float32 (B, max_det, 5) contiguous: (score, x1, y1, x2, y2) per detection.
    det_f_ptr,
    qc, num_classes, num_queries, max_det, map_len,
    stretch, frame_w, frame_h,
    in_w, in_h, content_x0, content_y0, kx, ky,
    BLOCK: tl.constexpr,
):
    """One program places BLOCK survivors: slot = survivors ranked before it.

    Boxes follow ``selection.boxes_to_frame`` operation by operation in
    float32 (the kernel is compiled without FP fusion): stretch multiplies by
    the frame size; letterbox/centre-crop map input pixels to frame pixels
    with the host's float32 constants (``Geometry.content_scale``). Program 0
    of each image also writes the image's count.
    """
    pid = tl.program_id(0)
    image = tl.program_id(1)
    rank_ptr += image * qc
    prob_ptr += image * qc
    boxes_ptr += image * num_queries * 4
    count_ptr += image
    det_i_ptr += image * max_det * 2
    det_f_ptr += image * max_det * 5
    e = pid * BLOCK + tl.arange(0, BLOCK)
    in_range = e < qc
    r_e = tl.load(rank_ptr + e, mask=in_range, other=-1)
    kept = r_e >= 0
    slot = tl.zeros([BLOCK], dtype=tl.int32)
    total = 0
    if (tl.max(kept.to(tl.int32), axis=0) > 0) | (pid == 0):
        for start in range(0, qc, BLOCK):
            f = start + tl.arange(0, BLOCK)
            r_f = tl.load(rank_ptr + f, mask=f < qc, other=-1)
            k_f = r_f >= 0
            slot += tl.sum((k_f[None, :] & (r_f[None, :] < r_e[:, None])).to(tl.int32), axis=1)
            total += tl.sum(k_f.to(tl.int32), axis=0)
    if pid == 0:
        tl.store(count_ptr, tl.minimum(total, max_det))
    write = kept & (slot < max_det)
    query = e // num_classes
    cls = e % num_classes
    mapped = tl.load(map_ptr + cls, mask=write & (cls < map_len), other=-1)
    score = tl.load(prob_ptr + e, mask=write, other=0.0)
    cx = tl.load(boxes_ptr + query * 4 + 0, mask=write, other=0.0)
    cy = tl.load(boxes_ptr + query * 4 + 1, mask=write, other=0.0)
    bw = tl.load(boxes_ptr + query * 4 + 2, mask=write, other=0.0)
    bh = tl.load(boxes_ptr + query * 4 + 3, mask=write, other=0.0)
    hw = 0.5 * bw
    hh = 0.5 * bh
    x1 = cx - hw
    y1 = cy - hh
    x2 = cx + hw
    y2 = cy + hh
    fw = frame_w.to(tl.float32)
    fh = frame_h.to(tl.float32)
    if stretch != 0:
        x1 = x1 * fw
        x2 = x2 * fw
        y1 = y1 * fh
        y2 = y2 * fh
    else:
        iw = in_w.to(tl.float32)
        ih = in_h.to(tl.float32)
        cx0 = content_x0.to(tl.float32)
        cy0 = content_y0.to(tl.float32)
        x1 = (x1 * iw - cx0) * kx
        x2 = (x2 * iw - cx0) * kx
        y1 = (y1 * ih - cy0) * ky
        y2 = (y2 * ih - cy0) * ky
    # torch's clamp propagates NaN; Triton's min/max do not unless told.
    x1 = tl.minimum(tl.maximum(x1, 0.0, propagate_nan=tl.PropagateNan.ALL), fw, propagate_nan=tl.PropagateNan.ALL)
    x2 = tl.minimum(tl.maximum(x2, 0.0, propagate_nan=tl.PropagateNan.ALL), fw, propagate_nan=tl.PropagateNan.ALL)
    y1 = tl.minimum(tl.maximum(y1, 0.0, propagate_nan=tl.PropagateNan.ALL), fh, propagate_nan=tl.PropagateNan.ALL)
    y2 = tl.minimum(tl.maximum(y2, 0.0, propagate_nan=tl.PropagateNan.ALL), fh, propagate_nan=tl.PropagateNan.ALL)
    tl.store(det_i_ptr + slot * 2 + 0, query, mask=write)
    tl.store(det_i_ptr + slot * 2 + 1, mapped, mask=write)
    tl.store(det_f_ptr + slot * 5 + 0, score, mask=write)
    tl.store(det_f_ptr + slot * 5 + 1, x1, mask=write)
    tl.store(det_f_ptr + slot * 5 + 2, y1, mask=write)
    tl.store(det_f_ptr + slot * 5 + 3, x2, mask=write)
    tl.store(det_f_ptr + slot * 5 + 4, y2, mask=write)


# -- bounds -----------------------------------------------------------------------
@triton.jit
def _search(tab_ptr, n, value, STEPS: tl.constexpr):
    """Number of entries of the sorted int32 table ``tab[0:n]`` that are < value."""
    lo = 0
    hi = n
    for _ in tl.static_range(STEPS):
        open_ = lo < hi
        mid = (lo + hi) // 2
        less = tl.load(tab_ptr + mid, mask=open_, other=0) < value
        new_lo = tl.where(open_ & less, mid + 1, lo)
        new_hi = tl.where(open_ & ~less, mid, hi)
        lo = new_lo
        hi = new_hi
    return lo


MASK_BOUNDS = KernelContract(
    "mask_bounds",
    (
        pointer("masks_ptr", *MASK_DTYPES),
        *pointers("i32", "count_ptr", "det_i_ptr", "ty0_ptr", "ty1_ptr", "tx0_ptr", "tx1_ptr", "bounds_ptr"),
        *scalars(
            "i32",
            "sm_b", "sm_q", "sm_h", "sm_w", "max_det", "win_r0", "win_c0", "win_h", "win_w",
            "out_h", "out_w", "vis_r0", "vis_r1", "vis_c0", "vis_c1",
        ),
        constexpr("BLOCK_R", BOUNDS_BLOCK_R),
        constexpr("BLOCK_W", MAX_MASK_SIDE),
        constexpr("STEPS", SEARCH_STEPS),
    ),
    num_warps=NUM_WARPS,
)


@MASK_BOUNDS.jit
def mask_bounds_kernel(
    # Mask logits, any float dtype read as float32, shape (B, Q, Hm, Wm),
    # element strides (sm_b, sm_q, sm_h, sm_w).
    masks_ptr,
    # int32 (B,): detection counts; int32 (B, max_det, 2): (query, class).
    count_ptr,
    det_i_ptr,
    # Tap tables of the upsampled window, int32: (out_h,) first and last
    # source row each output row reads (rfdetr: its two taps; stock: its
    # window's ends), non-decreasing; (out_w,) the same for columns.
    ty0_ptr, ty1_ptr, tx0_ptr, tx1_ptr,
    # Output, int32 (B, max_det, 4): (row_lo, row_hi, col_lo, col_hi), half-open,
    # in window-output coordinates; empty (0, 0, 0, 0) when nothing can be positive.
    bounds_ptr,
    sm_b, sm_q, sm_h, sm_w, max_det, win_r0, win_c0, win_h, win_w,
    out_h, out_w, vis_r0, vis_r1, vis_c0, vis_c1,
    # Mask rows per iteration and the padded window width (>= win_w, power of two).
    BLOCK_R: tl.constexpr,
    BLOCK_W: tl.constexpr,
    STEPS: tl.constexpr,
):
    """One program per (detection slot, image): positive-cell box -> output pixel bounds.

    Output row i can be positive only if one of its taps ``ty0[i]``,
    ``ty1[i]`` is a positive row, so the candidate rows are those with
    ``ty1[i] >= first positive row`` and ``ty0[i] <= last positive row``;
    the tables are non-decreasing, so that is a contiguous range found by
    binary search. Columns likewise.
    """
    n = tl.program_id(0)
    image = tl.program_id(1)
    masks_ptr += image.to(tl.int64) * sm_b
    count = tl.load(count_ptr + image)
    det_i_ptr += image * max_det * 2
    bounds_ptr += image * max_det * 4
    r_lo = 0
    r_hi = 0
    c_lo = 0
    c_hi = 0
    if n < count:
        query = tl.load(det_i_ptr + n * 2)
        base = masks_ptr + query.to(tl.int64) * sm_q + win_r0 * sm_h + win_c0 * sm_w
        cols = tl.arange(0, BLOCK_W)
        col_ok = cols < win_w
        col_any = tl.zeros([BLOCK_W], dtype=tl.int32)
        row_min = win_h
        row_max = -1
        for r0 in range(0, win_h, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            ok = (rows[:, None] < win_h) & col_ok[None, :]
            v = tl.load(base + rows[:, None] * sm_h + cols[None, :] * sm_w, mask=ok, other=0.0)
            pos = (v.to(tl.float32) > 0.0) & ok
            pos_i = pos.to(tl.int32)
            col_any = tl.maximum(col_any, tl.max(pos_i, axis=0))
            row_has = tl.max(pos_i, axis=1) > 0
            row_min = tl.minimum(row_min, tl.min(tl.where(row_has, rows, win_h), axis=0))
            row_max = tl.maximum(row_max, tl.max(tl.where(row_has, rows, -1), axis=0))
        col_min = tl.min(tl.where(col_any > 0, cols, win_w), axis=0)
        col_max = tl.max(tl.where(col_any > 0, cols, -1), axis=0)
        if row_max >= 0:
            r_lo = tl.maximum(_search(ty1_ptr, out_h, row_min, STEPS), vis_r0)
            r_hi = tl.minimum(_search(ty0_ptr, out_h, row_max + 1, STEPS), vis_r1)
            c_lo = tl.maximum(_search(tx1_ptr, out_w, col_min, STEPS), vis_c0)
            c_hi = tl.minimum(_search(tx0_ptr, out_w, col_max + 1, STEPS), vis_c1)
            empty = (r_lo >= r_hi) | (c_lo >= c_hi)
            r_lo = tl.where(empty, 0, r_lo)
            r_hi = tl.where(empty, 0, r_hi)
            c_lo = tl.where(empty, 0, c_lo)
            c_hi = tl.where(empty, 0, c_hi)
    tl.store(bounds_ptr + n * 4 + 0, r_lo)
    tl.store(bounds_ptr + n * 4 + 1, r_hi)
    tl.store(bounds_ptr + n * 4 + 2, c_lo)
    tl.store(bounds_ptr + n * 4 + 3, c_hi)


# -- bilinear value and runs ------------------------------------------------------
@triton.jit
def _fma_exact(a, b, c):
    """Correctly rounded float32 ``a * b + c`` from float64 with round-to-odd.

    The float64 product of two float32 is exact; the float64 sum is made
    round-to-odd (TwoSum error, an inexact even result steps one ulp towards
    the exact value), and round-to-odd float64 rounds to float32 correctly.
    """
    p = a.to(tl.float64) * b.to(tl.float64)
    c64 = c.to(tl.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    bits = s.to(tl.int64, bitcast=True)
    finite = tl.abs(s) < float("inf")
    fix = (err != 0.0) & ((bits & 1) == 0) & finite
    step = tl.where((err > 0.0) == (s > 0.0), 1, -1).to(tl.int64)
    bits = tl.where(fix, bits + step, bits)
    return bits.to(tl.float64, bitcast=True).to(tl.float32)


@triton.jit
def _lin2(a, wa, b, wb, ARITH: tl.constexpr):
    """The reference device's ``a * wa + b * wb`` in float32."""
    if ARITH == 0:
        return _fma_exact(a, wa, b * wb)
    elif ARITH == 1:
        return a * wa + b * wb
    else:
        return tl.fma(wa, a, wb * b)


@triton.jit
def _positive_rows(
    base, sm_h, sm_w, rows, row_ok, x0, x1, wx0, wx1, ty0_ptr, ty1_ptr, wy0_ptr, wy1_ptr, copy_input,
    ARITH: tl.constexpr,
):
    """(rows x columns) bool: bilinear value > 0 for the given output rows (``copy_input``: the tap itself)."""
    y0 = tl.load(ty0_ptr + rows, mask=row_ok, other=0)
    y1 = tl.load(ty1_ptr + rows, mask=row_ok, other=0)
    wy0 = tl.load(wy0_ptr + rows, mask=row_ok, other=0.0)
    wy1 = tl.load(wy1_ptr + rows, mask=row_ok, other=0.0)
    ok = row_ok[:, None] & (x0[None, :] >= 0)
    p0 = base + y0[:, None] * sm_h
    p1 = base + y1[:, None] * sm_h
    v00 = tl.load(p0 + x0[None, :] * sm_w, mask=ok, other=0.0).to(tl.float32)
    v01 = tl.load(p0 + x1[None, :] * sm_w, mask=ok, other=0.0).to(tl.float32)
    v10 = tl.load(p1 + x0[None, :] * sm_w, mask=ok, other=0.0).to(tl.float32)
    v11 = tl.load(p1 + x1[None, :] * sm_w, mask=ok, other=0.0).to(tl.float32)
    t0 = _lin2(v00, wx0[None, :], v01, wx1[None, :], ARITH)
    t1 = _lin2(v10, wx0[None, :], v11, wx1[None, :], ARITH)
    value = _lin2(t0, wy0[:, None], t1, wy1[:, None], ARITH)
    value = tl.where(copy_input != 0, v00, value)
    return (value > 0.0) & ok


@triton.jit
def _stock_fma(v, w, acc, EXACT_FMA: tl.constexpr):
    """Stock mode's ``fma(v, w, acc)``: the hardware FFMA, or (``EXACT_FMA``, the
    interpreter, whose ``tl.fma`` is unfused) the same correctly rounded value emulated."""
    if EXACT_FMA:
        return _fma_exact(v, w, acc)
    else:
        return tl.fma(v, w, acc)


@triton.jit
def stock_value(
    base, sm_h, sm_w, rows, fy, ly, row_ok, cols, fx, lx, col_ok, wy_ptr, wx_ptr,
    EXACT_FMA: tl.constexpr, TAPS: tl.constexpr,
):
    """(rows x columns) float32: torch CUDA's antialiased value, and the first tap's logit.

    Per output pixel, the order of ``upsample_gen2d_aa_out_frame``: for each
    tap row ``r``, ``h_r = v[r, fx] * wx_0`` then ``h_r = fma(v[r, fx + j],
    wx_j, h_r)``; then ``out = h_0 * wy_0``, ``out = fma(h_k, wy_k, out)``.
    A window is ``first .. last`` (``fy..ly`` per row, ``fx..lx`` per
    column); taps past its last are not read, zero-weight taps inside it
    are multiplied (``0 * inf = NaN``), as on the GPU. Weights are
    ``(out, TAPS)`` row-major tables. Shared by the dense stock kernel
    (``kernels/stock_masks.py``) and the run kernel's stock mode.
    """
    value = tl.zeros([rows.shape[0], cols.shape[0]], dtype=tl.float32)
    first = tl.zeros([rows.shape[0], cols.shape[0]], dtype=tl.float32)
    for jy in tl.static_range(TAPS):
        live_y = row_ok & (fy + jy <= ly)
        wy = tl.load(wy_ptr + rows * TAPS + jy, mask=live_y, other=0.0)
        row_ptr = base + (fy + jy)[:, None] * sm_h
        h = tl.zeros([rows.shape[0], cols.shape[0]], dtype=tl.float32)
        for jx in tl.static_range(TAPS):
            live_x = col_ok & (fx + jx <= lx)
            wx = tl.load(wx_ptr + cols * TAPS + jx, mask=live_x, other=0.0)
            live = live_y[:, None] & live_x[None, :]
            v = tl.load(row_ptr + (fx + jx)[None, :] * sm_w, mask=live, other=0.0).to(tl.float32)
            if jx == 0:
                h = v * wx[None, :]
                if jy == 0:
                    first = v
            else:
                h = tl.where(live_x[None, :], _stock_fma(v, wx[None, :], h, EXACT_FMA), h)
        if jy == 0:
            value = h * wy[:, None]
        else:
            value = tl.where(live_y[:, None], _stock_fma(h, wy[:, None], value, EXACT_FMA), value)
    return value, first


@triton.jit
def _stock_positive_rows(
    base, sm_h, sm_w, rows, row_ok, cols, fx, lx, wx_ptr, ty_first_ptr, ty_last_ptr, wy_ptr, copy_input,
    EXACT_FMA: tl.constexpr, TAPS: tl.constexpr,
):
    """(rows x columns) bool: the stock value > 0 (``copy_input``: the first tap itself); ``fx`` is -1
    on columns outside the bounds."""
    fy = tl.load(ty_first_ptr + rows, mask=row_ok, other=0)
    ly = tl.load(ty_last_ptr + rows, mask=row_ok, other=-1)
    col_ok = fx >= 0
    value, first = stock_value(base, sm_h, sm_w, rows, fy, ly, row_ok, cols, fx, lx, col_ok, wy_ptr, wx_ptr,
                               EXACT_FMA, TAPS)
    value = tl.where(copy_input != 0, first, value)
    return (value > 0.0) & row_ok[:, None] & col_ok[None, :]


MASK_RUNS = KernelContract(
    "mask_runs",
    (
        pointer("masks_ptr", *MASK_DTYPES),
        *pointers("i32", "count_ptr", "det_i_ptr", "bounds_ptr"),
        *pointers("i32", "ty0_ptr", "ty1_ptr"),
        *pointers("fp32", "wy0_ptr", "wy1_ptr"),
        *pointers("i32", "tx0_ptr", "tx1_ptr"),
        *pointers("fp32", "wx0_ptr", "wx1_ptr"),
        *pointers("i32", "counts_ptr", "incl_ptr", "runs_ptr"),
        *scalars(
            "i32",
            "sm_b", "sm_q", "sm_h", "sm_w", "max_det", "win_r0", "win_c0", "out_w",
            "frame_top", "frame_left", "capacity", "copy_input",
        ),
        constexpr("EMIT", False, True),
        constexpr("MODE", MODE_RFDETR, MODE_STOCK),
        # A GPU runs torch's CUDA arithmetic; the CPU ones run under the interpreter only.
        constexpr("ARITH", ARITH_CUDA, interpreter=(ARITH_CPU_FMA, ARITH_CPU_PLAIN)),
        constexpr("BLOCK_R", RUNS_BLOCK_R, interpreter=(INTERPRETER_RUNS_BLOCK,)),
        constexpr("BLOCK_C", RUNS_BLOCK_C, interpreter=(INTERPRETER_RUNS_BLOCK,)),
        constexpr("TAPS", STOCK_TAPS),
    ),
    num_warps=NUM_WARPS,
)


@MASK_RUNS.jit
def mask_runs_kernel(
    # Mask logits (B, Q, Hm, Wm), element strides (sm_b, sm_q, sm_h, sm_w).
    masks_ptr,
    # int32 (B,), int32 (B, max_det, 2), int32 (B, max_det, 4): count, (query, class), bounds.
    count_ptr,
    det_i_ptr,
    bounds_ptr,
    # Tap tables, per output row; the same for columns (tx*, wx*, out_w):
    # ty0_ptr, ty1_ptr int32 (out_h,): first and last source row read
    # (rfdetr: its two taps; stock: the window's ends, 1..TAPS taps);
    # wy0_ptr float32: rfdetr (out_h,) weight of the first tap, stock
    # (out_h, TAPS) row-major weights, zero past the window;
    # wy1_ptr float32 (out_h,): rfdetr the second tap's weight; stock: not read.
    ty0_ptr, ty1_ptr, wy0_ptr, wy1_ptr,
    tx0_ptr, tx1_ptr, wx0_ptr, wx1_ptr,
    # int32 (B, max_det, out_w) row-major: runs per (image, detection,
    # column); written when EMIT is False, read (with incl) when EMIT is True.
    counts_ptr,
    # int32 (B * max_det * out_w,): inclusive prefix sum of counts over the
    # whole batch (EMIT only).
    incl_ptr,
    # int32 (capacity + 1, 3) row-major: (x, y_start, y_stop) frame pixels per
    # run, the batch's images one after another; row ``capacity`` is a sink
    # for lanes that store nothing.
    runs_ptr,
    sm_b, sm_q, sm_h, sm_w, max_det, win_r0, win_c0, out_w,
    frame_top, frame_left, capacity,
    # 1: the value is the tap itself, unweighted (torch CUDA copies an input
    # whose size is unchanged on both axes); 0: the bilinear value.
    copy_input,
    # False: count runs per column; True: write them. Two loop bodies.
    EMIT: tl.constexpr,
    # MODE_RFDETR or MODE_STOCK: which resize the mask is (see the tables above).
    MODE: tl.constexpr,
    # Bilinear arithmetic of the reference device (see module docstring);
    # in stock mode it only says how an FMA is evaluated (ARITH_CUDA: the
    # hardware's; ARITH_CPU_FMA: emulated exactly, the interpreter).
    ARITH: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    # Stock mode: taps per axis read for every pixel (past a window's last: masked).
    TAPS: tl.constexpr,
):
    """One program: BLOCK_C consecutive output columns of one detection of one image.

    It walks the rows of the detection's bounds BLOCK_R at a time. Row i
    starts a run where it is positive and row i - 1 is not, and ends one
    where it is not and row i - 1 is. Row i - 1 of the tile comes from a
    product with a 0/1 shift matrix (``tl.dot``, exact on 0/1 values with
    ieee precision; Triton has no tensor shift), the tile's first row takes
    the previous tile's last row (background above the bounds). The walk
    goes one row past the bounds to close a run that reaches the edge. The k-th
    start of a column goes to run slot ``offset + k``, its end to the same
    slot: both are ``offset + (starts so far) - 1`` (an inclusive cumsum),
    because a row that ends a run never starts one.
    """
    pid_c = tl.program_id(0)
    n = tl.program_id(1)
    image = tl.program_id(2)
    slot_n = image * max_det + n  # this detection's row in the batch's (B * max_det) tables
    masks_ptr += image.to(tl.int64) * sm_b
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    col_in = cols < out_w
    count = tl.load(count_ptr + image)
    r_lo = tl.load(bounds_ptr + slot_n * 4 + 0)
    r_hi = tl.load(bounds_ptr + slot_n * 4 + 1)
    c_lo = tl.load(bounds_ptr + slot_n * 4 + 2)
    c_hi = tl.load(bounds_ptr + slot_n * 4 + 3)
    active = (n < count) & (r_lo < r_hi)
    col_ok = col_in & (cols >= c_lo) & (cols < c_hi) & active
    col_idx = slot_n * out_w + cols
    any_col = tl.max(col_ok.to(tl.int32), axis=0) > 0
    if EMIT:
        offset = tl.load(incl_ptr + col_idx, mask=col_in, other=0) - tl.load(
            counts_ptr + col_idx, mask=col_in, other=0
        )
    starts_so_far = tl.zeros([BLOCK_C], dtype=tl.int32)
    if any_col:
        query = tl.load(det_i_ptr + slot_n * 2, mask=n < count, other=0)
        base = masks_ptr + query.to(tl.int64) * sm_q + win_r0 * sm_h + win_c0 * sm_w
        x0 = tl.where(col_ok, tl.load(tx0_ptr + cols, mask=col_ok, other=0), -1)
        x1 = tl.load(tx1_ptr + cols, mask=col_ok, other=0)
        if MODE == 0:
            wx0 = tl.load(wx0_ptr + cols, mask=col_ok, other=0.0)
            wx1 = tl.load(wx1_ptr + cols, mask=col_ok, other=0.0)
        # shift[i, j] = 1 where j == i - 1: (shift @ cur)[i] = cur[i - 1].
        r_idx = tl.arange(0, BLOCK_R)
        shift = ((r_idx[:, None] - 1) == r_idx[None, :]).to(tl.float32)
        carry = tl.zeros([BLOCK_C], dtype=tl.float32)  # row above the tile (background above the bounds)
        for i0 in range(r_lo, r_hi + 1, BLOCK_R):
            rows = i0 + r_idx
            if MODE == 0:
                cur = _positive_rows(base, sm_h, sm_w, rows, rows < r_hi, x0, x1, wx0, wx1,
                                     ty0_ptr, ty1_ptr, wy0_ptr, wy1_ptr, copy_input, ARITH)
            else:
                cur = _stock_positive_rows(base, sm_h, sm_w, rows, rows < r_hi, cols, x0, x1, wx0_ptr,
                                           ty0_ptr, ty1_ptr, wy0_ptr, copy_input, ARITH != 2, TAPS)
            cur_f = cur.to(tl.float32)
            prev_f = tl.dot(shift, cur_f, input_precision="ieee")
            prev_f = tl.where(r_idx[:, None] == 0, carry[None, :], prev_f)
            prev = prev_f > 0.5
            carry = tl.sum(tl.where(r_idx[:, None] == BLOCK_R - 1, cur_f, 0.0), axis=0)
            rows2 = rows[:, None] + tl.zeros([BLOCK_C], dtype=tl.int32)[None, :]
            in_walk = (rows2 <= r_hi) & col_ok[None, :]
            start = cur & ~prev & in_walk
            stop = ~cur & prev & in_walk
            cum = tl.cumsum(start.to(tl.int32), axis=0)
            if EMIT:
                slot = offset[None, :] + starts_so_far[None, :] + cum - 1
                fits = slot < capacity
                x_frame = cols[None, :] + frame_left + rows2 * 0
                y_frame = rows2 + frame_top
                # Lanes that do not store point at the sink row (index
                # capacity), never at a live slot: the interpreter's masked
                # store must not see a live address twice.
                start_slot = tl.where(start & fits, slot, capacity)
                stop_slot = tl.where(stop & fits, slot, capacity)
                tl.store(runs_ptr + start_slot * 3 + 0, x_frame, mask=start & fits)
                tl.store(runs_ptr + start_slot * 3 + 1, y_frame, mask=start & fits)
                tl.store(runs_ptr + stop_slot * 3 + 2, y_frame, mask=stop & fits)
            starts_so_far += tl.sum(start.to(tl.int32), axis=0)
    if not EMIT:
        tl.store(counts_ptr + col_idx, starts_so_far, mask=col_in)


# -- AOT ----------------------------------------------------------------------------
CONTRACTS = (SELECT_RANK, SELECT_EMIT, MASK_BOUNDS, MASK_RUNS)


def aot_variants() -> list[AotVariant]:
    """Every variant a GPU launches: the contracts' pointer dtypes x constexpr values."""
    return [variant for contract in CONTRACTS for variant in contract.variants()]
