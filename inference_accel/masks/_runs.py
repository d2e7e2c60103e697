"""Run-length arithmetic shared by the mask modules (internal).

Every mask here is a set of foreground *intervals* on a column-major pixel
stream, the order COCO and ``sv.CompactMask`` both use: pixel ``(x, y)`` of an
image of height ``H`` sits at stream position ``x * H + y``. A run list
(``[bg, fg, bg, fg, ...]``, first run background, zero-length runs allowed)
and a sorted list of half-open foreground intervals ``[start, stop)`` carry the
same information; these helpers convert between them and re-slice intervals
between a crop's stream and the full image's stream. Nothing here allocates
anything proportional to the image or crop area: work is O(runs + columns
crossed by a run).

>>> import numpy as np
>>> starts, stops = runs_to_intervals(np.array([1, 2, 3, 1]))
>>> starts.tolist(), stops.tolist()
([1, 6], [3, 7])
>>> intervals_to_runs(starts, stops, 8).tolist()
[1, 2, 3, 1, 1]
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from supervision import CompactMask

from inference_accel.errors import InvalidMaskError

IntArray = npt.NDArray[np.int64]

#: Largest image side: CompactMask keeps offsets and crop shapes in int32.
MAX_SIDE = 2**31 - 1
#: Largest run a count may hold once decoded. Any h*w (sides <= MAX_SIDE) is
#: below it, and running sums of counts in [0, MAX_COUNT] are checked before
#: they could reach 2**63, so int64 arithmetic on validated counts never wraps.
MAX_COUNT = 2**62


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool or a float) >= ``minimum``.

    >>> check_int("threads", 2)
    2
    >>> check_int("threads", 1.5)
    Traceback (most recent call last):
    ...
    inference_accel.errors.InvalidMaskError: threads must be an int >= 1, got 1.5 (float)
    """
    if not _is_int(value) or int(value) < minimum:
        raise InvalidMaskError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    return int(value)


def check_iou_threshold(value: Any, name: str = "iou_threshold") -> float:
    """``value`` as a float if it is a real number in [0, 1] (bool, NaN, strings, None refused).

    >>> check_iou_threshold(1)
    1.0
    """
    from inference_accel.arguments import check_threshold
    from inference_accel.errors import InvalidArgumentError

    try:
        return check_threshold(value, name)
    except InvalidArgumentError as exc:
        raise InvalidMaskError(str(exc)) from None


def check_hw(value: Any, name: str = "image_shape", minimum: int = 1) -> tuple[int, int]:
    """An ``(h, w)`` pair of integers in [``minimum``, 2**31 - 1]; floats, bools and strings refused.

    >>> check_hw([480, 640])
    (480, 640)
    >>> check_hw((3.7, 3), "COCO RLE size")
    Traceback (most recent call last):
    ...
    inference_accel.errors.InvalidMaskError: COCO RLE size must be [h, w], two positive ints (at most 2**31 - 1), got (3.7, 3)
    """
    try:
        pair = tuple(value) if not isinstance(value, (str, bytes, Mapping)) else ()
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(_is_int(v) and minimum <= int(v) <= MAX_SIDE for v in pair):
        kind = "positive ints" if minimum == 1 else f"ints >= {minimum}"
        raise InvalidMaskError(f"{name} must be [h, w], two {kind} (at most 2**31 - 1), got {value!r}")
    return int(pair[0]), int(pair[1])


def check_run_counts(counts: IntArray, total: int, what: str = "RLE", exact: bool = True) -> IntArray:
    """``counts`` if every run is in [0, ``total``] and they sum to ``total`` (at most ``total`` if not ``exact``).

    Overflow-safe: each count is checked before any sum is taken, and the
    running sum is checked to never decrease (with counts in [0, 2**62] a
    wrap of int64 would make it drop), so a crafted RLE whose int64 sum
    wraps to exactly h*w is refused instead of decoding to a wrong mask.

    >>> check_run_counts(np.array([4, 1, 4]), 9).tolist()
    [4, 1, 4]
    """
    _checked_ends(counts, total, what, exact)
    return counts


def _checked_ends(counts: IntArray, total: int | None, what: str = "RLE", exact: bool = True) -> IntArray:
    """Running sums of validated ``counts`` (see :func:`check_run_counts`); ``total=None``: only no wrap."""
    limit = MAX_COUNT if total is None else total
    if limit > MAX_COUNT:
        raise InvalidMaskError(f"{what} covers {limit} pixels, more than {MAX_COUNT}")
    if counts.size:
        low, high = int(counts.min()), int(counts.max())
        if low < 0:
            raise InvalidMaskError(f"{what} has a negative run ({low}); runs must be >= 0")
        if high > limit:
            bound = f"h*w = {limit}" if total is not None else str(limit)
            raise InvalidMaskError(f"{what} has a run of {high} pixels, more than {bound}")
    ends = np.cumsum(counts)
    wrapped = ends.size > 1 and bool((ends[1:] < ends[:-1]).any())
    summed = sum(counts.tolist()) if wrapped else (int(ends[-1]) if ends.size else 0)
    if total is None:
        if wrapped:
            raise InvalidMaskError(f"{what} counts sum to {summed}, past 2**63")
    elif summed > total or (exact and summed != total):
        expected = f"expected h*w = {total}" if exact else f"but the mask has only {total}"
        raise InvalidMaskError(f"{what} counts sum to {summed}, {expected}")
    return ends


def runs_to_intervals(
    runs: npt.ArrayLike, total: int | None = None
) -> tuple[IntArray, IntArray]:
    """Foreground intervals ``[start, stop)`` of a run list, empty ones dropped.

    Runs alternate background/foreground starting with background. With
    ``total`` given, the runs must not cover more than ``total`` pixels (any
    shortfall is trailing background, as supervision's decoder treats it).

    Raises:
        InvalidMaskError: a negative run, or runs longer than ``total`` (or
            past 2**62 without it; the sums are checked, never wrapped).

    >>> [a.tolist() for a in runs_to_intervals([0, 2, 0, 0, 3, 1])]
    [[0, 5], [2, 6]]
    """
    counts = np.asarray(runs, dtype=np.int64).ravel()
    ends = _checked_ends(counts, total, exact=False)
    starts = ends[:-1:2]
    stops = ends[1::2]
    keep = stops > starts
    return starts[keep], stops[keep]


def merge_touching(starts: IntArray, stops: IntArray) -> tuple[IntArray, IntArray]:
    """Merge sorted, disjoint intervals where one ends exactly where the next starts.

    >>> [a.tolist() for a in merge_touching(np.array([0, 3, 7]), np.array([3, 5, 8]))]
    [[0, 7], [5, 8]]
    """
    if starts.size < 2:
        return starts, stops
    joint = stops[:-1] == starts[1:]
    if not joint.any():
        return starts, stops
    first = np.concatenate(([True], ~joint))
    last = np.concatenate((~joint, [True]))
    return starts[first], stops[last]


def intervals_to_runs(starts: IntArray, stops: IntArray, total: int) -> npt.NDArray:
    """Run list (int64, background first) of sorted disjoint non-touching intervals.

    >>> intervals_to_runs(np.array([0]), np.array([4]), 4).tolist()
    [0, 4]
    >>> intervals_to_runs(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 4).tolist()
    [4]
    """
    k = starts.size
    runs = np.empty(2 * k + 1, dtype=np.int64)
    if k == 0:
        runs[0] = total
        return runs
    runs[0] = starts[0]
    runs[1:-1:2] = stops - starts
    runs[2:-1:2] = starts[1:] - stops[:-1]
    runs[-1] = total - stops[-1]
    if runs[-1] == 0:
        runs = runs[:-1]
    return runs


def split_columns(
    starts: IntArray, stops: IntArray, height: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Split stream intervals of a column-major canvas of ``height`` rows at columns.

    Returns ``(x, y0, y1)``: one half-open row span ``[y0, y1)`` per column an
    interval touches, in stream order.

    >>> [a.tolist() for a in split_columns(np.array([1]), np.array([5]), 3)]
    [[0, 1], [1, 0], [3, 2]]
    """
    if starts.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    first = starts // height
    last = (stops - 1) // height
    n_cols = last - first + 1
    if int(n_cols.max()) == 1:
        x = first
        return x, starts - x * height, stops - x * height
    idx = np.repeat(np.arange(starts.size), n_cols)
    within = np.arange(idx.size) - np.repeat(np.cumsum(n_cols) - n_cols, n_cols)
    x = first[idx] + within
    origin = x * height
    y0 = np.maximum(starts[idx] - origin, 0)
    y1 = np.minimum(stops[idx] - origin, height)
    return x, y0, y1


def check_compact(masks: object, name: str = "masks") -> CompactMask:
    """Return ``masks`` if it is an ``sv.CompactMask``, else raise a clear error."""
    if not isinstance(masks, CompactMask):
        raise InvalidMaskError(
            f"{name} must be a supervision CompactMask, got {type(masks).__name__}"
        )
    return masks


def crop_columns(
    masks: CompactMask, index: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Foreground column spans ``(x, y0, y1)`` of one CompactMask, image coordinates.

    >>> import supervision as sv
    >>> cm = sv.CompactMask([np.array([1, 2, 2, 1], np.int32)],
    ...     np.array([[3, 2]], np.int32), np.array([[10, 20]], np.int32), (40, 40))
    >>> [a.tolist() for a in crop_columns(cm, 0)]
    [[10, 11], [21, 22], [23, 23]]
    """
    crop_h = int(masks._crop_shapes[index, 0])
    crop_w = int(masks._crop_shapes[index, 1])
    starts, stops = runs_to_intervals(masks._rles[index], crop_h * crop_w)
    x, y0, y1 = split_columns(starts, stops, crop_h)
    ox = int(masks._offsets[index, 0])
    oy = int(masks._offsets[index, 1])
    return x + ox, y0 + oy, y1 + oy


def stream_intervals(masks: CompactMask, index: int) -> tuple[IntArray, IntArray]:
    """Foreground intervals of one CompactMask on the full image's column-major stream.

    >>> import supervision as sv
    >>> cm = sv.CompactMask([np.array([1, 2, 2, 1], np.int32)],
    ...     np.array([[3, 2]], np.int32), np.array([[1, 1]], np.int32), (4, 4))
    >>> [a.tolist() for a in stream_intervals(cm, 0)]
    [[6, 11], [8, 12]]
    """
    height = int(masks._image_shape[0])
    x, y0, y1 = crop_columns(masks, index)
    base = x * height
    return merge_touching(base + y0, base + y1)


def columns_to_tight_crop(
    x: IntArray, y0: IntArray, y1: IntArray
) -> tuple[npt.NDArray[np.int32], tuple[int, int], tuple[int, int]]:
    """Tight crop RLE of column spans: ``(runs int32, (crop_h, crop_w), (x1, y1))``.

    Spans must be in stream order (by column, then row) and non-overlapping.
    An empty set gives supervision's canonical empty mask: a 1x1 background
    crop at the origin.

    >>> runs, shape, offset = columns_to_tight_crop(
    ...     np.array([5, 6]), np.array([2, 3]), np.array([4, 4]))
    >>> runs.tolist(), shape, offset
    ([0, 2, 1, 1], (2, 2), (5, 2))
    """
    if x.size == 0:
        return np.array([1], dtype=np.int32), (1, 1), (0, 0)
    ox = int(x[0])
    oy = int(y0.min())
    crop_h = int(y1.max()) - oy
    crop_w = int(x[-1]) - ox + 1
    base = (x - ox) * crop_h - oy
    starts, stops = merge_touching(base + y0, base + y1)
    runs = intervals_to_runs(starts, stops, crop_h * crop_w)
    return runs.astype(np.int32), (crop_h, crop_w), (ox, oy)


def stream_to_tight_crop(
    starts: IntArray, stops: IntArray, height: int
) -> tuple[npt.NDArray[np.int32], tuple[int, int], tuple[int, int]]:
    """Tight crop RLE of foreground intervals on a full image stream of ``height`` rows.

    >>> runs, shape, offset = stream_to_tight_crop(np.array([6]), np.array([8]), 4)
    >>> runs.tolist(), shape, offset
    ([0, 2], (2, 1), (1, 2))
    """
    return columns_to_tight_crop(*split_columns(starts, stops, height))


def build_compact(
    parts: list[tuple[npt.NDArray[np.int32], tuple[int, int], tuple[int, int]]],
    image_shape: tuple[int, int],
) -> CompactMask:
    """Assemble a CompactMask from ``(runs, (crop_h, crop_w), (x1, y1))`` parts."""
    n = len(parts)
    shapes = np.array([p[1] for p in parts], dtype=np.int32).reshape(n, 2)
    offsets = np.array([p[2] for p in parts], dtype=np.int32).reshape(n, 2)
    return CompactMask(
        [p[0] for p in parts], shapes, offsets, (int(image_shape[0]), int(image_shape[1]))
    )
