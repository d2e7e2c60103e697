"""torch's bilinear upsampling, modelled: tap tables and float32 arithmetic per device.

``F.interpolate(bilinear, align_corners=False) > 0`` depends on the exact
float32 order of the interpolation (ANCHORS section 1). This module is the one
model of that order which both executors build on: the CPU executor
(``sparse_cpu``) and the Triton launcher (``triton_launch``), which uploads
these tables for the kernels. Neither imports the other.

Per axis a :class:`AxisTable` gives, for every output index, the two source
taps and their weights exactly as torch computes them; :func:`upsample_values`
is the dense float32 model (tests, probes); :func:`torch_cpu_arith` says which
CPU order the installed torch uses here.

``arith`` names the arithmetic being reproduced:

- ``FMA``: torch's CPU kernel on AVX2/AVX512 builds (contracted multiply-adds);
- ``PLAIN``: torch's CPU DEFAULT build (nothing fused);
- ``CUDA``: torch's CUDA kernel (``upsample_bilinear2d_out_frame``, read from
  the sm_86/90 SASS of torch 2.14's wheel, ANCHORS section 3): ``src =
  fma(d + 0.5, scale, -0.5)`` clamped at 0, ``scale = float(in) / out``, taps
  ``(i, i + (i < in - 1))``, ``l1 = src - i``, ``l0 = 1 - l1``; per row ``t =
  fma(w0, v0, w1 * v1)``, then ``fma(h0, t0, h1 * t1)``; no flush to zero.
  Unlike the CPU kernel it does not special-case an axis whose size is
  unchanged: scale 1, taps ``(i, i + 1)`` (clamped at the edge) and weight 0,
  so ``0 * inf = NaN`` from the neighbour propagates. When *both* sizes are
  unchanged the host copies the input instead (values untouched).
  NOT MEASURED ON A GPU (none was available); the launcher's first-use
  self-check against ``F.interpolate`` guards it.

The CPU and CUDA tables differ only on an unchanged axis:

>>> axis_table(3, 3, FMA).i1.tolist(), axis_table(3, 3, CUDA).i1.tolist()
([0, 1, 2], [1, 2, 2])
>>> x = np.array([[1.0, np.inf], [2.0, 3.0]], np.float32)
>>> upsample_values(x, (2, 2), CUDA)[0].tolist()  # both sizes unchanged: a copy
[1.0, inf]
>>> upsample_values(x, (3, 2), CUDA)[0].tolist(), upsample_values(x, (3, 2), FMA)[0].tolist()
([nan, nan], [1.0, nan])

>>> t = axis_table(4, 8, FMA)
>>> t.i0.tolist(), t.i1.tolist()
([0, 0, 0, 1, 1, 2, 2, 3], [1, 1, 1, 2, 2, 3, 3, 3])
>>> t.w1.tolist()
[0.0, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

FMA, PLAIN, CUDA = "fma", "plain", "cuda"
# torch routes outputs with out_h + out_w <= this to its channels-last kernel.
SMALL_OUTPUT_SUM = 128

f32 = np.float32


# -- exact float32 arithmetic -------------------------------------------------
def fma32(a: npt.ArrayLike, b: npt.ArrayLike, c: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Correctly rounded float32 ``a * b + c`` (what an FMA instruction gives).

    The product of two float32 is exact in float64, so the float64 sum ``s``
    has one rounding; rounding ``s`` again to float32 is correct unless ``s``
    landed exactly on a float32 rounding midpoint (or in the subnormal
    range). Only those rare elements are redone with round-to-odd: TwoSum
    gives the float64 sum's error, an inexact even result steps one ulp
    towards the exact value, and a round-to-odd float64 rounds to float32
    correctly because float64 has more than 24 + 2 bits.
    """
    p = np.asarray(a, np.float32).astype(np.float64) * np.asarray(b, np.float32)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    s = p + c64
    with np.errstate(over="ignore"):
        out = s.astype(np.float32)
    # 29 low mantissa bits == 1000...0: s sits exactly between two float32.
    low = s.view(np.int64) & np.int64(0x1FFFFFFF)
    suspect = (low == np.int64(0x10000000)) | ((np.abs(s) < 2.0**-125) & (s != 0))
    if suspect.any():
        idx = np.nonzero(suspect)
        ps = np.broadcast_to(p, s.shape)[idx]
        cs = np.broadcast_to(c64, s.shape)[idx]
        ss = s[idx]
        with np.errstate(invalid="ignore", over="ignore"):
            bb = ss - ps
            err = (ps - (ss - bb)) + (cs - bb)
            fix = (err != 0) & ((ss.view(np.int64) & 1) == 0) & np.isfinite(ss)
            ss = np.where(fix, np.nextafter(ss, np.where(err > 0, np.inf, -np.inf)), ss)
            out = np.array(out, copy=True) if out.ndim else out
            out[idx] = ss.astype(np.float32)
    return out


def lin2(a, wa, b, wb, arith: str) -> npt.NDArray[np.float32]:
    """torch's ``a * wa + b * wb`` in float32 (``fma(a, wa, b * wb)`` on FMA builds and CUDA)."""
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.multiply(b, wb, dtype=np.float32)
        if arith in (FMA, CUDA):
            return fma32(a, wa, q)
        return np.add(np.multiply(a, wa, dtype=np.float32), q, dtype=np.float32)


# -- index tables -------------------------------------------------------------
@dataclass(frozen=True)
class AxisTable:
    """torch's source taps and weights for every output index of one axis."""

    i0: npt.NDArray[np.int64]
    i1: npt.NDArray[np.int64]
    w0: npt.NDArray[np.float32]
    w1: npt.NDArray[np.float32]


@functools.lru_cache(maxsize=64)
def axis_table(in_size: int, out_size: int, arith: str) -> AxisTable:
    """Taps/weights of ``F.interpolate(bilinear, align_corners=False)`` along one axis.

    CUDA computes ``i0 = (int)src`` and ``l1 = src - i0`` without the CPU's
    clamps; ``src < in`` and ``i0 = floor(src)`` make them the same values.
    """
    if in_size == out_size and arith != CUDA:
        idx = np.arange(out_size, dtype=np.int64)
        return AxisTable(idx, idx, np.ones(out_size, f32), np.zeros(out_size, f32))
    scale = np.float32(in_size) / np.float32(out_size)
    half = np.arange(out_size, dtype=np.float32) + f32(0.5)
    if arith in (FMA, CUDA):
        src = fma32(scale, half, f32(-0.5))
    else:
        src = np.multiply(scale, half, dtype=np.float32) - f32(0.5)
    src = np.maximum(src, f32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), f32(0), f32(1)).astype(np.float32)
    w0 = (f32(1) - w1).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    for arr in (i0, i1, w0, w1):
        arr.setflags(write=False)
    return AxisTable(i0, i1, w0, w1)


def upsample_values(window: np.ndarray, out_hw: tuple[int, int], arith: str) -> np.ndarray:
    """Dense float32 bilinear values of a (h, w) window at ``out_hw``, torch's way.

    Used for tiny outputs (``out_h + out_w <= 128``, torch's other CPU
    kernel), for the arithmetic probe, and by tests (``CUDA``: the model the
    Triton kernel is checked against). Cost: the whole output.
    """
    window = np.asarray(window, dtype=np.float32)
    h, w = window.shape
    oh, ow = out_hw
    if arith == CUDA and (h, w) == (oh, ow):
        return window.copy()  # torch's CUDA host copies an unresized input
    ty, tx = axis_table(h, oh, arith), axis_table(w, ow, arith)
    v00 = window[ty.i0[:, None], tx.i0[None, :]]
    v01 = window[ty.i0[:, None], tx.i1[None, :]]
    v10 = window[ty.i1[:, None], tx.i0[None, :]]
    v11 = window[ty.i1[:, None], tx.i1[None, :]]
    wy0, wy1 = ty.w0[:, None], ty.w1[:, None]
    wx0, wx1 = tx.w0[None, :], tx.w1[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        if oh + ow <= SMALL_OUTPUT_SUM and arith != CUDA:
            w00, w01 = wy0 * wx0, wy0 * wx1
            w10, w11 = wy1 * wx0, wy1 * wx1
            if arith == FMA:
                acc = fma32(v00, w00, np.multiply(v01, w01, dtype=np.float32))
                acc = fma32(v10, w10, acc)
                return fma32(v11, w11, acc)
            acc = np.add(v00 * w00, v01 * w01, dtype=np.float32)
            acc = np.add(acc, v10 * w10, dtype=np.float32)
            return np.add(acc, v11 * w11, dtype=np.float32)
        t0 = lin2(v00, wx0, v01, wx1, arith)
        t1 = lin2(v10, wx0, v11, wx1, arith)
        return lin2(t0, wy0, t1, wy1, arith)


def _probe_inputs() -> list[tuple[np.ndarray, tuple[int, int]]]:
    rng = np.random.default_rng(20240501)
    cases = []
    for (h, w), out in (((13, 17), (100, 37)), ((9, 11), (40, 50)), ((24, 20), (90, 301)), ((30, 30), (17, 23))):
        logits = rng.standard_normal((h, w)).astype(np.float32)
        logits[rng.random((h, w)) < 0.5] *= np.float32(1e-6)  # many values near zero
        cases.append((logits, out))
    return cases


@functools.lru_cache(maxsize=1)
def torch_cpu_arith() -> str | None:
    """Which arithmetic torch's CPU bilinear kernel uses here (None: neither).

    Compares :func:`upsample_values` with ``F.interpolate`` bit for bit on
    inputs that separate the orders (both torch kernels, values near zero).
    """
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    order = (PLAIN, FMA) if capability == "DEFAULT" else (FMA, PLAIN)
    cases = _probe_inputs()
    expected = [
        torch.nn.functional.interpolate(
            torch.from_numpy(x)[None, None], size=out, mode="bilinear", align_corners=False
        )[0, 0].numpy()
        for x, out in cases
    ]
    for arith in order:
        if all(
            np.array_equal(upsample_values(x, out, arith).view(np.int32), e.view(np.int32))
            for (x, out), e in zip(cases, expected)
        ):
            return arith
    return None
