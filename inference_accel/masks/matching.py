"""One-to-one IoU matching, Hungarian per connected component of the overlap graph.

**Definition** (the dense reference the sparse solver reproduces). Let ``IoU``
be the full (N, M) float64 IoU matrix and ``t`` the threshold.

- ``prefilter=True`` (default): ``W = where((IoU >= t) & (IoU > 0), IoU, 0)``;
  ``r, c = scipy.optimize.linear_sum_assignment(W, maximize=True)``; the
  matches are the pairs with ``W[r, c] > 0``. Only pairs that may count as a
  match compete for the assignment.
- ``prefilter=False`` (DeepForest-style): ``linear_sum_assignment(IoU,
  maximize=True)`` on the unthresholded matrix, then the pairs with ``IoU >= t``
  (and ``> 0``) are kept.

**Sparse solver.** The edges are the pairs with positive weight (from the
sparse IoU, which lists every pair with IoU > 0). The best total weight splits
over the connected components of this bipartite graph
(``scipy.sparse.csgraph.connected_components``): an assignment can only gain
weight on edges, and edges never cross components, so solving each component
on its own small dense sub-matrix gives an optimal dense assignment. A
component with one edge is matched directly; larger ones go to
``linear_sum_assignment`` (maximize) on their sub-matrix. No N x M array is
built.

**Ties.** When a component has two different assignments of equal total weight,
the dense and the per-component solvers may pick different (equally optimal)
ones. The result is identical whenever the optimum is unique, which holds
almost surely for real-valued boxes; the tests use such inputs.

>>> import numpy as np
>>> gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
>>> pred = np.array([[1, 0, 11, 10], [21, 0, 31, 10], [500, 500, 510, 510]])
>>> m = match_boxes(gt, pred, iou_threshold=0.5)
>>> m.rows.tolist(), m.cols.tolist(), m.ious.round(3).tolist()
([0, 1], [0, 1], [0.818, 0.818])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from supervision import CompactMask

from inference_accel.errors import InvalidMaskError
from inference_accel.masks._runs import check_int, check_iou_threshold
from inference_accel.masks.box_iou import as_boxes, box_iou_sparse
from inference_accel.masks.mask_iou import mask_iou_sparse

__all__ = ["Matches", "match_boxes", "match_masks", "match_sparse"]


class Matches(NamedTuple):
    """Matched pairs sorted by ``rows``: ``rows[k]`` (truth) matches ``cols[k]`` (prediction)."""

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    ious: npt.NDArray[np.float64]


def match_sparse(
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    ious: npt.ArrayLike,
    shape: tuple[int, int],
    iou_threshold: float = 0.5,
    prefilter: bool = True,
) -> Matches:
    """Match from a sparse IoU listing every pair with IoU > 0 (COO, no duplicates).

    >>> m = match_sparse([0, 0, 1], [0, 1, 0], [0.9, 0.8, 0.85], (2, 2), 0.5)
    >>> m.rows.tolist(), m.cols.tolist()
    ([0, 1], [1, 0])
    """
    iou_threshold = check_iou_threshold(iou_threshold)
    try:
        pair = tuple(shape) if not isinstance(shape, (str, bytes)) else ()
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise InvalidMaskError(f"shape must be (n, m), two ints >= 0, got {shape!r}")
    n, m = check_int("shape[0]", pair[0], minimum=0), check_int("shape[1]", pair[1], minimum=0)
    r = np.asarray(rows, dtype=np.int64).ravel()
    c = np.asarray(cols, dtype=np.int64).ravel()
    v = np.asarray(ious, dtype=np.float64).ravel()
    if not (r.size == c.size == v.size):
        raise InvalidMaskError("rows, cols and ious must have the same length")
    if r.size and (r.min() < 0 or r.max() >= n or c.min() < 0 or c.max() >= m):
        raise InvalidMaskError(f"pair indices out of range for shape {(n, m)}")
    edge = v > 0
    if prefilter:
        edge &= v >= iou_threshold
    r, c, v = r[edge], c[edge], v[edge]
    empty = Matches(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if r.size == 0:
        return empty
    graph = scipy.sparse.coo_array(
        (np.ones(r.size, dtype=np.int8), (r, c + n)), shape=(n + m, n + m)
    )
    _, labels = connected_components(graph, directed=False)
    comp = labels[r]
    order = np.argsort(comp, kind="stable")
    comp_sorted = comp[order]
    bounds = np.flatnonzero(np.diff(comp_sorted)) + 1
    starts = np.concatenate(([0], bounds))
    stops = np.concatenate((bounds, [comp_sorted.size]))
    single = (stops - starts) == 1
    out_r = [r[order[starts[single]]]]
    out_c = [c[order[starts[single]]]]
    out_v = [v[order[starts[single]]]]
    for a, b in zip(starts[~single].tolist(), stops[~single].tolist()):
        e = order[a:b]
        ur, lr = np.unique(r[e], return_inverse=True)
        uc, lc = np.unique(c[e], return_inverse=True)
        sub = np.zeros((ur.size, uc.size), dtype=np.float64)
        sub[lr, lc] = v[e]
        ar, ac = linear_sum_assignment(sub, maximize=True)
        good = sub[ar, ac] > 0
        out_r.append(ur[ar[good]])
        out_c.append(uc[ac[good]])
        out_v.append(sub[ar[good], ac[good]])
    mr, mc, mv = np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)
    if not prefilter:
        keep = mv >= iou_threshold
        mr, mc, mv = mr[keep], mc[keep], mv[keep]
    o = np.argsort(mr, kind="stable")
    return Matches(mr[o], mc[o], mv[o])


def match_boxes(
    boxes_true: npt.ArrayLike,
    boxes_pred: npt.ArrayLike,
    iou_threshold: float = 0.5,
    prefilter: bool = True,
) -> Matches:
    """One-to-one box matching (see the module docstring for the exact definition).

    >>> match_boxes(np.empty((0, 4)), [[0, 0, 1, 1]]).rows.size
    0
    """
    a = as_boxes(boxes_true, "boxes_true")
    b = as_boxes(boxes_pred, "boxes_pred")
    rows, cols, ious = box_iou_sparse(a, b)
    return match_sparse(rows, cols, ious, (len(a), len(b)), iou_threshold, prefilter)


def match_masks(
    masks_true: CompactMask,
    masks_pred: CompactMask,
    iou_threshold: float = 0.5,
    prefilter: bool = True,
) -> Matches:
    """One-to-one mask matching on the sparse mask IoU (float32-ratio values as supervision).

    >>> import supervision as sv
    >>> cm = sv.CompactMask.from_dense(np.ones((1, 2, 2), bool), np.array([[0, 0, 1, 1]]), (2, 2))
    >>> match_masks(cm, cm).ious.tolist()
    [1.0]
    """
    rows, cols, ious = mask_iou_sparse(masks_true, masks_pred)
    return match_sparse(rows, cols, ious, (len(masks_true), len(masks_pred)), iou_threshold, prefilter)
