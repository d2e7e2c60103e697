"""
Fused, Pillow-exact preprocessing in one launch
===============================================

One kernel turns a uint8 HWC frame (BGR or RGB) into one normalised NCHW
model input: Pillow's BILINEAR resize, byte-exact, then the channel order,
``/ 255``, the model's scale and mean/std normalisation (ImageNet by default),
written straight into a caller-given fp32 or fp16 buffer at a batch index.

Pillow's resize is separable: a first pass along one axis produces a
*uint8* intermediate image, and the second pass reads it. We never
materialise the intermediate. Each output pixel recomputes, in registers,
the first-pass values of exactly the taps its second pass needs, rounds each
of them to uint8 as Pillow does, then combines them. That costs
``taps_x * taps_y`` loads per output pixel and channel instead of
``taps_x + taps_y``, but saves a launch and a scratch buffer, and the loads
of neighbouring pixels hit the same cache lines.

Fixed-point arithmetic mirrors Pillow's ``Resample.c`` (int32 everywhere):

    acc = 2**21 + sum_k pixel[k] * coef[k]      (coef: int32, 22 fractional bits)
    value = clamp(acc >> 22, 0, 255)             (arithmetic shift, as C on int)

Every Pillow weight of the bilinear filter is non-negative and a row of
coefficients sums to at most ``2**22 + taps / 2``, so ``acc`` stays below
``2**21 + 255 * (2**22 + taps)`` < ``2**31``: no int32 overflow for any size.

The host (``inference_accel.preprocess.pillow_resize``) computes the tables in
float64 and the launcher uploads them once per (source size, resized size).
Taps per output vary with the downscale ratio (1920 -> 312 needs up to 15),
so tap counts are runtime loop bounds: a new frame or target size reuses the
same compiled kernel.

Resize modes. The kernel writes the whole ``canvas_h x canvas_w`` model
input. The resized image (``resized_h x resized_w``) sits at offset
``(off_y, off_x)`` on the canvas: stretch is offset 0 and resized == canvas;
letterbox has positive offsets and the uncovered canvas takes the value of a
black pixel; centre-crop has negative offsets and the part outside the canvas
is never computed.

Normalisation goes through a 3 x 256 float32 look-up table computed on the
host with torch's own ops (``(v / 255 [* 255 / scale] - mean) / std`` in
float32, ``preprocess.normalization.normalize_channels``), so the result is
bit-identical to torchvision's ``to_tensor`` + ``normalize`` whatever
division or fused multiply-add the GPU compiler would pick; any package's
constants are just another table. The colour order is the runtime scalar
``src_bgr``: 1 makes output plane ``c`` read source channel ``2 - c`` (a BGR
frame for an RGB model, or the reverse), 0 keeps the order.

What one program instance computes: a ``BLOCK_Y x BLOCK_X`` tile of the
canvas, all three channels. Output row ``oy`` of the tile reads resized row
``ry = oy - off_y``; output column ``ox`` reads resized column
``rx = ox - off_x``. Masks: ``in_canvas`` drops tile pixels past the canvas
edge (the grid rounds up); ``inside`` selects pixels covered by the resized
image (the rest are padding); per-tap masks drop taps beyond a pixel's own
tap count (tables are zero-padded to the widest row).
"""

from __future__ import annotations

import triton
import triton.language as tl

from inference_accel.triton_common import AotVariant, KernelContract, constexpr, pointer, pointers, scalars

# Pillow's fixed point: 22 fractional bits, rounding by adding half a unit.
PRECISION_BITS = 22
# Launch shape. 8 x 32 = 256 pixels per program with 4 warps: two pixels per
# thread, and a warp stores 32 consecutive output columns (128 B in fp32).
BLOCK_Y = 8
BLOCK_X = 32
NUM_WARPS = 4


@triton.jit
def _first_pass_tap(src_ptr, off, mask, coef, acc_r, acc_g, acc_b, src_sc, chan_r, chan_b):
    """Add one tap of the first pass to the three channel accumulators."""
    r = tl.load(src_ptr + off + chan_r * src_sc, mask=mask, other=0).to(tl.int32)
    g = tl.load(src_ptr + off + src_sc, mask=mask, other=0).to(tl.int32)
    b = tl.load(src_ptr + off + chan_b * src_sc, mask=mask, other=0).to(tl.int32)
    return acc_r + r * coef, acc_g + g * coef, acc_b + b * coef


@triton.jit
def _to_uint8(acc, PRECISION: tl.constexpr):
    """Pillow's clip8: ``clamp(acc >> PRECISION, 0, 255)`` on int32."""
    return tl.minimum(tl.maximum(acc >> PRECISION, 0), 255)


# The launch contract: every parameter once, in the kernel's order (the launcher
# binds by these names, ``inference_accel.aot`` compiles these variants).
PIL_RESIZE_NORMALIZE = KernelContract(
    "pil_resize_normalize",
    (
        pointer("src_ptr", "u8"),
        *pointers("i32", "xtab_ptr", "ytab_ptr"),
        pointer("lut_ptr", "fp32"),
        pointer("out_ptr", "fp32", "fp16"),
        *scalars(
            "i32",
            "src_sh", "src_sw", "src_sc",
            "resized_h", "resized_w",
            "taps_x", "taps_y",
            "canvas_h", "canvas_w",
            "off_y", "off_x",
            "out_sn", "out_sc", "out_sh", "out_sw",
            "index",
            "src_bgr",
        ),
        constexpr("VERTICAL_FIRST", False, True),
        constexpr("BLOCK_Y", BLOCK_Y),
        constexpr("BLOCK_X", BLOCK_X),
        constexpr("PRECISION", PRECISION_BITS),
    ),
    num_warps=NUM_WARPS,
)


# No value or alignment specialisation (the contract's jit): Triton would
# otherwise compile a new variant when a size or stride happens to be 1 or a
# multiple of 16, so a new video resolution could trigger a compile.
# Unspecialised, the kernel compiles exactly the four variants of the
# contract (output dtype x pass order).
@PIL_RESIZE_NORMALIZE.jit
def pil_resize_normalize_kernel(
    # Source frame, uint8, logical shape (frame_h, frame_w, 3), element
    # strides (src_sh, src_sw, src_sc). Channel order BGR if src_bgr else RGB.
    src_ptr,
    # Horizontal table, int32, shape (resized_w, 2 + taps_x), row-major
    # (row stride 2 + taps_x): [xmin, xsize, coef_0 .. coef_{taps_x-1}];
    # coefficients past xsize are 0.
    xtab_ptr,
    # Vertical table, int32, shape (resized_h, 2 + taps_y), same layout.
    ytab_ptr,
    # Normalisation table, float32, shape (3, 256) contiguous: lut[c, v] is
    # the normalised value of byte v in output channel c (R, G, B).
    lut_ptr,
    # Output, fp32 or fp16, shape (N, 3, canvas_h, canvas_w), element
    # strides (out_sn, out_sc, out_sh, out_sw); this launch writes out[index].
    out_ptr,
    src_sh, src_sw, src_sc,
    resized_h, resized_w,
    taps_x, taps_y,
    canvas_h, canvas_w,
    off_y, off_x,
    out_sn, out_sc, out_sh, out_sw,
    index,
    src_bgr,
    # True: Pillow's vertical pass runs first (Pillow >= 13 on mostly-vertical
    # reductions). The two orders have different loop nests, and the order is
    # fixed per (frame size, target size), so it is a compile-time choice.
    VERTICAL_FIRST: tl.constexpr,
    # Tile shape; tl.arange needs powers of two known at compile time.
    BLOCK_Y: tl.constexpr,
    BLOCK_X: tl.constexpr,
    # Pillow's fixed-point precision (22): shifts by a constant.
    PRECISION: tl.constexpr,
):
    pid_x = tl.program_id(0)
    pid_y = tl.program_id(1)
    oy = pid_y * BLOCK_Y + tl.arange(0, BLOCK_Y)[:, None]  # (BLOCK_Y, 1) canvas rows
    ox = pid_x * BLOCK_X + tl.arange(0, BLOCK_X)[None, :]  # (1, BLOCK_X) canvas cols
    in_canvas = (oy < canvas_h) & (ox < canvas_w)

    ry = oy - off_y  # resized-image coordinates of this tile
    rx = ox - off_x
    row_in = (ry >= 0) & (ry < resized_h)
    col_in = (rx >= 0) & (rx < resized_w)
    inside = in_canvas & row_in & col_in

    # Per output row / column: first source index and tap count.
    ystride = 2 + taps_y
    xstride = 2 + taps_x
    ymin = tl.load(ytab_ptr + ry * ystride, mask=row_in, other=0)
    ysize = tl.load(ytab_ptr + ry * ystride + 1, mask=row_in, other=0)
    xmin = tl.load(xtab_ptr + rx * xstride, mask=col_in, other=0)
    xsize = tl.load(xtab_ptr + rx * xstride + 1, mask=col_in, other=0)

    # Which source channel feeds output R and B (G is channel 1 either way).
    chan_r = 2 * src_bgr
    chan_b = 2 - 2 * src_bgr

    half = 1 << (PRECISION - 1)
    acc_r = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
    acc_g = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
    acc_b = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)

    if VERTICAL_FIRST:
        # out(ry, rx) = sum_i cx[rx, i] * V(ry, xmin[rx] + i),
        # V(ry, x)    = uint8(sum_j cy[ry, j] * src(ymin[ry] + j, x)).
        for i in range(0, taps_x):
            tap_x = col_in & (i < xsize)
            cx = tl.load(xtab_ptr + rx * xstride + 2 + i, mask=tap_x, other=0)
            col_off = (xmin + i) * src_sw
            v_r = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            v_g = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            v_b = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            for j in range(0, taps_y):
                tap_y = row_in & (j < ysize)
                cy = tl.load(ytab_ptr + ry * ystride + 2 + j, mask=tap_y, other=0)
                off = (ymin + j) * src_sh + col_off
                v_r, v_g, v_b = _first_pass_tap(
                    src_ptr, off, inside & tap_x & tap_y, cy, v_r, v_g, v_b, src_sc, chan_r, chan_b
                )
            acc_r += _to_uint8(v_r, PRECISION) * cx
            acc_g += _to_uint8(v_g, PRECISION) * cx
            acc_b += _to_uint8(v_b, PRECISION) * cx
    else:
        # out(ry, rx) = sum_j cy[ry, j] * H(ymin[ry] + j, rx),
        # H(y, rx)    = uint8(sum_i cx[rx, i] * src(y, xmin[rx] + i)).
        for j in range(0, taps_y):
            tap_y = row_in & (j < ysize)
            cy = tl.load(ytab_ptr + ry * ystride + 2 + j, mask=tap_y, other=0)
            row_off = (ymin + j) * src_sh
            h_r = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            h_g = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            h_b = tl.full((BLOCK_Y, BLOCK_X), half, tl.int32)
            for i in range(0, taps_x):
                tap_x = col_in & (i < xsize)
                cx = tl.load(xtab_ptr + rx * xstride + 2 + i, mask=tap_x, other=0)
                off = row_off + (xmin + i) * src_sw
                h_r, h_g, h_b = _first_pass_tap(
                    src_ptr, off, inside & tap_x & tap_y, cx, h_r, h_g, h_b, src_sc, chan_r, chan_b
                )
            acc_r += _to_uint8(h_r, PRECISION) * cy
            acc_g += _to_uint8(h_g, PRECISION) * cy
            acc_b += _to_uint8(h_b, PRECISION) * cy

    # Padding (letterbox) is a black pixel: byte 0 in every channel.
    byte_r = tl.where(inside, _to_uint8(acc_r, PRECISION), 0)
    byte_g = tl.where(inside, _to_uint8(acc_g, PRECISION), 0)
    byte_b = tl.where(inside, _to_uint8(acc_b, PRECISION), 0)
    val_r = tl.load(lut_ptr + byte_r, mask=in_canvas, other=0.0)
    val_g = tl.load(lut_ptr + 256 + byte_g, mask=in_canvas, other=0.0)
    val_b = tl.load(lut_ptr + 512 + byte_b, mask=in_canvas, other=0.0)

    dst = out_ptr + index * out_sn + oy * out_sh + ox * out_sw
    out_ty = out_ptr.dtype.element_ty
    tl.store(dst, val_r.to(out_ty), mask=in_canvas)
    tl.store(dst + out_sc, val_g.to(out_ty), mask=in_canvas)
    tl.store(dst + 2 * out_sc, val_b.to(out_ty), mask=in_canvas)


CONTRACTS = (PIL_RESIZE_NORMALIZE,)


def aot_variants() -> list[AotVariant]:
    """Every variant the launcher can launch: output dtype x pass order."""
    return PIL_RESIZE_NORMALIZE.variants()
