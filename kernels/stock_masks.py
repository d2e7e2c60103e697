"""
Stock mask thresholding: torch CUDA's antialiased bilinear upsample, ``> threshold``, per crop
==============================================================================================

inference-models' stock postprocessing resizes each selected mask's logits
with ``torchvision...resize(BILINEAR)`` (antialias on) and keeps
``value > threshold``. On a CUDA tensor that is torch's
``upsample_gen2d_aa_out_frame`` kernel. This kernel evaluates the same float32
expression, in the same order, only inside a crop window of each mask (the
launcher, ``inference_accel.postprocess.stock_triton``, picks windows that hold
every pixel that can be above the threshold), and writes one byte per pixel.

What one program computes: a ``BLOCK_R x BLOCK_C`` tile of the crop of mask
``program_id(2)``; tile ``(program_id(1), program_id(0))`` counted from the
crop's top-left corner. Programs whose tile lies outside their mask's crop
(crops differ in size, the grid covers the largest) store nothing.

Per output pixel ``(y, x)`` (the order read from the SASS of torch's wheel,
see ``inference_accel.postprocess.stock_cuda_model``):

- the window of each axis is ``first .. first + count - 1`` (1 to 3 taps) with
  float32 weights from the host tables (computed there in torch CUDA's own
  order: ``fma``-contracted centres, IEEE division by the weight sum);
- for each tap row ``r``: ``h_r = v[r, x_0] * wx_0``, then
  ``h_r = fma(v[r, x_j], wx_j, h_r)`` for the other taps of the row;
- ``out = h_0 * wy_0``, then ``out = fma(h_k, wy_k, out)``;
- the byte is ``out > threshold`` (NaN: 0).

Zero-weight taps are still multiplied (``0 * inf = NaN``), as on the GPU.

Float arithmetic: compiled with ``enable_fp_fusion=False`` (the contract's
default): the plain products above stay products, and each FMA is written
explicitly. ``EXACT_FMA`` chooses how: False (the GPU variant) is ``tl.fma``,
one ``fma.rn.f32``; True (interpreter only) computes the same correctly
rounded value in float64 with round-to-odd (``_fma_exact`` of
``kernels/postprocess.py``), because Triton's interpreter evaluates ``tl.fma``
as an unfused ``x * y + z``. NOT VERIFIED ON A GPU: tested under the
interpreter against the numpy model of the CUDA order.
"""

from __future__ import annotations

import triton
import triton.language as tl

from inference_accel.kernels.postprocess import stock_value
from inference_accel.triton_common import AotVariant, KernelContract, constexpr, pointer, pointers, scalars

# Taps per axis the kernel reads (``stock_cuda_model.KERNEL_TAPS``): an
# upsampling axis has windows of 1 to 3 taps.
TAPS = 3
# GPU tile: 8 rows x 64 consecutive columns (a warp reads 32 adjacent logits
# of a row per tap; stores are 64 contiguous bytes per row).
BLOCK_R = 8
BLOCK_C = 64
# Under the interpreter a program costs per operation, not per element.
INTERPRETER_BLOCK_R = 64
INTERPRETER_BLOCK_C = 64
NUM_WARPS = 4


STOCK_THRESHOLD = KernelContract(
    "stock_threshold",
    (
        pointer("logits_ptr", "fp32"),
        pointer("crops_ptr", "i32"),
        pointer("offsets_ptr", "i64"),
        *pointers("i32", "ty_first_ptr", "ty_count_ptr"),
        pointer("wy_ptr", "fp32"),
        *pointers("i32", "tx_first_ptr", "tx_count_ptr"),
        pointer("wx_ptr", "fp32"),
        pointer("out_ptr", "u8"),
        *scalars("i32", "s_n", "s_h", "s_w"),
        *scalars("fp32", "threshold"),
        # The GPU variant uses the hardware FMA; the exact float64 emulation is interpreter-only.
        constexpr("EXACT_FMA", False, interpreter=(True,)),
        constexpr("BLOCK_R", BLOCK_R, interpreter=(INTERPRETER_BLOCK_R,)),
        constexpr("BLOCK_C", BLOCK_C, interpreter=(INTERPRETER_BLOCK_C,)),
        constexpr("TAPS", TAPS),
    ),
    num_warps=NUM_WARPS,
)


@STOCK_THRESHOLD.jit
def stock_threshold_kernel(
    # Mask logits, float32, (N, h, w), element strides (s_n, s_h, s_w).
    logits_ptr,
    # int32 (N, 4) row-major: each mask's crop (y0, y1, x0, x1), half-open,
    # in output-grid pixels; y0 == y1 for a mask with no crop.
    crops_ptr,
    # int64 (N,): element offset of each crop in out_ptr.
    offsets_ptr,
    # Row table, one entry per output row (H,): int32 first source row,
    # int32 number of taps (1..TAPS); float32 (H, TAPS) row-major weights.
    ty_first_ptr, ty_count_ptr, wy_ptr,
    # Column table, the same per output column (W,).
    tx_first_ptr, tx_count_ptr, wx_ptr,
    # uint8, the crops one after another, each (y1 - y0, x1 - x0) row-major:
    # 1 where the upsampled value > threshold, else 0.
    out_ptr,
    s_n, s_h, s_w,
    # float32: the stock binarization threshold (torch compares in float32).
    threshold,
    # True: FMAs emulated exactly in float64 (the interpreter's tl.fma is unfused).
    EXACT_FMA: tl.constexpr,
    # Tile shape: powers of two for tl.arange.
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    # Taps per axis read for every pixel (the ones past a window's count are masked).
    TAPS: tl.constexpr,
):
    """One program: a BLOCK_R x BLOCK_C tile of one mask's crop, thresholded."""
    pid_c = tl.program_id(0)
    pid_r = tl.program_id(1)
    n = tl.program_id(2)
    y0 = tl.load(crops_ptr + n * 4 + 0)
    y1 = tl.load(crops_ptr + n * 4 + 1)
    x0 = tl.load(crops_ptr + n * 4 + 2)
    x1 = tl.load(crops_ptr + n * 4 + 3)
    rows = y0 + pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = x0 + pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok = rows < y1
    col_ok = cols < x1
    # A tile past this mask's crop loads and stores nothing (all lanes masked).
    ok = row_ok[:, None] & col_ok[None, :]
    fy = tl.load(ty_first_ptr + rows, mask=row_ok, other=0)
    cy = tl.load(ty_count_ptr + rows, mask=row_ok, other=0)
    fx = tl.load(tx_first_ptr + cols, mask=col_ok, other=0)
    cx = tl.load(tx_count_ptr + cols, mask=col_ok, other=0)
    base = logits_ptr + n.to(tl.int64) * s_n
    out, _ = stock_value(base, s_h, s_w, rows, fy, fy + cy - 1, row_ok, cols, fx, fx + cx - 1, col_ok, wy_ptr, wx_ptr,
                         EXACT_FMA, TAPS)
    offset = tl.load(offsets_ptr + n)
    crop_w = x1 - x0
    local = (rows - y0).to(tl.int64)[:, None] * crop_w + (cols - x0)[None, :]
    tl.store(out_ptr + offset + local, (out > threshold).to(tl.uint8), mask=ok)


CONTRACTS = (STOCK_THRESHOLD,)


def aot_variants() -> list[AotVariant]:
    """Every variant a GPU launches (one: the GPU tile, hardware FMA)."""
    return [variant for contract in CONTRACTS for variant in contract.variants()]
