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
  skipped; which axis goes first depends on the release and the sizes
  (:data:`PASS_ORDER_RULES`, read from each release's source: always
  horizontal on 10.0-12.1, vertical for tall images on 12.2/12.3, vertical
  for mostly-vertical reductions on 13.0).

This module is the host side every fast path shares: :func:`coefficients`
(cached float64-derived int32 tables), :func:`vertical_first` (the table's
prediction for the installed release), :func:`pass_order_mismatch` (the
run-time check of that prediction against the installed Pillow's bytes,
once per geometry) and :func:`resize_reference`, a pure-numpy
implementation of the two passes that tests compare with the installed Pillow.

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
from typing import Callable

import numpy as np
import PIL
from PIL import Image

PRECISION_BITS = 22
ROUNDING = 1 << (PRECISION_BITS - 1)

__all__ = [
    "PRECISION_BITS",
    "ROUNDING",
    "Coefficients",
    "coefficients",
    "pillow_version",
    "PassOrderPredicate",
    "PASS_ORDER_RULES",
    "pass_order_rule",
    "vertical_first",
    "pass_sizes",
    "pass_order_mismatch",
    "GATHER_ELEMENTS",
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
    """(major, minor) of ``version`` (default: the installed Pillow).

    >>> pillow_version("12.3.0")
    (12, 3)
    """
    return _parse_version(version or PIL.__version__)


@functools.lru_cache(maxsize=16)
def _parse_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"cannot parse a Pillow version from {version!r}")
    return int(match.group(1)), int(match.group(2))


# -- pass order: one rule per Pillow release, read from its source -----------------
# A rule takes (in_h, in_w, out_h, out_w) and says whether the vertical pass runs
# first. Only the order of two needed passes matters (pass_sizes drops the others).
PassOrderPredicate = Callable[[int, int, int, int], bool]


def _always_horizontal_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow 10.0 .. 12.1: ``Image.resize`` makes one ``self.im.resize`` call and
    ``ImagingResampleInner`` (``src/libImaging/Resample.c``) always runs the
    horizontal pass, then the vertical one."""
    return False


def _tall_image_vertical_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow 12.2 / 12.3 (commit 4ef0ac611, "Resize tall images vertically first"):
    ``Image.resize`` tests ``self.size[1] > self.size[0] * 100 and size[1] <
    self.size[1]`` and then makes two calls, to ``(in_w, out_h)`` (vertical only)
    and to ``(out_w, out_h)`` (horizontal only); otherwise one call, horizontal
    first in C."""
    return in_h > in_w * 100 and out_h < in_h


def _mostly_vertical_reduction_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow 13.0: ``ImagingResampleInner`` sets ``horizontal_first =
    !((in_h - out_h) > 0 && (in_h - out_h) > (in_w - out_w) * 2)`` (C int
    arithmetic; no overflow below 2**30 pixels a side) and ``Image.resize``
    makes one call."""
    return (in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2


# Every Pillow release the supported range (pillow>=10.0,<14) knows, keyed by
# (major, minor), with where its rule was read (tags of github.com/python-pillow/Pillow;
# 13.0.0 from its sdist). The coefficient code (precompute_coeffs,
# normalize_coeffs_8bpc) is the same in all of them (checked by diff).
PASS_ORDER_RULES: dict[tuple[int, int], PassOrderPredicate] = {
    # 10.0.0/10.0.1: src/PIL/Image.py:2174 one call; src/libImaging/Resample.c:664 horizontal, :686 vertical
    (10, 0): _always_horizontal_first,
    # 10.1.0: src/PIL/Image.py:2199 one call; src/libImaging/Resample.c:664 horizontal, :686 vertical
    (10, 1): _always_horizontal_first,
    # 10.2.0: src/PIL/Image.py:2200 one call; src/libImaging/Resample.c:664 horizontal, :686 vertical
    (10, 2): _always_horizontal_first,
    # 10.3.0: src/PIL/Image.py:2222 one call; src/libImaging/Resample.c:664 horizontal, :686 vertical
    (10, 3): _always_horizontal_first,
    # 10.4.0: src/PIL/Image.py:2328 one call; src/libImaging/Resample.c:664 horizontal, :686 vertical
    (10, 4): _always_horizontal_first,
    # 11.0.0: src/PIL/Image.py:2365 one call; src/libImaging/Resample.c:757 horizontal, :780 vertical
    (11, 0): _always_horizontal_first,
    # 11.1.0: src/PIL/Image.py:2356 one call; src/libImaging/Resample.c:757 horizontal, :780 vertical
    (11, 1): _always_horizontal_first,
    # 11.2.1: src/PIL/Image.py:2316 one call; src/libImaging/Resample.c:757 horizontal, :780 vertical
    (11, 2): _always_horizontal_first,
    # 11.3.0: src/PIL/Image.py:2321 one call; src/libImaging/Resample.c:759 horizontal, :782 vertical
    (11, 3): _always_horizontal_first,
    # 12.0.0: src/PIL/Image.py:2304 one call; src/libImaging/Resample.c:759 horizontal, :782 vertical
    (12, 0): _always_horizontal_first,
    # 12.1.0/12.1.1: src/PIL/Image.py:2323 one call; src/libImaging/Resample.c:759 horizontal, :782 vertical
    (12, 1): _always_horizontal_first,
    # 12.2.0: src/PIL/Image.py:2431 tall-image split (calls :2432, :2435; else :2437);
    # src/libImaging/Resample.c:759 horizontal, :782 vertical
    (12, 2): _tall_image_vertical_first,
    # 12.3.0: src/PIL/Image.py:2432 tall-image split (calls :2433, :2436; else :2438);
    # src/libImaging/Resample.c:824 horizontal, :843 vertical
    (12, 3): _tall_image_vertical_first,
    # 13.0.0: src/libImaging/Resample.c:863-867 horizontal_first (passes :917-949);
    # src/PIL/Image.py:2440 one call
    (13, 0): _mostly_vertical_reduction_first,
}


def pass_order_rule(version: str | None = None) -> tuple[PassOrderPredicate, bool]:
    """The pass-order rule of Pillow ``version`` (default: installed) and whether it is verified.

    Verified means the release is in :data:`PASS_ORDER_RULES` (its rule was
    read from its source). Any other release gets the rule of the newest
    known release not newer than it (the oldest for anything older) and
    ``False``: :func:`pass_order_mismatch` then trusts only what it observes.

    >>> pass_order_rule("12.3.0")[1], pass_order_rule("14.0.0")[1]
    (True, False)
    >>> pass_order_rule("14.0.0")[0] is PASS_ORDER_RULES[(13, 0)]
    True
    """
    key = pillow_version(version)
    rule = PASS_ORDER_RULES.get(key)
    if rule is not None:
        return rule, True
    known = sorted(PASS_ORDER_RULES)
    older = [k for k in known if k <= key]
    return PASS_ORDER_RULES[older[-1] if older else known[0]], False


def vertical_first(
    in_hw: tuple[int, int], out_hw: tuple[int, int], version: str | None = None
) -> bool:
    """Whether Pillow ``version`` (default: installed) runs the vertical pass first.

    Looks the release up in :data:`PASS_ORDER_RULES` (:func:`pass_order_rule`).
    The releases disagree: a 1000x5 (HxW) frame reduced to 995x1 goes
    vertical first only on 12.2/12.3, a portrait 1920x1080 frame reduced to
    312x312 only on 13.

    >>> [vertical_first((1000, 5), (995, 1), v) for v in ("12.1.1", "12.3.0", "13.0.0")]
    [False, True, False]
    >>> [vertical_first((1920, 1080), (312, 312), v) for v in ("12.1.1", "12.3.0", "13.0.0")]
    [False, False, True]
    """
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    rule, _ = pass_order_rule(version)
    return bool(rule(int(in_h), int(in_w), int(out_h), int(out_w)))


def pass_sizes(
    in_hw: tuple[int, int], out_hw: tuple[int, int], version: str | None = None
) -> tuple[str, ...]:
    """The passes Pillow runs, in order: a tuple of ``"h"`` / ``"v"``.

    A pass whose axis keeps its size is skipped (``()`` for an identity resize).

    >>> pass_sizes((1920, 1080), (312, 312), "13.0.0"), pass_sizes((10, 20), (10, 5))
    (('v', 'h'), ('h',))
    """
    order = ("v", "h") if vertical_first(in_hw, out_hw, version) else ("h", "v")
    needed = {"h": in_hw[1] != out_hw[1], "v": in_hw[0] != out_hw[0]}
    return tuple(axis for axis in order if needed[axis])


# -- runtime self-check: the installed Pillow's bytes, not its version string -------
PROBE_SEED = 0x5EED
PROBE_CACHE_SIZE = 256


def _probe_image(in_hw: tuple[int, int]) -> Image.Image:
    """A deterministic pseudo-random mode "L" image of size ``in_hw`` (H, W).

    Raw 64-bit PCG64 output viewed as bytes: ~2 ms for a 4K frame, 3x faster
    than ``Generator.integers(dtype=uint8)``. Mode "L" is enough: the order is
    decided from sizes only, the same way for every 8-bit mode (Pillow 12.3
    ``Image.resize`` tests ``self.size``/``size`` after converting only LA/RGBA;
    ``ImagingResample`` picks the 8bpc functions for "L" (``image8``) and
    "RGB" (``IMAGING_TYPE_UINT8``) alike and both go through the one
    ``ImagingResampleInner``, whose 13.0 ``horizontal_first`` reads only
    ``imIn->xsize/ysize`` and the output size), and "L" is 3x cheaper.
    """
    h, w = in_hw
    raw = np.random.default_rng(PROBE_SEED).bit_generator.random_raw(-(-h * w // 8))
    return Image.frombuffer("L", (w, h), raw.view(np.uint8)[: h * w], "raw", "L", 0, 1)


def _two_passes(probe: Image.Image, out_hw: tuple[int, int], vertical: bool) -> bytes:
    """Two single-axis Pillow resizes in a forced order: what the fast paths compute."""
    (out_h, out_w), (in_w, in_h) = out_hw, probe.size
    middle = (in_w, out_h) if vertical else (out_w, in_h)
    return probe.resize(middle, Image.BILINEAR).resize((out_w, out_h), Image.BILINEAR).tobytes()


def _order_name(vertical: bool) -> str:
    return "vertical first" if vertical else "horizontal first"


@functools.lru_cache(maxsize=PROBE_CACHE_SIZE)
def _probe_pass_order(
    in_hw: tuple[int, int], out_hw: tuple[int, int], predicted: bool, verified: bool, version: str
) -> str | None:
    """The cached body of :func:`pass_order_mismatch` (the key holds the prediction)."""
    probe = _probe_image(in_hw)
    observed = probe.resize((out_hw[1], out_hw[0]), Image.BILINEAR).tobytes()
    agrees = observed == _two_passes(probe, out_hw, predicted)
    if agrees and verified:
        return None  # the other order is never computed: one probe resize saved
    other = observed == _two_passes(probe, out_hw, not predicted)
    if agrees and not other:
        return None  # an unverified rule, confirmed by bytes that tell the orders apart
    sizes = f"{in_hw[0]}x{in_hw[1]} -> {out_hw[0]}x{out_hw[1]} (HxW)"
    rule = "rule" if verified else f"unverified rule (Pillow {version} is not in PASS_ORDER_RULES)"
    if agrees:  # unverified and both orders give the same bytes on the probe
        seen = "bytes that either order gives, so the probe cannot confirm the rule"
    elif other:
        seen = _order_name(not predicted)
    else:
        seen = "bytes that neither two-pass order gives"
    return f"Pillow {version} resized {sizes} {seen}; the pass-order {rule} predicts {_order_name(predicted)}"


def pass_order_mismatch(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str | None:
    """Why the installed Pillow's pass order for this geometry is not :func:`vertical_first`'s, or ``None``.

    Runs the installed Pillow on a deterministic probe of exactly ``in_hw``
    (mode "L") and compares its bytes with two single-axis Pillow resizes in
    the predicted order (what the CPU and Triton paths compute). ``None``
    when they are equal, or when fewer than two passes run. Otherwise a
    reason naming the Pillow version, the sizes, and what Pillow did (the
    other order, or neither). For a release outside :data:`PASS_ORDER_RULES`
    the other order is checked too, and a probe on which both orders give
    the same bytes is a reason as well (nothing confirms the rule).

    Cached per (in_hw, out_hw, prediction, version) (``lru_cache`` of
    :data:`PROBE_CACHE_SIZE`): only a geometry's first frame pays.
    Cost of a first call, measured on the 2-core dev machine under load
    (median of 5; Pillow 13.0.0 and 12.3.0 alike): 4K (2160x3840) -> 312x312
    26 ms (up to ~55 ms seen under heavier load), portrait 4K -> 312x312 33 ms,
    4K -> 768x768 35-40 ms, 1080p -> 312x312 7-11 ms, 8K -> 312x312 ~100 ms;
    a cached call 3-4 us. Two Pillow resizes of the gray probe plus ~2 ms to
    make it (the other order is only computed when it is needed).

    >>> pass_order_mismatch((1920, 1080), (312, 312)) is None
    True
    >>> pass_order_mismatch((1080, 1920), (1080, 312)) is None  # one pass: nothing to check
    True
    """
    in_hw = (int(in_hw[0]), int(in_hw[1]))
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    if len(pass_sizes(in_hw, out_hw)) < 2:
        return None
    _, verified = pass_order_rule()
    return _probe_pass_order(in_hw, out_hw, vertical_first(in_hw, out_hw), verified, PIL.__version__)


# Elements one gather of resample_axis may materialise (int32: 8 MiB).
GATHER_ELEMENTS = 1 << 21


def resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One exact Pillow pass along ``axis`` (0: rows/vertical, 1: columns/horizontal).

    ``image``: uint8, shape (H, W) or (H, W, C). Returns a new uint8 array
    with ``image.shape[axis]`` replaced by ``out_size``. int32 arithmetic as
    in C: each output is ``2**21 + sum(pixel * coef)``; int32 addition wraps
    modulo 2**32 whatever the order, so summing blocks of taps at once gives
    Pillow's value (bilinear never comes near a wrap anyway); ``>> 22`` is an
    arithmetic shift like C's on int. Outputs and taps are processed in
    blocks of at most :data:`GATHER_ELEMENTS` gathered pixels, so extreme
    reductions (thousands of taps) cost a few numpy calls, not one per tap.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}")
    tables = coefficients(image.shape[axis], out_size)
    moved = np.moveaxis(image, axis, 0)
    rest = moved.shape[1:]
    rest_size = max(1, int(np.prod(rest)))
    taps = tables.max_taps
    tap_block = max(1, min(taps, GATHER_ELEMENTS // rest_size))
    row_block = max(1, GATHER_ELEMENTS // (tap_block * rest_size))
    expand = (1,) * len(rest)
    out = np.empty((out_size,) + rest, np.uint8)
    for r0 in range(0, out_size, row_block):
        r1 = min(r0 + row_block, out_size)
        acc = np.full((r1 - r0,) + rest, ROUNDING, dtype=np.int32)
        for k0 in range(0, taps, tap_block):
            k = np.arange(k0, min(k0 + tap_block, taps))
            index = np.minimum(tables.xmin[r0:r1, None] + k, tables.in_size - 1)  # coef is 0 past xsize
            coef = tables.coef[r0:r1, k0 : k0 + len(k)].reshape((r1 - r0, len(k)) + expand)
            acc += (moved[index].astype(np.int32) * coef).sum(axis=1, dtype=np.int32)
        out[r0:r1] = np.clip(acc >> PRECISION_BITS, 0, 255)
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
