"""A CPU model of torch CUDA's antialiased bilinear resize, operation for operation.

inference-models' stock mask path runs
``torchvision.transforms.functional.resize(logits, (H, W), BILINEAR)``
(``antialias=True``) then ``.gt_(threshold)``. On a CUDA tensor that is
torch's ``upsample_gen2d_aa_out_frame<float, float, BilinearFilterFunctor>``
(``aten/src/ATen/native/cuda/UpSampleBilinear2d.cu`` with the helpers of
``UpSample.cuh``), a different kernel from the CPU one that
:mod:`inference_accel.integrations.stock_masks` reproduces. This module
computes, in numpy float32, what that CUDA kernel computes.

**Where the order comes from.** The source (pytorch main, read through the
code index) and the SASS of the torch 2.14.1+cu130 wheel's
``libtorch_cuda.so``, dumped with Triton's bundled ``cuobjdump -sass -fun
<mangled name>``. The wheel ships that kernel for sm_75/80/86/90/100/120
(no sm_87/89: Jetson Orin and Ada run the sm_86 code); all six have the same
arithmetic (checked: same FFMA/FADD/FMUL pattern, no ``.FTZ`` on the value
path). Per axis ``in -> out``, one thread per output pixel, float32 only:

- ``scale = float(in) / float(out)`` (host; IEEE division);
  ``support = max(scale, 1)`` (``FMNMX``);
- ``p = float(i) + 0.5``; ``xmin = max(trunc(fma(p, scale, -support) +
  0.5), 0)``; ``xsize = min(trunc(fma(p, scale, support) + 0.5), in) -
  xmin``: nvcc contracts ``center = scale * p`` into both sums (``FFMA``), so
  the centre is never rounded on its own;
- ``xmin_m_center = fma(-p, scale, float(xmin))`` (contracted again);
  ``invscale = 1 / scale`` (correctly rounded ``MUFU.RCP`` + Newton + slow
  path) when ``scale >= 1`` else 1;
- ``w_j = tri(((xmin_m_center + j) + 0.5) * invscale)`` for ``j < xsize``
  (``tri(x) = 1 - |x|`` when ``|x| < 1``, else 0), ``total = w_0 + w_1 + ...``
  in order, then ``w_j = w_j / total`` (IEEE division, ``FCHK`` + slow path)
  when ``total != 0``;
- per tap row ``y`` of the window: ``r_y = v[y, xmin] * wx_0`` then
  ``r_y = fma(v[y, xmin + j], wx_j, r_y)`` (``FMUL`` then ``FFMA``); the
  output is ``r_0 * wy_0`` then ``fma(r_k, wy_k, out)``. Taps whose weight is
  0 are still multiplied (``0 * inf = NaN`` reaches the output).
- No copy when one axis keeps its size (that axis gets taps ``(i, i + 1)``
  with weights ``(1, 0)``); torchvision itself returns the input unchanged
  when both sizes are equal (:func:`stock_resize_cuda`).

torchvision 0.29 calls ``F.interpolate(size=..., antialias=True)``, which
goes to ``_upsample_bilinear2d_aa`` with no scale factors (so the scale is
``in / out`` as above) before its deterministic-algorithms branch: unlike
plain bilinear, ``torch.use_deterministic_algorithms(True)`` does not change
this path (read in torch 2.14.1's ``torch/nn/functional.py``).

Not verified on a GPU (none was available): the claim is "equals this model
of the CUDA order, read from the source and the SASS", never "equals torch
CUDA"; ``tests/test_stock_masks_triton.py`` has the GPU comparison, marked
``gpu``.

>>> import numpy as np
>>> x = np.array([[[1.0, -2.0], [0.5, 4.0]]], np.float32)
>>> stock_resize_cuda(x, (3, 3))[0, 1].tolist()
[0.75, 0.875, 1.0]
>>> axis_weights(2, 4).xsize.tolist(), axis_weights(3, 3).weights[0].tolist()
([1, 2, 2, 1], [1.0, 0.0, 0.0])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference_accel.postprocess.taps import fma32

f32 = np.float32


@dataclass(frozen=True)
class AxisWeights:
    """torch CUDA's taps for one axis ``in_size -> out_size``.

    ``xmin``, ``xsize`` (out,) int64: the first source index and the number of
    taps of each output; ``weights`` (out, K) float32, ``K = 2 * ceil(support)
    + 1`` (the kernel's ``interp_width``), zero past ``xsize``.
    """

    in_size: int
    out_size: int
    xmin: npt.NDArray[np.int64]
    xsize: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]


def _trunc_to_int(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """``F2I.TRUNC.NTZ``: float32 -> int, toward zero (finite inputs)."""
    return np.trunc(x.astype(np.float64)).astype(np.int64)


@functools.lru_cache(maxsize=256)
def axis_weights(in_size: int, out_size: int) -> AxisWeights:
    """torch CUDA's ``_compute_weights_span`` + ``_compute_weights`` for one axis, in float32.

    >>> w = axis_weights(4, 8)
    >>> w.xmin.tolist()[:4], w.xsize.tolist()[:4], w.weights[1, :2].tolist()
    ([0, 0, 0, 1], [1, 2, 2, 2], [0.75, 0.25])
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"axis sizes must be >= 1, got {in_size} -> {out_size}")
    with np.errstate(all="ignore"):
        scale = f32(f32(in_size) / f32(out_size))
        support = max(scale, f32(1.0))
        invscale = f32(f32(1.0) / scale) if scale >= 1.0 else f32(1.0)
        width = int(np.ceil(np.float64(support))) * 2 + 1
        p = (np.arange(out_size, dtype=np.int64).astype(f32) + f32(0.5)).astype(f32)
        lo = (fma32(p, scale, -support) + f32(0.5)).astype(f32)
        hi = (fma32(p, scale, support) + f32(0.5)).astype(f32)
        xmin = np.maximum(_trunc_to_int(lo), 0)
        xsize = np.minimum(_trunc_to_int(hi), in_size) - xmin
        xmin_m_center = fma32(-p, scale, xmin.astype(f32))
        weights = np.zeros((out_size, width), f32)
        total = np.zeros(out_size, f32)
        for j in range(width):
            x = (((xmin_m_center + f32(j)).astype(f32) + f32(0.5)).astype(f32) * invscale).astype(f32)
            x = np.abs(x)
            w = np.where(x < f32(1.0), (f32(1.0) - x).astype(f32), f32(0.0)).astype(f32)
            w = np.where(j < xsize, w, f32(0.0)).astype(f32)
            weights[:, j] = w
            total = np.where(j < xsize, (total + w).astype(f32), total).astype(f32)
        nonzero = total != 0
        weights[nonzero] = (weights[nonzero] / total[nonzero, None]).astype(f32)
    for array in (xmin, xsize, weights):
        array.setflags(write=False)
    return AxisWeights(in_size, out_size, xmin, xsize, weights)


def _chain(
    values: npt.NDArray[np.float32], weights: npt.NDArray[np.float32], count: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """``interpolate_aa_single_dim`` over the last axis: ``v0*w0`` then ``fma(v_j, w_j, acc)`` for ``j < count``."""
    with np.errstate(all="ignore"):
        acc = (values[..., 0] * weights[..., 0]).astype(f32)
        for j in range(1, values.shape[-1]):
            live = j < count
            if not np.any(live):
                break
            acc = np.where(live, fma32(values[..., j], weights[..., j], acc), acc).astype(f32)
    return acc


def upsample_aa_cuda(
    logits: npt.ArrayLike,
    out_hw: tuple[int, int],
    window: tuple[int, int, int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """torch CUDA's ``_upsample_bilinear2d_aa`` (float32) of (N, h, w) logits to (N, H, W).

    ``window`` ``(y0, y1, x0, x1)``: compute only those output rows and
    columns (half-open), for 8K targets in tests. Any sizes, including
    equal ones (the kernel runs; it has no copy branch). Downsampling follows
    the same order (more taps), modelled but never launched here.

    >>> import numpy as np
    >>> x = np.array([[[1.0, np.inf]]], np.float32)
    >>> upsample_aa_cuda(x, (1, 2)).tolist()  # unchanged size: tap i + 1 still multiplied by 0
    [[[nan, inf]]]
    """
    values = np.asarray(logits, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"logits must be (N, h, w), got shape {values.shape}")
    _, h, w = values.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    y0, y1, x0, x1 = window if window is not None else (0, oh, 0, ow)
    if not (0 <= y0 <= y1 <= oh and 0 <= x0 <= x1 <= ow):
        raise ValueError(f"window {window} is not inside the {oh}x{ow} output")
    ax, ay = axis_weights(w, ow), axis_weights(h, oh)
    kx, ky = ax.weights.shape[1], ay.weights.shape[1]
    cols = np.minimum(ax.xmin[x0:x1, None] + np.arange(kx)[None, :], w - 1)  # (ox, kx)
    rows = np.minimum(ay.xmin[y0:y1, None] + np.arange(ky)[None, :], h - 1)  # (oy, ky)
    # horizontal pass of every source row the window needs, per output column: (N, h, ox)
    across = _chain(values[:, :, cols], ax.weights[x0:x1], ax.xsize[x0:x1])
    # vertical pass: gather the tap rows, (N, oy, ox, ky)
    gathered = np.moveaxis(across[:, rows, :], 2, 3)
    wy = ay.weights[y0:y1, None, :]
    return _chain(gathered, np.broadcast_to(wy, gathered.shape[1:]), ay.xsize[y0:y1, None])


def stock_resize_cuda(
    logits: npt.ArrayLike, out_hw: tuple[int, int], window: tuple[int, int, int, int] | None = None
) -> npt.NDArray[np.float32]:
    """torchvision's ``resize(BILINEAR, antialias=True)`` of a CUDA float32 tensor, modelled.

    torchvision returns the input itself when the size is unchanged;
    otherwise :func:`upsample_aa_cuda`.
    """
    values = np.asarray(logits, dtype=np.float32)
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if values.ndim == 3 and values.shape[1:] == (oh, ow):
        y0, y1, x0, x1 = window if window is not None else (0, oh, 0, ow)
        return values[:, y0:y1, x0:x1].copy()
    return upsample_aa_cuda(values, out_hw, window)


# Taps per output the Triton kernel reads on an upsampling axis: the CUDA
# kernel's ``interp_width = 2 * ceil(support) + 1`` with support 1. Three-tap
# windows do occur (5 -> 27, 126 -> 3538: ``fma`` rounding of the window ends).
KERNEL_TAPS = 3


@dataclass(frozen=True)
class TapTable:
    """One upsampling (or unchanged) axis as the Triton kernel reads it.

    ``first`` (out,) int32: the window's first source index (``xmin``);
    ``count`` (out,) int32: its number of taps (1..KERNEL_TAPS);
    ``weights`` (out, KERNEL_TAPS) float32, zero past ``count``;
    ``last`` (out,) int64: ``first + count - 1`` (a positive output needs a
    positive logit in ``first..last``).
    """

    first: npt.NDArray[np.int32]
    count: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]
    last: npt.NDArray[np.int64]


def kernel_axis_reason(in_size: int, out_size: int) -> str | None:
    """Why the Triton kernel does not take an axis (None: it does)."""
    if in_size < 1 or out_size < 1:
        return f"empty axis {in_size} -> {out_size}"
    if out_size < in_size:
        return (
            f"mask logits are downsampled on an axis ({in_size} -> {out_size}); torch CUDA's "
            "antialiased filter then has more taps than the Triton kernel reads"
        )
    sizes = axis_weights(in_size, out_size).xsize
    if sizes.min() < 1 or sizes.max() > KERNEL_TAPS:
        return (
            f"axis {in_size} -> {out_size} has windows of {int(sizes.min())}..{int(sizes.max())} taps "
            f"(the kernel reads 1..{KERNEL_TAPS})"
        )
    return None


@functools.lru_cache(maxsize=256)
def tap_table(in_size: int, out_size: int) -> TapTable:
    """The kernel's table of an upsampling (or unchanged) axis.

    >>> t = tap_table(2, 4)
    >>> t.first.tolist(), t.count.tolist(), t.weights[:, 1].tolist()
    ([0, 0, 0, 1], [1, 2, 2, 1], [0.0, 0.25, 0.75, 0.0])
    >>> tap_table(5, 27).count.max().item()
    3
    """
    reason = kernel_axis_reason(in_size, out_size)
    if reason is not None:
        raise ValueError(reason)
    a = axis_weights(in_size, out_size)
    weights = np.zeros((out_size, KERNEL_TAPS), f32)
    k = min(KERNEL_TAPS, a.weights.shape[1])
    weights[:, :k] = a.weights[:, :k]
    table = TapTable(
        a.xmin.astype(np.int32), a.xsize.astype(np.int32), weights, (a.xmin + a.xsize - 1).astype(np.int64)
    )
    for array in (table.first, table.count, table.weights, table.last):
        array.setflags(write=False)
    return table
