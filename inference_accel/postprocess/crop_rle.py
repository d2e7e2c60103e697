"""Crop-scoped column-major runs and the ``sv.CompactMask`` built from them.

Both sparse executors (CPU and Triton) end with the same data: for each mask,
a set of foreground *column intervals* ``(x, y_start, y_stop)`` in frame
pixels, sorted by ``x`` then ``y_start``. This module turns them into what
``sv.CompactMask`` stores (supervision 0.31 convention, read from its
``_mask_to_rle_counts``):

- the crop is the tight bounding box of the foreground, ``(h, w)``, with
  offset ``(x1, y1)``;
- the runs are int32 lengths over the crop scanned column by column
  (Fortran / COCO order), starting with a background run (0 when the first
  crop pixel is foreground) and covering the whole crop, so the last run is
  the trailing background when there is one;
- adjacent intervals (the bottom of one column touching the top of the next
  in the crop's stream) merge into one run, exactly as supervision's encoder
  produces them.

An empty mask is stored as supervision stores a degenerate box: a ``1 x 1``
all-background crop (runs ``[1]``) at offset ``(0, 0)``.

>>> import numpy as np
>>> runs, shape, offset = intervals_to_crop_runs(np.array([3, 3, 4]), np.array([5, 7, 5]), np.array([6, 8, 8]))
>>> runs.tolist(), shape, offset
([0, 1, 1, 4], (3, 2), (3, 5))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt
import supervision as sv

EMPTY_RUNS = np.array([1], dtype=np.int32)
EMPTY_SHAPE = (1, 1)
EMPTY_OFFSET = (0, 0)

CropRuns = tuple[npt.NDArray[np.int32], tuple[int, int], tuple[int, int]]


def intervals_to_crop_runs(
    x: npt.ArrayLike, y_start: npt.ArrayLike, y_stop: npt.ArrayLike
) -> CropRuns | None:
    """Foreground column intervals of one mask -> (runs, (h, w), (x1, y1)).

    ``x``, ``y_start``, ``y_stop``: equal-length integer arrays, sorted by
    ``(x, y_start)``, intervals non-overlapping and non-empty. Returns None
    when there is no interval (empty mask).
    """
    x = np.asarray(x, dtype=np.int64)
    if x.size == 0:
        return None
    y_start = np.asarray(y_start, dtype=np.int64)
    y_stop = np.asarray(y_stop, dtype=np.int64)
    x1, x2 = int(x[0]), int(x[-1])
    y1, y2 = int(y_start.min()), int(y_stop.max())
    h, w = y2 - y1, x2 - x1 + 1
    base = (x - x1) * h - y1
    starts = base + y_start
    stops = base + y_stop
    return _runs_from_stream(starts, stops, h * w), (h, w), (x1, y1)


def intervals_to_coco_counts(
    x: npt.ArrayLike, y_start: npt.ArrayLike, y_stop: npt.ArrayLike, canvas_hw: tuple[int, int]
) -> npt.NDArray[np.int64]:
    """Foreground column intervals of one mask -> uncompressed COCO counts over the whole canvas.

    Column-major, starting with the leading background run (0 when the
    first pixel is set), no trailing zero-length run: what
    ``pycocotools.mask.frPyObjects`` takes. Intervals sorted by ``(x,
    y_start)``; a run ending a canvas column and one starting the next are
    one run, as in a dense encoding.

    >>> intervals_to_coco_counts(np.array([1, 2]), np.array([2, 0]), np.array([4, 1]), (4, 3)).tolist()
    [6, 3, 3]
    >>> intervals_to_coco_counts(np.array([], int), np.array([], int), np.array([], int), (2, 2)).tolist()
    [4]
    """
    height, width = int(canvas_hw[0]), int(canvas_hw[1])
    x = np.asarray(x, dtype=np.int64)
    if x.size == 0:
        return np.array([height * width], dtype=np.int64)
    base = x * height
    return _runs_from_stream(
        base + np.asarray(y_start, dtype=np.int64), base + np.asarray(y_stop, dtype=np.int64), height * width
    ).astype(np.int64)


def _runs_from_stream(starts: np.ndarray, stops: np.ndarray, total: int) -> npt.NDArray[np.int32]:
    """Sorted half-open foreground intervals on a stream of ``total`` pixels -> runs."""
    if starts.size > 1:
        cut = starts[1:] != stops[:-1]  # a gap between consecutive intervals
        starts = starts[np.concatenate(([True], cut))]
        stops = stops[np.concatenate((cut, [True]))]
    n = starts.size
    runs = np.empty(2 * n + 1, dtype=np.int64)
    runs[0] = starts[0]
    runs[1::2] = stops - starts
    runs[2:-1:2] = starts[1:] - stops[:-1]
    runs[-1] = total - stops[-1]
    if runs[-1] == 0:
        runs = runs[:-1]
    return runs.astype(np.int32)


def encode_dense_crop(mask: npt.NDArray[np.bool_], y0: int = 0, x0: int = 0) -> CropRuns | None:
    """A small dense boolean array -> tight crop runs; (y0, x0) is its frame origin.

    Used where a region was evaluated densely (tiny outputs); work is
    proportional to the array area.
    """
    mask = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    r1, r2, c1, c2 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    flat = np.ascontiguousarray(mask[r1:r2, c1:c2].T).reshape(-1).view(np.uint8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    starts = bounds[:-1][flat[bounds[:-1]] == 1]
    stops = bounds[1:][flat[bounds[:-1]] == 1]
    runs = _runs_from_stream(starts.astype(np.int64), stops.astype(np.int64), flat.size)
    return runs, (r2 - r1, c2 - c1), (c1 + x0, r1 + y0)


def build_compact_mask(crops: Sequence[CropRuns | None], image_shape: tuple[int, int]) -> sv.CompactMask:
    """``sv.CompactMask`` from per-mask crop runs (None: empty mask)."""
    rles, shapes, offsets = [], [], []
    for crop in crops:
        if crop is None:
            crop = (EMPTY_RUNS.copy(), EMPTY_SHAPE, EMPTY_OFFSET)
        runs, shape, offset = crop
        rles.append(np.asarray(runs, dtype=np.int32))
        shapes.append(shape)
        offsets.append(offset)
    n = len(rles)
    return sv.CompactMask(
        rles,
        np.asarray(shapes, dtype=np.int32).reshape(n, 2),
        np.asarray(offsets, dtype=np.int32).reshape(n, 2),
        (int(image_shape[0]), int(image_shape[1])),
    )
