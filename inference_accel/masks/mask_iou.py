"""Sparse IoU between two CompactMask sets, from the runs of overlapping crops.

1. Box pre-filter: only pairs whose crop boxes intersect are candidates
   (:func:`~inference_accel.masks.box_iou.overlapping_pairs`, no N x M matrix).
2. Every mask becomes its foreground intervals on the full image's
   column-major stream (O(runs)). For the second set, the intervals of mask
   ``j`` are shifted by ``j * H * W`` and concatenated into one sorted array
   with a running pixel count, so "how many foreground pixels of mask ``j``
   lie before stream position ``p``" is one binary search: ``F_j(p)``.
3. The intersection of pair ``(i, j)`` is ``sum(F_j(stop) - F_j(start))`` over
   the intervals of mask ``i``, vectorised over all candidate pairs in chunks.
   Areas are sums of foreground runs.

The ratio is then formed exactly as ``sv.mask_iou_batch`` does on dense masks:
counts in float32 when ``H * W <= 2**24`` (float64 above), ``union = (area_a +
area_b) - inter`` in that dtype, the quotient in that dtype, returned as
float64. Values are therefore bit-identical to the dense result. Pairs with no
common pixel (IoU 0) are absent.

>>> import numpy as np, supervision as sv
>>> d = np.zeros((2, 8, 8), bool); d[0, :4, :4] = True; d[1, 2:6, 2:6] = True
>>> a = sv.CompactMask.from_dense(d[:1], np.array([[0, 0, 3, 3]]), (8, 8))
>>> b = sv.CompactMask.from_dense(d, np.array([[0, 0, 3, 3], [2, 2, 5, 5]]), (8, 8))
>>> rows, cols, ious = mask_iou_sparse(a, b)
>>> rows.tolist(), cols.tolist(), ious.round(4).tolist()
([0, 0], [0, 1], [1.0, 0.1429])
>>> sv.mask_iou_batch(d[:1], d).round(4).tolist()
[[1.0, 0.1429]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse
from supervision import CompactMask

from inference_accel.errors import InvalidMaskError
from inference_accel.masks._runs import check_compact, check_int, stream_intervals
from inference_accel.masks.box_iou import CHUNK, _expand, overlapping_pairs

__all__ = ["crop_boxes", "mask_areas", "mask_intersections", "mask_iou_matrix", "mask_iou_sparse"]


def crop_boxes(masks: CompactMask) -> npt.NDArray[np.float64]:
    """Half-open crop boxes ``(x1, y1, x1 + w, y1 + h)`` of every mask, float64.

    >>> import numpy as np, supervision as sv
    >>> cm = sv.CompactMask([np.array([0, 6], np.int32)], np.array([[2, 3]], np.int32),
    ...     np.array([[4, 1]], np.int32), (9, 9))
    >>> crop_boxes(cm).tolist()
    [[4.0, 1.0, 7.0, 3.0]]
    """
    off = np.asarray(masks._offsets, dtype=np.float64).reshape(-1, 2)
    shp = np.asarray(masks._crop_shapes, dtype=np.float64).reshape(-1, 2)
    return np.column_stack((off[:, 0], off[:, 1], off[:, 0] + shp[:, 1], off[:, 1] + shp[:, 0]))


def mask_areas(masks: CompactMask) -> npt.NDArray[np.int64]:
    """Foreground pixel count of every mask, from the runs.

    >>> import numpy as np, supervision as sv
    >>> mask_areas(sv.CompactMask([np.array([1, 2, 3], np.int32)],
    ...     np.array([[2, 3]], np.int32), np.array([[0, 0]], np.int32), (4, 4))).tolist()
    [2]
    """
    return np.array([int(np.asarray(r, dtype=np.int64)[1::2].sum()) for r in masks._rles], dtype=np.int64)


def _stacked(masks: CompactMask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated stream intervals of all masks and per-mask pointers."""
    parts = [stream_intervals(masks, i) for i in range(len(masks))]
    sizes = np.array([p[0].size for p in parts], dtype=np.int64)
    ptr = np.concatenate(([0], np.cumsum(sizes)))
    if ptr[-1] == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), ptr
    starts = np.concatenate([p[0] for p in parts])
    stops = np.concatenate([p[1] for p in parts])
    return starts, stops, ptr


def _check_pair(masks_a: CompactMask, masks_b: CompactMask) -> tuple[int, int]:
    check_compact(masks_a, "masks_a")
    check_compact(masks_b, "masks_b")
    shape_a = tuple(int(v) for v in masks_a.image_shape)
    shape_b = tuple(int(v) for v in masks_b.image_shape)
    if shape_a != shape_b:
        raise InvalidMaskError(
            f"mask sets have different image sizes: {shape_a} vs {shape_b} (h, w)"
        )
    return shape_a  # type: ignore[return-value]


def mask_intersections(
    masks_a: CompactMask, masks_b: CompactMask, chunk: int = CHUNK
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """COO ``(rows, cols, pixels)`` of every pair sharing at least one pixel, sorted.

    >>> import numpy as np, supervision as sv
    >>> cm = sv.CompactMask.from_dense(np.ones((1, 3, 3), bool), np.array([[0, 0, 2, 2]]), (3, 3))
    >>> [x.tolist() for x in mask_intersections(cm, cm)]
    [[0], [0], [9]]
    """
    chunk = check_int("chunk", chunk)
    h, w = _check_pair(masks_a, masks_b)
    hw = h * w
    rows, cols = overlapping_pairs(crop_boxes(masks_a), crop_boxes(masks_b))
    empty = np.empty(0, dtype=np.int64)
    if rows.size == 0:
        return empty, empty.copy(), empty.copy()
    a_starts, a_stops, a_ptr = _stacked(masks_a)
    b_starts, b_stops, b_ptr = _stacked(masks_b)
    if a_starts.size == 0 or b_starts.size == 0:
        return empty, empty.copy(), empty.copy()
    # Second set on one global stream: mask j's intervals shifted by j * H * W.
    owner_b = np.repeat(np.arange(len(masks_b), dtype=np.int64), np.diff(b_ptr))
    g_starts = b_starts + owner_b * hw
    g_len = b_stops - b_starts
    g_before = np.cumsum(g_len) - g_len

    def covered(p: np.ndarray) -> np.ndarray:
        """Foreground pixels of the global second-set stream before position ``p``."""
        k = np.searchsorted(g_starts, p, side="right") - 1
        kc = np.maximum(k, 0)
        value = g_before[kc] + np.minimum(p - g_starts[kc], g_len[kc])
        return np.where(k >= 0, value, 0)

    inter = np.zeros(rows.size, dtype=np.int64)
    lo, hi = a_ptr[rows], a_ptr[rows + 1]
    for pair, pos in _expand(lo, hi, chunk):
        shift = cols[pair] * hw
        contrib = covered(a_stops[pos] + shift) - covered(a_starts[pos] + shift)
        inter += np.bincount(pair, weights=contrib, minlength=rows.size).astype(np.int64)
    keep = inter > 0
    return rows[keep], cols[keep], inter[keep]


def mask_iou_sparse(
    masks_a: CompactMask, masks_b: CompactMask, metric: str = "iou"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """COO ``(rows, cols, values)`` of mask IoU (or IoS), equal to ``sv.mask_iou_batch``.

    Raises:
        InvalidMaskError: the sets have different image sizes, or an unknown metric.

    >>> import numpy as np, supervision as sv
    >>> e = sv.CompactMask([], np.empty((0, 2), np.int32), np.empty((0, 2), np.int32), (4, 4))
    >>> [x.size for x in mask_iou_sparse(e, e)]
    [0, 0, 0]
    """
    if metric not in ("iou", "ios"):
        raise InvalidMaskError(f"metric must be 'iou' or 'ios', got {metric!r}")
    h, w = _check_pair(masks_a, masks_b)
    rows, cols, inter = mask_intersections(masks_a, masks_b)
    dtype = np.float32 if h * w <= 2**24 else np.float64
    area_a = mask_areas(masks_a).astype(dtype)[rows]
    area_b = mask_areas(masks_b).astype(dtype)[cols]
    inter_f = inter.astype(dtype)
    norm = (area_a + area_b) - inter_f if metric == "iou" else np.minimum(area_a, area_b)
    values = np.zeros(rows.size, dtype=dtype)
    np.divide(inter_f, norm, out=values, where=norm != 0)
    return rows, cols, values.astype(np.float64)


def mask_iou_matrix(
    masks_a: CompactMask, masks_b: CompactMask, metric: str = "iou"
) -> scipy.sparse.csr_array:
    """Sparse (N, M) mask IoU as a ``scipy.sparse.csr_array`` (float64)."""
    rows, cols, vals = mask_iou_sparse(masks_a, masks_b, metric)
    return scipy.sparse.csr_array((vals, (rows, cols)), shape=(len(masks_a), len(masks_b)))
