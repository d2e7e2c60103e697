"""Box and mask NMS on sparse IoUs, with supervision's exact keep semantics.

Reproduces ``sv.box_non_max_suppression`` / ``sv.mask_non_max_suppression``
(and so ``sv.Detections.with_nms``) decision for decision:

- order: ``np.flip(scores.argsort())`` (numpy's default, unstable, sort: the
  same call, so ties break the same way);
- box IoU: supervision's float64 formula, cast to float32 as
  ``sv.box_iou_batch`` returns it, compared with ``> threshold`` in float64;
- mask IoU: float32 counts and ratio as ``sv.mask_iou_batch`` (float64 counts
  above 2**24 pixels), compared with ``> threshold``;
- a kept detection suppresses every later detection of the same category
  (all detections when class-agnostic) whose IoU exceeds the threshold.

The only difference is that IoUs come from the sparse pair lists
(:mod:`.box_iou`, :mod:`.mask_iou`): a pair with no common area has IoU 0,
which never exceeds a threshold in [0, 1], so the dense matrix adds nothing.

>>> import numpy as np
>>> preds = np.array([[0, 0, 4, 4, 0.9, 0], [0, 0, 4, 4, 0.8, 0], [0, 0, 4, 4, 0.7, 1]])
>>> box_nms_keep(preds, 0.5).tolist()
[True, False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse
import supervision as sv
from supervision import CompactMask

from inference_accel.errors import InvalidMaskError
from inference_accel.masks._runs import check_iou_threshold
from inference_accel.masks.box_iou import as_boxes, box_iou_sparse
from inference_accel.masks.mask_iou import mask_iou_sparse

__all__ = ["box_nms_keep", "mask_nms_keep", "non_max_suppression"]


def _metric(metric: Any) -> str:
    """'iou' or 'ios' from a string or ``sv.OverlapMetric``."""
    value = getattr(metric, "value", metric)
    name = str(value).lower()
    if name not in ("iou", "ios"):
        raise InvalidMaskError(f"overlap metric must be IOU or IOS, got {metric!r}")
    return name


def _predictions(predictions: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(predictions)
    if arr.ndim != 2 or arr.shape[1] not in (5, 6):
        raise InvalidMaskError(f"predictions must have shape (N, 5) or (N, 6), got {arr.shape}")
    if arr.shape[1] == 5:
        arr = np.c_[arr, np.zeros(arr.shape[0])]
    return arr


def _greedy(
    n: int,
    rows: np.ndarray,
    cols: np.ndarray,
    over: np.ndarray,
    categories: np.ndarray,
    sort_index: np.ndarray,
) -> npt.NDArray[np.bool_]:
    """Greedy suppression in score order over the pairs with ``over`` true.

    ``rows``/``cols`` are original indices; ``sort_index`` the score order.
    """
    rank = np.empty(n, dtype=np.int64)
    rank[sort_index] = np.arange(n)
    ri, rj = rank[rows], rank[cols]
    edge = over & (rj > ri) & (categories[rows] == categories[cols])
    keep_sorted = np.ones(n, dtype=bool)
    if edge.any():
        adj = scipy.sparse.csr_array(
            (np.ones(int(edge.sum()), dtype=np.int8), (ri[edge], rj[edge])), shape=(n, n)
        )
        indptr, indices = adj.indptr, adj.indices
        for i in np.flatnonzero(np.diff(indptr)).tolist():
            if keep_sorted[i]:
                keep_sorted[indices[indptr[i] : indptr[i + 1]]] = False
    return keep_sorted[rank]


def box_nms_keep(
    predictions: npt.ArrayLike, iou_threshold: float = 0.5, overlap_metric: Any = "iou"
) -> npt.NDArray[np.bool_]:
    """Keep mask of box NMS, equal to ``sv.box_non_max_suppression``.

    Args:
        predictions: (N, 5) ``x1, y1, x2, y2, score`` or (N, 6) with the class.

    >>> box_nms_keep(np.empty((0, 5))).tolist()
    []
    """
    check_iou_threshold(iou_threshold)
    preds = _predictions(predictions)
    n = preds.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    sort_index = np.flip(preds[:, 4].argsort())
    boxes = as_boxes(preds[:, :4], "prediction boxes")
    rows, cols, ious = box_iou_sparse(boxes, boxes, _metric(overlap_metric))
    # float32 values as sv.box_iou_batch returns them, compared in float64 as
    # supervision does after `ious - np.eye(n)` (a float32 array would compare
    # against float32(threshold) under numpy's promotion rules).
    over = ious.astype(np.float32).astype(np.float64) > iou_threshold
    return _greedy(n, rows, cols, over, preds[:, 5], sort_index)


def mask_nms_keep(
    predictions: npt.ArrayLike,
    masks: CompactMask,
    iou_threshold: float = 0.5,
    overlap_metric: Any = "iou",
) -> npt.NDArray[np.bool_]:
    """Keep mask of mask NMS, equal to ``sv.mask_non_max_suppression``.

    >>> import supervision as sv
    >>> cm = sv.CompactMask.from_dense(np.ones((2, 2, 2), bool),
    ...     np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), (2, 2))
    >>> mask_nms_keep(np.array([[0, 0, 1, 1, 0.5], [0, 0, 1, 1, 0.7]]), cm).tolist()
    [False, True]
    """
    check_iou_threshold(iou_threshold)
    preds = _predictions(predictions)
    if not isinstance(masks, CompactMask):
        raise InvalidMaskError(f"masks must be a supervision CompactMask, got {type(masks).__name__}")
    n = preds.shape[0]
    if len(masks) != n:
        raise InvalidMaskError(f"{len(masks)} masks for {n} predictions")
    if n == 0:
        return np.zeros(0, dtype=bool)
    sort_index = preds[:, 4].argsort()[::-1]
    rows, cols, ious = mask_iou_sparse(masks, masks, _metric(overlap_metric))
    return _greedy(n, rows, cols, ious > iou_threshold, preds[:, 5], sort_index)


def non_max_suppression(
    detections: sv.Detections,
    threshold: float = 0.5,
    class_agnostic: bool = False,
    overlap_metric: Any = "iou",
) -> sv.Detections:
    """``detections.with_nms(...)`` on sparse IoUs: mask NMS when masks are present.

    Masks must be a ``CompactMask`` (dense masks are refused rather than
    compressed, since cropping to the boxes could drop pixels).

    >>> d = sv.Detections(xyxy=np.array([[0., 0, 4, 4], [0, 0, 4, 4]]),
    ...     confidence=np.array([0.6, 0.9]), class_id=np.array([1, 1]))
    >>> non_max_suppression(d).confidence.tolist()
    [0.9]
    """
    if len(detections) == 0:
        return detections
    if detections.confidence is None:
        raise InvalidMaskError("detections need confidence for NMS")
    columns = [detections.xyxy, np.asarray(detections.confidence).reshape(-1, 1)]
    if not class_agnostic:
        if detections.class_id is None:
            raise InvalidMaskError("detections need class_id for class-aware NMS (or class_agnostic=True)")
        columns.append(detections.class_id.reshape(-1, 1))
    predictions = np.hstack(columns)
    if detections.mask is not None:
        keep = mask_nms_keep(predictions, detections.mask, threshold, overlap_metric)
    else:
        keep = box_nms_keep(predictions, threshold, overlap_metric)
    return detections[keep]
