"""Sparse N x M box IoU: a sweep along x finds the overlapping pairs, never the matrix.

Dense IoU builds several (N, M) float64 matrices although, for boxes spread
over a large tile, almost every entry is 0. Here boxes of one set are sorted by
``x1`` and every pair that overlaps along x is found with two binary searches
per box:

- pairs where ``a.x1 <= b.x1 < a.x2``: a contiguous range of the sorted ``b``;
- pairs where ``b.x1 < a.x1 < b.x2``: a contiguous range of the sorted ``a``.

The two sets are disjoint and together hold every pair whose x-intervals
overlap, so the candidates number exactly the x-overlapping pairs (no
max-width blow-up). Candidates are produced in chunks of bounded size, the
y-overlap is checked, and the IoU of the survivors is computed with
supervision's ``box_iou_batch`` formula in float64 (corners upcast, ``inter =
clip(min(x2) - max(x1), 0) * clip(min(y2) - max(y1), 0)``, ``union = area_a +
area_b - inter``). Entries are therefore bit-identical to the dense float64
matrix; ``sv.box_iou_batch`` returns that matrix cast to float32.

Pairs with zero intersection area (IoU 0) are absent. Boxes are
``(x1, y1, x2, y2)`` with area ``(x2 - x1) * (y2 - y1)`` as in supervision.

>>> import numpy as np
>>> a = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
>>> b = np.array([[5, 5, 15, 15], [200, 0, 210, 10], [0, 0, 10, 10]])
>>> rows, cols, ious = box_iou_sparse(a, b)
>>> rows.tolist(), cols.tolist(), ious.round(4).tolist()
([0, 0], [0, 2], [0.1429, 1.0])
>>> box_iou_matrix(a, b).toarray().round(4).tolist()
[[0.1429, 0.0, 1.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import scipy.sparse

from inference_accel.errors import InvalidMaskError
from inference_accel.masks._runs import check_int

__all__ = ["as_boxes", "box_iou_matrix", "box_iou_sparse", "overlapping_pairs", "pair_overlap"]

#: Candidate pairs examined at once; bounds the sweep's working memory
#: (about 100 bytes per candidate).
CHUNK = 1 << 17


def as_boxes(boxes: npt.ArrayLike, name: str = "boxes") -> npt.NDArray[np.float64]:
    """Validated (N, 4) float64 copy of ``boxes``; an empty input gives (0, 4).

    Raises:
        InvalidMaskError: wrong shape, non-finite values, or ``x2 < x1`` /
            ``y2 < y1`` ("boxes out of order").

    >>> as_boxes([[0, 0, 2, 3]]).tolist()
    [[0.0, 0.0, 2.0, 3.0]]
    """
    arr = np.asarray(boxes)
    if arr.size == 0:
        return np.empty((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InvalidMaskError(f"{name} must have shape (N, 4), got {arr.shape}")
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidMaskError(f"{name} must be real numbers, got {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        raise InvalidMaskError(f"{name} contain NaN or infinite coordinates")
    bad = (out[:, 2] < out[:, 0]) | (out[:, 3] < out[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidMaskError(
            f"{name} out of order: box {i} is {out[i].tolist()}, need x1 <= x2 and y1 <= y2"
        )
    return out


def _expand(lo: np.ndarray, hi: np.ndarray, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(owner, position)`` for every ``position in range(lo[i], hi[i])``, in chunks."""
    counts = hi - lo
    cum = np.cumsum(counts)
    total = int(cum[-1]) if cum.size else 0
    begin = 0
    while begin < lo.size and total:
        done = int(cum[begin - 1]) if begin else 0
        end = int(np.searchsorted(cum, done + chunk, side="right"))
        end = max(end, begin + 1)
        c = counts[begin:end]
        n = int(c.sum())
        if n:
            owner = np.repeat(np.arange(begin, end), c)
            first = np.cumsum(c) - c
            position = np.arange(n) - np.repeat(first - lo[begin:end], c)
            yield owner, position
        begin = end


def _y_overlap(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Mask of candidate pairs with positive intersection width and height."""
    w = np.minimum(a[ia, 2], b[ib, 2]) - np.maximum(a[ia, 0], b[ib, 0])
    h = np.minimum(a[ia, 3], b[ib, 3]) - np.maximum(a[ia, 1], b[ib, 1])
    return (w > 0) & (h > 0)


def overlapping_pairs(
    boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike, chunk: int = CHUNK
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs ``(i, j)`` whose boxes intersect with positive area, sorted by (i, j).

    >>> [x.tolist() for x in overlapping_pairs([[0, 0, 2, 2]], [[1, 1, 3, 3], [2, 0, 4, 2]])]
    [[0], [0]]
    """
    chunk = check_int("chunk", chunk)
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    rows_parts, cols_parts = [], []
    if len(a) and len(b):
        order_b = np.argsort(b[:, 0], kind="stable")
        bx1 = b[order_b, 0]
        lo = np.searchsorted(bx1, a[:, 0], side="left")
        hi = np.searchsorted(bx1, a[:, 2], side="left")
        for ia, pos in _expand(lo, hi, chunk):
            ib = order_b[pos]
            keep = _y_overlap(a, b, ia, ib)
            rows_parts.append(ia[keep])
            cols_parts.append(ib[keep])
        order_a = np.argsort(a[:, 0], kind="stable")
        ax1 = a[order_a, 0]
        lo = np.searchsorted(ax1, b[:, 0], side="right")
        hi = np.maximum(np.searchsorted(ax1, b[:, 2], side="left"), lo)  # zero-width b
        for ib, pos in _expand(lo, hi, chunk):
            ia = order_a[pos]
            keep = _y_overlap(a, b, ia, ib)
            rows_parts.append(ia[keep])
            cols_parts.append(ib[keep])
    if not rows_parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    rows = np.concatenate(rows_parts).astype(np.int64)
    cols = np.concatenate(cols_parts).astype(np.int64)
    order = np.lexsort((cols, rows))
    return rows[order], cols[order]


def pair_overlap(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    metric: str = "iou",
) -> npt.NDArray[np.float64]:
    """IoU (or IoS) of the listed pairs, supervision's float64 formula, element by element.

    >>> a = np.array([[0., 0, 4, 4]]); b = np.array([[2., 2, 6, 6]])
    >>> pair_overlap(a, b, np.array([0]), np.array([0])).tolist(), pair_overlap(
    ...     a, b, np.array([0]), np.array([0]), 'ios').tolist()
    ([0.14285714285714285], [0.25])
    """
    if metric not in ("iou", "ios"):
        raise InvalidMaskError(f"metric must be 'iou' or 'ios', got {metric!r}")
    aa, bb = a[rows], b[cols]
    inter_w = np.clip(np.minimum(aa[:, 2], bb[:, 2]) - np.maximum(aa[:, 0], bb[:, 0]), 0.0, None)
    inter_h = np.clip(np.minimum(aa[:, 3], bb[:, 3]) - np.maximum(aa[:, 1], bb[:, 1]), 0.0, None)
    inter = inter_w * inter_h
    area_a = (aa[:, 2] - aa[:, 0]) * (aa[:, 3] - aa[:, 1])
    area_b = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    norm = area_a + area_b - inter if metric == "iou" else np.minimum(area_a, area_b)
    out = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, norm, out=out, where=norm > 0)
    return out


def box_iou_sparse(
    boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike, metric: str = "iou", chunk: int = CHUNK
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """COO ``(rows, cols, values)`` of the pairs with positive intersection, sorted.

    ``values`` equal the dense float64 IoU (or IoS) matrix at those entries;
    every absent pair has IoU 0.

    >>> box_iou_sparse(np.empty((0, 4)), [[0, 0, 1, 1]])[2].shape
    (0,)
    """
    chunk = check_int("chunk", chunk)
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    rows, cols = overlapping_pairs(a, b, chunk)
    return rows, cols, pair_overlap(a, b, rows, cols, metric)


def box_iou_matrix(
    boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike, metric: str = "iou"
) -> scipy.sparse.csr_array:
    """The sparse (N, M) IoU matrix as a ``scipy.sparse.csr_array`` (float64).

    >>> box_iou_matrix([[0, 0, 1, 1]], [[0, 0, 1, 1]]).toarray().tolist()
    [[1.0]]
    """
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    rows, cols, vals = box_iou_sparse(a, b, metric)
    return scipy.sparse.csr_array((vals, (rows, cols)), shape=(len(a), len(b)))
