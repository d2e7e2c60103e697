"""Pillow's BILINEAR resize, exactly: coefficient tables, pass order, reference.

``PIL.Image.resize(size, BILINEAR)`` on a uint8 image is a separable
convolution with a triangle filter stretched by the downscale factor
(antialiasing), evaluated in int32 fixed point (ANCHORS.md section 1):

- per axis, in float64, ``scale = in / out``, ``filterscale = max(scale, 1)``,
  ``support = filterscale``; output ``i`` covers source pixels
  ``[xmin, xmin + xsize)`` around ``center = (i + 0.5) * scale`` with weights
  ``tri(((x - center) + 0.5) * (1 / filterscale))`` normalised by their sum;
- each weight becomes ``int(0.5 + w * 2**22)`` (``PRECISION_BITS = 22``);
- an output value is ``clamp((2**21 + sum(pixel * coef)) >> 22, 0, 255)``,
  accumulated in int32;
- two passes with a uint8 intermediate; a pass whose size is unchanged is
  skipped; the installed Pillow decides which axis goes first
  (:func:`vertical_first`).

This module is the host side every fast path shares: :func:`coefficients`
(cached float64-derived int32 tables), :func:`vertical_first` and
:func:`resize_reference`, a pure-numpy implementation of the two passes that
tests compare with the installed Pillow.

>>> import numpy as np
>>> from PIL import Image
>>> img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
>>> ours = resize_reference(img, (11, 70))
>>> theirs = np.asarray(Image.fromarray(img).resize((70, 11), Image.BILINEAR))
>>> bool((ours == theirs).all())
True
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np
import PIL

PRECISION_BITS = 22
ROUNDING = 1 << (PRECISION_BITS - 1)

__all__ = [
    "PRECISION_BITS",
    "ROUNDING",
    "Coefficients",
    "coefficients",
    "pillow_version",
    "vertical_first",
    "pass_sizes",
    "resample_axis",
    "resize_reference",
]


@dataclass(frozen=True)
class Coefficients:
    """Pillow's fixed-point filter for one axis, ``in_size`` -> ``out_size``.

    ``xmin[i]``, ``xsize[i]`` (int32, shape (out_size,)): output ``i`` reads
    source pixels ``xmin[i] .. xmin[i] + xsize[i] - 1``.
    ``coef`` (int32, shape (out_size, ksize), C-contiguous): the weights of
    those taps, zero beyond ``xsize[i]``. ``ksize`` is Pillow's own bound
    ``2 * ceil(support) + 1``; ``max_taps`` is ``xsize.max()`` (<= ksize).
    Arrays are read-only: the tables are shared through a cache.
    """

    in_size: int
    out_size: int
    xmin: np.ndarray
    xsize: np.ndarray
    coef: np.ndarray

    @property
    def ksize(self) -> int:
        return int(self.coef.shape[1])

    @property
    def max_taps(self) -> int:
        return int(self.xsize.max())


@functools.lru_cache(maxsize=64)
def coefficients(in_size: int, out_size: int) -> Coefficients:
    """The int32 tables Pillow uses to resize an axis from ``in_size`` to ``out_size``.

    Mirrors ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` of Pillow's
    ``Resample.c`` step by step in float64, including its order of
    operations (``(x + xmin - center + 0.5) * ss`` with ``ss = 1 / filterscale``),
    because a different rounding of one weight changes output bytes.
    """
    in_size, out_size = int(in_size), int(out_size)
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = float(in_size) / out_size  # box is (0, in_size): in1 - in0 == in_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # bilinear filter support is 1
    ksize = int(math.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale

    i = np.arange(out_size, dtype=np.float64)
    center = 0.0 + (i + 0.5) * scale
    xmin = (center - support + 0.5).astype(np.int64)  # C (int) truncates toward 0
    xmin = np.maximum(xmin, 0)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size)
    xsize = xmax - xmin

    taps = np.arange(ksize, dtype=np.int64)
    valid = taps[None, :] < xsize[:, None]
    pos = (taps[None, :] + xmin[:, None]).astype(np.float64)
    t = np.abs((pos - center[:, None] + 0.5) * ss)
    w = np.where(valid & (t < 1.0), 1.0 - t, 0.0)
    # Pillow sums the weights left to right; np.cumsum keeps that order.
    ww = np.cumsum(w, axis=1)[:, -1]
    w = np.where(ww[:, None] != 0.0, w / np.where(ww == 0.0, 1.0, ww)[:, None], w)
    coef = np.where(w < 0, -0.5 + w * (1 << PRECISION_BITS), 0.5 + w * (1 << PRECISION_BITS))
    coef = np.trunc(coef).astype(np.int32)  # C (int) conversion truncates
    coef[~valid] = 0

    tables = Coefficients(
        in_size,
        out_size,
        np.ascontiguousarray(xmin, dtype=np.int32),
        np.ascontiguousarray(xsize, dtype=np.int32),
        np.ascontiguousarray(coef),
    )
    for array in (tables.xmin, tables.xsize, tables.coef):
        array.setflags(write=False)
    return tables


def pillow_version(version: str | None = None) -> tuple[int, int]:
    """(major, minor) of ``version`` (default: the installed Pillow)."""
    match = re.match(r"(\d+)\.(\d+)", version or PIL.__version__)
    if match is None:
        raise ValueError(f"cannot parse a Pillow version from {version or PIL.__version__!r}")
    return int(match.group(1)), int(match.group(2))


def vertical_first(
    in_hw: tuple[int, int], out_hw: tuple[int, int], version: str | None = None
) -> bool:
    """Whether Pillow ``version`` (default: installed) resizes rows before columns.

    Pillow <= 12 always runs the horizontal pass first. Pillow 13 runs the
    vertical pass first when ``out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)``
    (a mostly-vertical reduction, e.g. a portrait 1080x1920 frame to 312x312).
    Tests check the rule against the installed Pillow's bytes.
    """
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    if pillow_version(version)[0] < 13:
        return False
    return out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


def pass_sizes(
    in_hw: tuple[int, int], out_hw: tuple[int, int], version: str | None = None
) -> tuple[str, ...]:
    """The passes Pillow runs, in order: a tuple of ``"h"`` / ``"v"``.

    A pass whose axis keeps its size is skipped (``()`` for an identity resize).
    """
    order = ("v", "h") if vertical_first(in_hw, out_hw, version) else ("h", "v")
    needed = {"h": in_hw[1] != out_hw[1], "v": in_hw[0] != out_hw[0]}
    return tuple(axis for axis in order if needed[axis])


def resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One exact Pillow pass along ``axis`` (0: rows/vertical, 1: columns/horizontal).

    ``image``: uint8, shape (H, W) or (H, W, C). Returns a new uint8 array
    with ``image.shape[axis]`` replaced by ``out_size``. int32 accumulation
    in Pillow's tap order; ``>> 22`` is an arithmetic shift like C's on int.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}")
    tables = coefficients(image.shape[axis], out_size)
    moved = np.moveaxis(image, axis, 0)
    acc = np.full((out_size,) + moved.shape[1:], ROUNDING, dtype=np.int32)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    for k in range(tables.max_taps):
        index = np.minimum(tables.xmin + k, tables.in_size - 1)  # coef is 0 past xsize
        acc += moved[index].astype(np.int32) * tables.coef[:, k][extra]
    out = np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def resize_reference(
    image: np.ndarray, out_hw: tuple[int, int], version: str | None = None
) -> np.ndarray:
    """Pure-numpy ``Image.resize((out_w, out_h), BILINEAR)`` for uint8 (H, W[, C]).

    Byte-identical to the Pillow release ``version`` (default: installed):
    same tables, same int32 arithmetic, uint8 intermediate, same pass order.
    Slow (numpy, one gather per tap); for tests and debugging.
    """
    out = image
    for axis in pass_sizes(image.shape[:2], out_hw, version):
        if axis == "h":
            out = resample_axis(out, out_hw[1], 1)
        else:
            out = resample_axis(out, out_hw[0], 0)
    return np.array(out, copy=True) if out is image else out
