"""inference-models' mask upsampling, exactly, evaluated only where a mask can be positive.

The stock RF-DETR instance-segmentation postprocessing of ``inference-models``
0.39 turns each selected mask's logits into a binary mask with
``torchvision.transforms.functional.resize(logits, (H, W), BILINEAR)``
(``antialias=True``, the default for tensors) followed by ``.gt_(0.0)``. On a
CPU tensor that is torch's ``_upsample_bilinear2d_aa`` kernel, which is *not*
``F.interpolate(bilinear)``: it computes, per axis, a table of filter weights
and applies two separable passes with a float32 intermediate.

What it computes (torch 2.x ``UpSampleKernel.cpp``, read and then checked bit
for bit against the installed torch by :func:`kernel_check`):

- per axis ``in -> out`` (float32 throughout): ``scale = in / out``;
  ``support = scale`` when ``scale >= 1`` else ``1``; for output ``i``:
  ``center = scale * (i + 0.5)``; ``xmin = max(int(center - support + 0.5), 0)``;
  ``xsize = min(int(center + support + 0.5), in) - xmin``; the weight of tap
  ``j`` is ``tri((j + xmin - center + 0.5) * invscale)`` (``tri(t) = 1 - |t|``
  inside ``|t| < 1``, ``invscale = 1/scale`` when downsampling, else 1), and the
  weights are divided by their float32 sum;
- the width pass first, then the height pass; a pass whose size is unchanged
  is skipped, and when both are unchanged torchvision returns the input itself;
- each output value is ``acc = v0 * w0`` then ``acc += v_j * w_j`` in tap
  order; the compiled kernel contracts these into fused multiply-adds on
  x86-64 builds (measured: the torch 2.14.1 wheel is exact only with FMA).
  :func:`kernel_check` finds which of the two (fused or not) the installed
  torch does, once per process, on a probe; if neither matches, nothing here
  is used.

Where it is exact here: **upsampling and unchanged axes** (``out >= in`` on
each axis: two weighted taps per output). Two cases are reported as
unsupported (:func:`unsupported_reason`) and the caller runs the stock code:
downsampling axes (a frame smaller than the mask grid; torch's height pass
accumulates 5+ taps in another order, measured), and a width-1 grid resized
in height only (torch then repeats the first row instead of interpolating,
measured).

**Sparse evaluation.** The threshold is 0 and every weight is ``>= 0``, so an
output pixel whose taps are all ``<= 0`` is ``<= 0`` and one whose taps are
all clearly positive (``> 1e-30``) is ``> 0``, whatever the rounding. Outputs
that share one source window form a *cell* (runs of about ``out / in``
pixels per axis); cells are classified from the window minima and maxima of
the logits, so interior and exterior cells cost nothing per pixel. Boundary
cells (mixed signs) are resolved with an error bound that covers every
float32 rounding of the stock chain (``2**-19`` of the window's largest
``|logit|``, about 8x the worst case): small cells pixel by pixel (float32
weight blocks times the 2x2 window), large ones row by row (the value along a
row is affine in the second tap's weight, so its positive pixels are a prefix
or a suffix found by a search, no per-pixel arithmetic). Pixels within the
bound of 0 (a few ulps) are recomputed with the stock float32 chain itself,
fused multiply-adds emulated exactly (round-to-odd in float64, then one
rounding to float32). Every pixel therefore equals the stock ``resize(...) > 0``.
Crops are built row-major (dense output) or column-major (COCO RLE order).

This module is the numpy executor and the reference arithmetic (weight tables,
:func:`resize_reference`, :func:`kernel_check`). The compiled executor,
:mod:`~inference_accel.integrations.stock_masks_native`, runs the same cell
classification and the stock chain in C, straight to a dense canvas or COCO
RLE strings; the inference-models integration uses it when it is built.

>>> import numpy as np, torch
>>> from torchvision.transforms import functional as TF
>>> logits = np.random.default_rng(0).standard_normal((2, 6, 5)).astype(np.float32)
>>> stock = TF.resize(torch.from_numpy(logits), [37, 23], interpolation=TF.InterpolationMode.BILINEAR) > 0
>>> crops = threshold_upsampled(logits, (37, 23))
>>> bool((paste_dense(crops, (37, 23)) == stock.numpy()).all())
True
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

FMA, PLAIN = "fma", "plain"
# A window whose taps all exceed this is positive after any float32 rounding:
# the largest weight of a window is >= 1/2, so the sum stays a normal float.
POSITIVE_FLOOR = np.float32(1e-30)
# Boundary cells are evaluated in float32 (a weight block times the cell's
# source window). |stock float32 chain - exact sum| <= ~6.2 * 2**-24 * m and
# |our float32 value - exact sum| <= ~4.1 * 2**-24 * m, with m the largest
# |logit| of the window (weights are >= 0 and sum to 1); pixels within
# 2**-19 * m (+ a subnormal allowance) of 0 are recomputed with the stock
# chain itself.
RELATIVE_BOUND = np.float32(2.0**-19)
ABSOLUTE_BOUND = np.float32(1e-36)
_CELL_CHUNK = 8192  # boundary cells evaluated per batch (bounds the working set)
# Boundary cells of at most this many pixels are evaluated pixel by pixel (a float32 weight
# block product); larger ones row by row (a prefix / suffix search per row). Measured here:
# per pixel is faster up to ~720p frames (cells of ~4x7 to ~10x17), equal at 1080p (14x25).
DIRECT_MAX_CELL = 256


# -- torch's weight tables ------------------------------------------------------
def aa_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's antialiased-bilinear weights for one axis: (xmin, xsize, weights (out, K) float32).

    ``weights[i, j]`` is the weight of source ``xmin[i] + j`` for ``j < xsize[i]``
    (zero beyond), float32 and normalised by their float32 sum, as torch computes it.

    >>> xmin, xsize, w = aa_weights(2, 4)
    >>> xmin.tolist(), xsize.tolist(), w[1].tolist()
    ([0, 0, 0, 1], [1, 2, 2, 1], [0.75, 0.25, 0.0])
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got {in_size} -> {out_size}")
    f32, f64 = np.float32, np.float64
    scale = f32(in_size) / f32(out_size)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / f64(scale)) if scale >= 1.0 else f32(1.0)
    k = int(np.ceil(f64(support)) * 2 + 1)
    i = np.arange(out_size, dtype=f64)
    center = (f64(scale) * (i + 0.5)).astype(f32)
    xmin = np.maximum(np.trunc((center - support).astype(f64) + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc((center + support).astype(f64) + 0.5).astype(np.int64), in_size)
    xsize = np.clip(xmax - xmin, 0, k)
    weights = np.zeros((out_size, k), f32)
    total = np.zeros(out_size, f32)
    for j in range(k):
        # (j + xmin - center): int64 -> float then a float32 subtraction; + 0.5 and
        # * invscale in double; the filter takes a float32.
        arg = (((j + xmin).astype(f32) - center).astype(f64) + 0.5) * f64(invscale)
        x = np.abs(arg.astype(f32))
        w = np.where(x < 1.0, (1.0 - x.astype(f64)).astype(f32), f32(0.0))
        w = np.where(j < xsize, w, f32(0.0)).astype(f32)
        weights[:, j] = w
        total = (total + w).astype(f32)
    nonzero = total != 0
    weights[nonzero] = (weights[nonzero] / total[nonzero, None]).astype(f32)
    return xmin, xsize, weights


@dataclass(frozen=True)
class AxisPlan:
    """One axis ``in_size -> out_size``: per-output taps and the cells they form.

    ``taps`` / ``weights`` (out, K): the source indices and float32 weights of
    each output, trailing taps whose weight is 0 on every output dropped (for
    upsampling K = 2; they add an exact 0 to the stock sum); a window shorter
    than K repeats its last index with weight 0. An unchanged axis is the
    identity (K = 1, weight 1: torch skips the pass, and ``v * 1`` is ``v``).
    Outputs with the same window form a *group*, a run of consecutive outputs:
    ``first`` / ``length`` (G,), ``group_taps`` (G, K), ``blocks`` (G, R, K)
    float32 (each output's weights, zero rows past ``length``; R the longest
    run). ``valid`` lists, in group-major padded coordinates ``g * R + r``,
    the real outputs in order (used to drop the padding of assembled blocks).
    ``exact_columns`` (G, R): the output index of each padded block entry
    (a large negative number on padding). ``keys`` (G * R,) float64, for two-tap axes whose second weight never
    decreases inside a group (every upsampling axis): ``4 * g + w1`` of each
    output, ``4 * g + 2`` on padding, hence sorted; None otherwise.
    """

    in_size: int
    out_size: int
    taps: np.ndarray
    weights: np.ndarray
    first: np.ndarray
    length: np.ndarray
    group_taps: np.ndarray
    blocks: np.ndarray
    valid: np.ndarray
    keys: np.ndarray | None
    exact_columns: np.ndarray

    @property
    def run(self) -> int:
        return int(self.blocks.shape[1])


@functools.lru_cache(maxsize=256)
def axis_plan(in_size: int, out_size: int) -> AxisPlan:
    if in_size == out_size:
        taps = np.arange(out_size, dtype=np.int64)[:, None]
        weights = np.ones((out_size, 1), np.float32)
    else:
        xmin, xsize, weights = aa_weights(in_size, out_size)
        nonzero = weights != 0
        k = weights.shape[1]
        while k > 1 and not nonzero[:, k - 1].any():
            k -= 1
        weights = np.ascontiguousarray(weights[:, :k])
        count = np.clip(xsize, 1, k)
        last = xmin + count - 1
        taps = np.minimum(xmin[:, None] + np.arange(k)[None, :], last[:, None])
        taps = np.minimum(taps, in_size - 1)
    change = np.ones(out_size, bool)
    change[1:] = (taps[1:] != taps[:-1]).any(axis=1)
    first = np.flatnonzero(change).astype(np.int64)
    length = np.diff(np.append(first, out_size)).astype(np.int64)
    r = int(length.max())
    k = taps.shape[1]
    blocks = np.zeros((first.size, r, k), np.float32)
    group = np.repeat(np.arange(first.size), length)
    within = np.arange(out_size) - np.repeat(first, length)
    blocks[group, within] = weights
    valid = (group * r + within).astype(np.int64)
    group_taps = np.ascontiguousarray(taps[first])
    keys = None
    if k == 2:
        second = np.where(np.arange(r)[None, :] < length[:, None], blocks[:, :, 1].astype(np.float64), 2.0)
        if (np.diff(second, axis=1) >= 0).all() and (second >= 0).all():
            keys = (second + 4.0 * np.arange(first.size)[:, None]).reshape(-1)
    # each group's outputs in padded block order; padding -> a large negative (never a real index)
    exact_columns = np.where(np.arange(r)[None, :] < length[:, None], first[:, None] + np.arange(r)[None, :], -(2**40))
    for array in (taps, weights, first, length, blocks, valid, group_taps, exact_columns) + ((keys,) if keys is not None else ()):
        array.setflags(write=False)
    return AxisPlan(in_size, out_size, taps, weights, first, length, group_taps, blocks, valid, keys, exact_columns)


def unsupported_reason(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str | None:
    """Why this resize is not reproduced here (None: it is)."""
    (h, w), (oh, ow) = in_hw, out_hw
    if min(h, w, oh, ow) < 1:
        return f"empty resize {h}x{w} -> {oh}x{ow}"
    if oh < h or ow < w:
        return (
            f"mask logits {h}x{w} are downsampled to {oh}x{ow}; torch's antialiased height pass "
            "accumulates 5+ taps in an order not reproduced here"
        )
    if w == ow == 1 and h != oh:
        # measured (torch 2.14.1): a width-1 tensor resized in height only does not get the
        # separable result (every output repeats the first row); not reproduced here
        return f"mask logits {h}x1 resized to {oh}x1: torch's kernel takes another path for width 1"
    return None


# -- exact float32 arithmetic of the stock chain ----------------------------------
def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add ``round32(a*b + c)``, correctly rounded.

    ``a*b`` is exact in float64 (24 + 24 bits); the float64 sum is rounded to
    odd (TwoSum error, then the last bit forced), which makes the final
    rounding to float32 a single correct rounding.
    """
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    bits = s.view(np.int64).copy()
    inexact = (err != 0) & ((bits & 1) == 0)
    if inexact.any():
        toward = np.where(np.signbit(err) == np.signbit(s), 1, -1)
        bits[inexact] += toward[inexact]
    return bits.view(np.float64).astype(np.float32)


def _chain(values: np.ndarray, weights: np.ndarray, mode: str) -> np.ndarray:
    """The stock accumulation over the last axis: ``acc = v0*w0; acc += v_j*w_j``, float32."""
    acc = (values[..., 0] * weights[..., 0]).astype(np.float32)
    for j in range(1, values.shape[-1]):
        if mode == FMA:
            acc = _fma32(values[..., j], weights[..., j], acc)
        else:
            acc = (acc + (values[..., j] * weights[..., j]).astype(np.float32)).astype(np.float32)
    return acc


def resize_reference(logits: np.ndarray, out_hw: tuple[int, int], mode: str = FMA) -> np.ndarray:
    """Dense float32 twin of the stock resize, (N, h, w) -> (N, H, W) (any sizes; tests and probes).

    Exact for upsampling and unchanged axes (and for width downsampling);
    torch's height pass with 5+ taps differs (see the module docstring).
    """
    values = np.asarray(logits, dtype=np.float32)
    n, h, w = values.shape
    oh, ow = out_hw
    if (h, w) == (oh, ow):
        return values.copy()
    if w != ow:
        xmin, xsize, weights = aa_weights(w, ow)
        k = weights.shape[1]
        idx = np.minimum(xmin[:, None] + np.arange(k)[None, :], w - 1)
        values = _chain(values[:, :, idx], np.broadcast_to(weights, (n, h, ow, k)), mode)
    if h != oh:
        ymin, ysize, weights = aa_weights(h, oh)
        k = weights.shape[1]
        idx = np.minimum(ymin[:, None] + np.arange(k)[None, :], h - 1)
        gathered = np.moveaxis(values[:, idx, :], 2, 3)  # (n, oh, ow, k)
        values = _chain(gathered, np.broadcast_to(weights[:, None, :], (n, oh, ow, k)), mode)
    return values


# -- which arithmetic the installed torch uses -------------------------------------
_PROBES = (((7, 9), (23, 31)), ((13, 5), (13, 41)), ((11, 12), (40, 12)), ((6, 6), (6, 6)))
_check_lock = threading.Lock()
_check_result: tuple[str | None, str | None] | None = None


def kernel_check() -> tuple[str | None, str | None]:
    """(mode, None) when the installed torch's resize matches one of our chains, else (None, reason).

    Runs once per process (a few ms): random probes, upsampling and unchanged
    axes, near-zero values included, compared bit for bit with torchvision.
    """
    global _check_result
    with _check_lock:
        if _check_result is None:
            _check_result = _run_kernel_check()
        return _check_result


def _run_kernel_check() -> tuple[str | None, str | None]:
    try:
        import torch
        from torchvision.transforms import functional as TF
    except Exception as exc:  # pragma: no cover - torchvision is a dependency of inference-models
        return None, f"torchvision is not importable: {exc}"
    rng = np.random.default_rng(12345)
    candidates = [FMA, PLAIN]
    for in_hw, out_hw in _PROBES:
        logits = rng.standard_normal((3, *in_hw)).astype(np.float32)
        logits[1] *= np.float32(1e-6)
        logits[2] = np.where(rng.random(in_hw) < 0.5, np.float32(0.0), logits[2])
        stock = TF.resize(torch.from_numpy(logits), list(out_hw), interpolation=TF.InterpolationMode.BILINEAR)
        stock = np.asarray(stock.numpy(), np.float32)
        candidates = [
            m for m in candidates if np.array_equal(resize_reference(logits, out_hw, m).view(np.int32), stock.view(np.int32))
        ]
        if not candidates:
            return None, (
                f"torch {torch.__version__}'s antialiased bilinear resize matches neither a fused nor an "
                f"unfused float32 chain on a {in_hw} -> {out_hw} probe"
            )
    return candidates[0], None


def reset_kernel_check() -> None:
    """Forget the probe result (tests)."""
    global _check_result
    with _check_lock:
        _check_result = None


# -- sparse evaluation ---------------------------------------------------------------
@dataclass
class Crop:
    """One thresholded mask: a (h, w) bool crop at ``(y0, x0)`` of the resized grid.

    The crop is the union of the non-negative cells (not necessarily tight);
    it holds every pixel of that region, so pixels outside it are background.
    ``mask`` is the crop itself, or its transpose (w, h) when ``transposed``
    (column-major order, what COCO RLE walks): use :attr:`rows` for the
    (h, w) view and :attr:`columns` for the (w, h) one.
    """

    y0: int
    x0: int
    mask: np.ndarray
    transposed: bool = False

    @property
    def rows(self) -> np.ndarray:
        return self.mask.T if self.transposed else self.mask

    @property
    def columns(self) -> np.ndarray:
        return self.mask if self.transposed else self.mask.T


def threshold_upsampled(
    logits: np.ndarray, out_hw: tuple[int, int], mode: str | None = None, column_major: bool = False
) -> list[Crop | None]:
    """``resize(logits, out_hw) > 0`` per mask, stock-exact, as crops (None: empty mask).

    ``logits``: (N, h, w) float32, finite. ``out_hw`` must not downsample
    (:func:`unsupported_reason`). ``mode``: ``"fma"`` or ``"plain"``; None
    runs :func:`kernel_check` and uses its answer (RuntimeError when the
    installed torch matches neither). ``column_major``: build each crop
    transposed (``Crop.transposed``), the order COCO RLE walks; the pixels
    are the same (the stock chain still runs width first where it runs).
    """
    values = np.ascontiguousarray(logits, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"logits must be (N, h, w), got shape {values.shape}")
    n, h, w = values.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    reason = unsupported_reason((h, w), (oh, ow))
    if reason is not None:
        raise ValueError(reason)
    if mode is None:
        mode, why = kernel_check()
        if mode is None:
            raise RuntimeError(why)
    if n == 0:
        return []
    plan_y, plan_x = axis_plan(h, oh), axis_plan(w, ow)

    def exact(m, r, c):  # the stock chain at (row r, column c) of the grid being built
        return _exact_pixels(values, plan_y, plan_x, m, c, r, mode) if column_major else _exact_pixels(
            values, plan_y, plan_x, m, r, c, mode
        )

    if column_major:  # build the transposed output: its rows are the image's columns
        grid_values = np.ascontiguousarray(values.transpose(0, 2, 1))
        py, px = plan_x, plan_y
    else:
        grid_values = values
        py, px = plan_y, plan_x
    crops = _threshold_grid(grid_values, py, px, exact)
    if column_major:
        return [None if c is None else Crop(c.x0, c.y0, c.mask, transposed=True) for c in crops]
    return crops


def _threshold_grid(values: np.ndarray, py: AxisPlan, px: AxisPlan, exact) -> list[Crop | None]:
    """The sparse evaluation on a (N, a, b) grid with plans ``py`` (axis a) and ``px`` (axis b)."""
    n = values.shape[0]
    # Window minima / maxima of every cell, (N, Gy, Gx).
    across = values[:, :, px.group_taps]  # (N, h, Gx, Kx)
    lo = across.min(axis=3)[:, py.group_taps, :].min(axis=2)
    hi = across.max(axis=3)[:, py.group_taps, :].max(axis=2)
    del across
    positive = lo > POSITIVE_FLOOR
    negative = hi <= 0
    mixed = ~(positive | negative)

    # Boundary cells: pixel values (sign) for every mixed cell, all masks at once.
    mi, cy, cx = np.nonzero(mixed)
    signs = np.empty((mi.size, py.run, px.run), bool)
    rowwise = (px.keys is not None or px.blocks.shape[2] == 1) and py.run * px.run > DIRECT_MAX_CELL
    evaluate = _cell_signs if rowwise else _cell_signs_direct
    for start in range(0, mi.size, _CELL_CHUNK):
        sl = slice(start, start + _CELL_CHUNK)
        signs[sl] = evaluate(values, py, px, mi[sl], cy[sl], cx[sl], exact)
    offsets = np.searchsorted(mi, np.arange(n + 1))

    crops: list[Crop | None] = [None] * n
    live_any = ~negative
    for m in range(n):
        rows = np.flatnonzero(live_any[m].any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(live_any[m].any(axis=0))
        gy0, gy1, gx0, gx1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # rows padded to py.run per group (dropped by one row take at the end), columns exact
        # plus one dump column that receives the padding columns of the boundary blocks
        widths = np.append(px.length[gx0:gx1], 1)
        cells = np.concatenate((positive[m, gy0:gy1, gx0:gx1], np.zeros((gy1 - gy0, 1), bool)), axis=1)
        grid = np.repeat(np.repeat(cells, py.run, axis=0), widths, axis=1)
        width = grid.shape[1] - 1
        lo_c, hi_c = offsets[m], offsets[m + 1]
        if hi_c > lo_c:
            row_index = (cy[lo_c:hi_c] - gy0)[:, None] * py.run + np.arange(py.run)[None, :]  # (Mm, Ry)
            col_index = px.exact_columns[cx[lo_c:hi_c]] - px.first[gx0]  # (Mm, Rx), padding -> -1
            col_index[col_index < 0] = width
            flat = (row_index[:, :, None] * (width + 1) + col_index[:, None, :]).reshape(-1)
            grid.reshape(-1)[flat] = signs[lo_c:hi_c].reshape(-1)
        row_sel = py.valid[py.first[gy0] : py.first[gy1 - 1] + py.length[gy1 - 1]] - gy0 * py.run
        crops[m] = Crop(int(py.first[gy0]), int(px.first[gx0]), np.take(grid[:, :width], row_sel, axis=0))
    return crops


def _cell_signs(
    values: np.ndarray, py: AxisPlan, px: AxisPlan, mi: np.ndarray, cy: np.ndarray, cx: np.ndarray, exact
) -> np.ndarray:
    """``stock value > 0`` on every (padded) pixel of some boundary cells: (M, Ry, Rx) bool.

    Per cell row, the height pass of the window gives the values ``a``, ``b``
    at the window's two source columns (float64); along the row the stock
    value is ``a * w0 + b * w1`` with ``w0 + w1 = 1`` (to 3 ulps) and ``w1``
    non-decreasing, so the pixels above / below ``margin`` are a prefix and a
    suffix of the row, found by a search of the thresholds in the sorted
    weights. Only the pixels between (within ``margin`` of 0: usually none)
    are computed, with the stock chain itself.
    """
    count = mi.size
    window = values[mi[:, None, None], py.group_taps[cy][:, :, None], px.group_taps[cx][:, None, :]]  # (M, Ky, Kx)
    scale = np.abs(window).reshape(count, -1).max(axis=1).astype(np.float64)
    margin = (scale * (2.0 * float(RELATIVE_BOUND)) + float(ABSOLUTE_BOUND))[:, None]  # (M, 1)
    rows = np.matmul(py.blocks[cy].astype(np.float64), window.astype(np.float64))  # (M, Ry, Kx)
    ry, rx = py.run, px.run
    width = px.length[cx][:, None]  # (M, 1) real pixels per row
    a = rows[:, :, 0]
    if window.shape[2] == 1:  # unchanged width: the value is a along the whole row
        zero = np.zeros_like(a, dtype=np.int64)
        full = np.broadcast_to(width, a.shape)
        pos_lo, pos_hi = zero, np.where(a > margin, full, zero)
        uns_lo, uns_hi = zero, np.where(np.abs(a) <= margin, full, zero)
    else:
        b = rows[:, :, 1]
        slope = b - a
        flat = slope == 0
        safe = np.where(flat, 1.0, slope)
        t_pos = np.clip((margin - a) / safe, -1.0, 1.5)  # L = a + slope * w1 > margin
        t_neg = np.clip((-margin - a) / safe, -1.0, 1.5)  # L < -margin
        base = (4.0 * cx)[:, None]
        start = (cx * rx)[:, None]
        # Counts of weights <= each threshold. A weight equal to a threshold puts L exactly at
        # +-margin, which is as certain as any value beyond it, so one search side serves all.
        k_pos = np.searchsorted(px.keys, base + t_pos, side="right") - start  # w1 <= t_pos
        k_neg = np.searchsorted(px.keys, base + t_neg, side="right") - start  # w1 <= t_neg
        up = slope > 0
        full = np.broadcast_to(width, a.shape)
        zero = np.zeros_like(k_pos)
        # rising rows: positive where w1 > t_pos (suffix from k_pos), negative where w1 <= t_neg
        # (prefix to k_neg); falling rows (t_neg > t_pos): positive where w1 <= t_pos (prefix
        # to k_pos), negative where w1 > t_neg (suffix from k_neg). Unsure: the pixels between.
        pos_lo = np.where(up, k_pos, zero)
        pos_hi = np.where(up, full, k_pos)
        uns_lo = np.where(up, k_neg, k_pos)
        uns_hi = np.where(up, k_pos, k_neg)
        flat_pos = flat & (a > margin)
        flat_unsure = flat & (np.abs(a) <= margin)
        pos_lo = np.where(flat, zero, pos_lo)
        pos_hi = np.where(flat, np.where(flat_pos, full, zero), pos_hi)
        uns_lo = np.where(flat, zero, uns_lo)
        uns_hi = np.where(flat, np.where(flat_unsure, full, zero), uns_hi)
    s_index = np.arange(rx)[None, None, :]
    signs = (s_index >= pos_lo[:, :, None]) & (s_index < pos_hi[:, :, None])
    uns_lo = np.minimum(uns_lo, width)
    uns_hi = np.minimum(uns_hi, width)
    spans = np.maximum(uns_hi - uns_lo, 0)
    spans[np.arange(ry)[None, :] >= py.length[cy][:, None]] = 0  # padding rows
    total = int(spans.sum())
    if total:
        cell, dy = np.nonzero(spans)
        lengths = spans[cell, dy]
        cell = np.repeat(cell, lengths)
        dy = np.repeat(dy, lengths)
        dx = np.repeat(uns_lo[spans > 0], lengths) + (np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths))
        y = py.first[cy[cell]] + dy
        x = px.first[cx[cell]] + dx
        signs[cell, dy, dx] = exact(mi[cell], y, x)
    return signs


def _cell_signs_direct(
    values: np.ndarray, py: AxisPlan, px: AxisPlan, mi: np.ndarray, cy: np.ndarray, cx: np.ndarray, exact
) -> np.ndarray:
    """As :func:`_cell_signs`, evaluating every pixel: the cell's weight blocks times its
    source window in float32 (``|error| <= ~4.1 * 2**-24 * m``), pixels within
    ``RELATIVE_BOUND * m`` of 0 recomputed with the stock chain. Used for small cells
    (faster there) and for axes without sorted second weights (never seen)."""
    window = values[mi[:, None, None], py.group_taps[cy][:, :, None], px.group_taps[cx][:, None, :]]  # (M, Ky, Kx)
    rows = np.matmul(py.blocks[cy], window)  # (M, Ry, Kx)
    approx = np.matmul(rows, np.swapaxes(px.blocks[cx], 1, 2))  # (M, Ry, Rx)
    bound = np.abs(window).reshape(mi.size, -1).max(axis=1) * RELATIVE_BOUND + ABSOLUTE_BOUND
    signs = approx > 0
    np.abs(approx, out=approx)
    unsure = approx <= bound[:, None, None]
    unsure &= (np.arange(py.run)[None, :] < py.length[cy][:, None])[:, :, None]
    unsure &= (np.arange(px.run)[None, :] < px.length[cx][:, None])[:, None, :]
    if unsure.any():
        cell, dy, dx = np.nonzero(unsure)
        y = py.first[cy[cell]] + dy
        x = px.first[cx[cell]] + dx
        signs[cell, dy, dx] = exact(mi[cell], y, x)
    return signs


def _exact_pixels(
    values: np.ndarray, py: AxisPlan, px: AxisPlan, m: np.ndarray, y: np.ndarray, x: np.ndarray, mode: str
) -> np.ndarray:
    """The stock float32 chain at individual pixels: width pass on each tap row, then height; ``> 0``.

    The dropped all-zero trailing taps would add ``fma(v, 0, acc) == acc`` (at
    most the sign of a zero changes), so the sign is the stock one.
    """
    rows, wy = py.taps[y], py.weights[y]  # (P, Ky)
    cols, wx = px.taps[x], px.weights[x]  # (P, Kx)
    taps = values[m[:, None, None], rows[:, :, None], cols[:, None, :]]  # (P, Ky, Kx)
    across = _chain(taps, np.broadcast_to(wx[:, None, :], taps.shape), mode)  # (P, Ky)
    return _chain(across, wy, mode) > 0


# -- assembling outputs ----------------------------------------------------------------
def paste_dense(crops: Sequence[Crop | None], out_hw: tuple[int, int], offset: tuple[int, int] = (0, 0),
                canvas_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Crops -> dense (N, H, W) bool on a canvas (default: the resized grid), shifted by ``offset`` (y, x)."""
    ch, cw = canvas_hw or out_hw
    dense = np.zeros((len(crops), ch, cw), bool)
    oy, ox = offset
    for i, crop in enumerate(crops):
        if crop is not None:
            rows = crop.rows
            hh, ww = rows.shape
            dense[i, oy + crop.y0 : oy + crop.y0 + hh, ox + crop.x0 : ox + crop.x0 + ww] = rows
    return dense


def coco_counts(crop: Crop | None, canvas_hw: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> list[int]:
    """Uncompressed COCO counts (column-major, starting with background) of one crop on a canvas.

    The list the stock encoder hands to ``pycocotools.mask.frPyObjects``: the
    first count is the leading background run (0 when the first pixel is
    set), no trailing zero-length run.

    >>> import numpy as np
    >>> coco_counts(Crop(1, 2, np.array([[True], [True]])), (4, 3))
    [9, 2, 1]
    >>> coco_counts(None, (2, 2)), coco_counts(Crop(0, 0, np.ones((2, 2), bool)), (2, 2))
    ([4], [0, 4])
    """
    height, width = int(canvas_hw[0]), int(canvas_hw[1])
    total = height * width
    if crop is None:
        return [total]
    columns = crop.columns
    w, h = columns.shape
    # the crop column by column, each column followed by one background pixel
    stream = np.zeros((w, h + 1), np.uint8)
    stream[:, :h] = columns
    flat = stream.reshape(-1)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if flat[0]:
        edges = np.concatenate(([0], edges))
    if edges.size == 0:
        return [total]
    column, row = np.divmod(edges, h + 1)
    position = (crop.x0 + offset[1] + column) * height + (crop.y0 + offset[0] + row)
    starts, stops = position[0::2], position[1::2]
    if starts.size > 1:  # a run ending a canvas column and one starting the next are one run
        cut = starts[1:] != stops[:-1]
        starts = starts[np.concatenate(([True], cut))]
        stops = stops[np.concatenate((cut, [True]))]
    bounds = np.empty(2 * starts.size + 2, np.int64)
    bounds[0], bounds[-1] = 0, total
    bounds[1:-1:2], bounds[2:-1:2] = starts, stops
    counts = np.diff(bounds)
    if counts[-1] == 0:
        counts = counts[:-1]
    return counts.tolist()
