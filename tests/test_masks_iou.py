"""Sparse box IoU, mask IoU, matching and NMS against dense computations.

References: a dense float64 numpy IoU matrix written here (supervision's
formula), ``sv.box_iou_batch`` / ``sv.mask_iou_batch`` on dense arrays,
``scipy.optimize.linear_sum_assignment`` on the full dense matrix, and
``sv.box_non_max_suppression`` / ``sv.mask_non_max_suppression`` /
``Detections.with_nms``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from inference_accel.errors import InvalidMaskError
from inference_accel.masks import (
    box_iou_matrix,
    box_iou_sparse,
    box_nms_keep,
    mask_iou_matrix,
    mask_iou_sparse,
    mask_nms_keep,
    match_boxes,
    match_masks,
    non_max_suppression,
)


def dense_box_iou(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    norm = area_a[:, None] + area_b[None, :] - inter if metric == "iou" else np.minimum(area_a[:, None], area_b[None, :])
    out = np.zeros_like(inter)
    np.divide(inter, norm, out=out, where=norm > 0)
    return out


def random_boxes(rng, n, size=100.0, max_wh=30.0, integer=False):
    xy = rng.uniform(-10, size, (n, 2))
    wh = rng.uniform(0, max_wh, (n, 2))
    wh[rng.random(n) < 0.1] = 0.0  # some degenerate boxes
    boxes = np.hstack([xy, xy + wh])
    return np.round(boxes) if integer else boxes


def assert_sparse_equals_dense(rows, cols, vals, dense):
    assert np.all(np.diff(rows) >= 0)
    full = np.zeros_like(dense)
    full[rows, cols] = vals
    np.testing.assert_array_equal(full, dense)  # exact, float64
    assert len(set(zip(rows.tolist(), cols.tolist()))) == rows.size
    assert np.all(vals > 0)


# --------------------------------------------------------------------- box IoU


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 40), m=st.integers(0, 40), integer=st.booleans(), seed=st.integers(0, 2**31 - 1), metric=st.sampled_from(["iou", "ios"]))
def test_box_iou_random(n, m, integer, seed, metric):
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, n, integer=integer)
    b = random_boxes(rng, m, integer=integer)
    if n and m and integer:
        b[: min(n, m) // 2] = a[: min(n, m) // 2]  # identical and touching boxes
    dense = dense_box_iou(a, b, metric)
    from inference_accel.masks.box_iou import box_iou_sparse as raw

    for chunk in (3, 1 << 17):
        rows, cols, vals = raw(a, b, metric, chunk=chunk)
        assert_sparse_equals_dense(rows, cols, vals, dense)
    if n and m:
        ref32 = sv.box_iou_batch(a, b, overlap_metric=metric.upper())
        full = np.zeros((n, m), dtype=np.float32)
        full[rows, cols] = vals.astype(np.float32)
        np.testing.assert_array_equal(full, ref32)
    mat = box_iou_matrix(a, b, metric)
    assert mat.shape == (n, m)
    np.testing.assert_array_equal(mat.toarray(), dense)


def test_box_iou_touching_and_nested():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 3, 3]])
    b = np.array([[10, 0, 20, 10], [0, 10, 10, 20], [0, 0, 10, 10], [1, 1, 9, 9], [5, 5, 5, 9]])
    rows, cols, vals = box_iou_sparse(a, b)
    assert_sparse_equals_dense(rows, cols, vals, dense_box_iou(a, b))
    assert (0, 0) not in set(zip(rows.tolist(), cols.tolist()))  # edge-touching: IoU 0


def test_box_iou_bad_and_empty_inputs():
    with pytest.raises(InvalidMaskError, match="out of order"):
        box_iou_sparse([[5, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(InvalidMaskError, match="out of order"):
        box_iou_sparse([[0, 0, 1, 1]], [[0, 3, 1, 1]])
    with pytest.raises(InvalidMaskError, match=r"shape \(N, 4\)"):
        box_iou_sparse([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(InvalidMaskError, match="NaN"):
        box_iou_sparse([[0, 0, np.nan, 1]], [[0, 0, 1, 1]])
    with pytest.raises(InvalidMaskError, match="metric"):
        box_iou_sparse([[0, 0, 1, 1]], [[0, 0, 1, 1]], metric="giou")
    for a, b in [(np.empty((0, 4)), [[0, 0, 1, 1]]), ([[0, 0, 1, 1]], []), ([], [])]:
        rows, cols, vals = box_iou_sparse(a, b)
        assert rows.size == cols.size == vals.size == 0
    assert box_iou_matrix(np.empty((0, 4)), np.empty((3, 4))).shape == (0, 3)


# -------------------------------------------------------------------- mask IoU


def random_masks(rng, n, h, w, kind="shapes"):
    dense = np.zeros((n, h, w), dtype=np.uint8)
    for k in range(n):
        if kind == "pixels":
            y, x = rng.integers(0, h), rng.integers(0, w)
            hh, ww = rng.integers(1, 8, size=2)
            dense[k, y : y + hh, x : x + ww] = rng.random((min(hh, h - y), min(ww, w - x))) < 0.6
        else:
            center = (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5)))
            axes = (int(rng.integers(1, w // 3 + 2)), int(rng.integers(1, h // 3 + 2)))
            cv2.ellipse(dense[k], center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            if k % 4 == 0:
                cv2.circle(dense[k], center, max(1, axes[0] // 3), 0, -1)
    return dense.astype(bool)


def to_compact(dense, loose=0):
    n, h, w = dense.shape
    boxes = []
    for m in dense:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min() - loose, ys.min() - loose, xs.max() + loose, ys.max() + loose] if xs.size else [0, 0, 0, 0])
    return sv.CompactMask.from_dense(dense, np.array(boxes, dtype=np.float32).reshape(n, 4), (h, w))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 12), m=st.integers(0, 12), kind=st.sampled_from(["shapes", "pixels"]), loose=st.integers(0, 3), seed=st.integers(0, 2**31 - 1), metric=st.sampled_from(["iou", "ios"]))
def test_mask_iou_random(n, m, kind, loose, seed, metric):
    rng = np.random.default_rng(seed)
    h, w = 40, 50
    da = random_masks(rng, n, h, w, kind)
    db = random_masks(rng, m, h, w, kind)
    if n and m:
        db[0] = da[0]
    ca, cb = to_compact(da, loose), to_compact(db, 0)
    rows, cols, vals = mask_iou_sparse(ca, cb, metric)
    if n == 0 or m == 0:
        assert rows.size == 0
        return
    dense = sv.mask_iou_batch(da, db, overlap_metric=sv.OverlapMetric(metric.upper()))
    assert_sparse_equals_dense(rows, cols, vals, dense)
    np.testing.assert_array_equal(mask_iou_matrix(ca, cb, metric).toarray(), dense)


def test_mask_iou_large_frame_and_float32_rounding():
    rng = np.random.default_rng(11)
    da = random_masks(rng, 30, 480, 640)
    db = random_masks(rng, 30, 480, 640)
    db[:10] = da[:10]
    db[10:20, :, :320] = da[10:20, :, :320]
    rows, cols, vals = mask_iou_sparse(to_compact(da, 2), to_compact(db))
    assert_sparse_equals_dense(rows, cols, vals, sv.mask_iou_batch(da, db))


def test_mask_iou_full_height_and_empty_masks():
    da = np.zeros((3, 6, 5), dtype=bool)
    da[0, :, 1:3] = True  # full-height columns: runs cross crop columns
    da[1, 5, 4] = True  # one pixel in the corner
    db = np.zeros((3, 6, 5), dtype=bool)
    db[0, 2:, 2:] = True
    db[1] = da[1]
    ca = to_compact(da, loose=1)
    cb = to_compact(db)
    rows, cols, vals = mask_iou_sparse(ca, cb)
    assert_sparse_equals_dense(rows, cols, vals, sv.mask_iou_batch(da, db))


def test_mask_iou_bad_inputs():
    a = to_compact(np.ones((1, 4, 4), dtype=bool))
    b = to_compact(np.ones((1, 4, 5), dtype=bool))
    with pytest.raises(InvalidMaskError, match="different image sizes"):
        mask_iou_sparse(a, b)
    with pytest.raises(InvalidMaskError, match="CompactMask"):
        mask_iou_sparse(a, np.ones((1, 4, 4), dtype=bool))
    with pytest.raises(InvalidMaskError, match="metric"):
        mask_iou_sparse(a, a, "dice")


# -------------------------------------------------------------------- matching


def dense_matches(iou: np.ndarray, thr: float, prefilter: bool):
    """The documented dense reference: full matrix + linear_sum_assignment."""
    if iou.size == 0:
        return set()
    weight = np.where((iou >= thr) & (iou > 0), iou, 0.0) if prefilter else iou
    r, c = linear_sum_assignment(weight, maximize=True)
    keep = (iou[r, c] > 0) & (iou[r, c] >= thr)
    return set(zip(r[keep].tolist(), c[keep].tolist()))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(0, 60), thr=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7]), prefilter=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_box_matching_equals_dense_hungarian(n, m, thr, prefilter, seed):
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, n, size=150.0, max_wh=40.0)
    b = np.concatenate([a[: n // 2] + rng.normal(0, 3, (n // 2, 4)).clip(-2, 2), random_boxes(rng, max(m - n // 2, 0), size=150.0, max_wh=40.0)])[:m]
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])
    iou = dense_box_iou(a, b)
    got = match_boxes(a, b, thr, prefilter)
    assert set(zip(got.rows.tolist(), got.cols.tolist())) == dense_matches(iou, thr, prefilter)
    assert np.all(np.diff(got.rows) >= 0)
    np.testing.assert_array_equal(got.ious, iou[got.rows, got.cols])


def test_matching_big_component():
    # One dense cluster: a large component solved by one Hungarian call.
    rng = np.random.default_rng(5)
    a = random_boxes(rng, 80, size=60.0, max_wh=40.0)
    b = random_boxes(rng, 90, size=60.0, max_wh=40.0)
    iou = dense_box_iou(a, b)
    for prefilter in (True, False):
        got = match_boxes(a, b, 0.2, prefilter)
        assert set(zip(got.rows.tolist(), got.cols.tolist())) == dense_matches(iou, 0.2, prefilter)


def test_mask_matching_equals_dense():
    rng = np.random.default_rng(9)
    da = random_masks(rng, 25, 60, 80)
    db = random_masks(rng, 20, 60, 80)
    db[:8] = da[:8]
    db[8:14, :, :40] = da[8:14, :, :40]
    iou = sv.mask_iou_batch(da, db)
    for prefilter in (True, False):
        got = match_masks(to_compact(da), to_compact(db), 0.3, prefilter)
        ref = dense_matches(iou, 0.3, prefilter)
        # Identical masks give exact ties only within one pair; compare sets.
        assert set(zip(got.rows.tolist(), got.cols.tolist())) == ref


def test_matching_bad_inputs():
    with pytest.raises(InvalidMaskError, match="iou_threshold"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], 1.5)
    with pytest.raises(InvalidMaskError, match="out of order"):
        match_boxes([[0, 0, 1, 1]], [[2, 0, 1, 1]])
    m = match_boxes(np.empty((0, 4)), np.empty((0, 4)))
    assert m.rows.size == m.cols.size == m.ious.size == 0


# ------------------------------------------------------------------------- NMS


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 50), n_classes=st.integers(1, 3), thr=st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]), tie_scores=st.booleans(), with_class=st.booleans(), metric=st.sampled_from(["iou", "ios"]), seed=st.integers(0, 2**31 - 1))
def test_box_nms_equals_supervision(n, n_classes, thr, tie_scores, with_class, metric, seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, size=80.0, max_wh=40.0, integer=tie_scores)
    scores = rng.integers(0, 4, n) / 4 if tie_scores else rng.random(n)
    cols = [boxes, scores[:, None]] + ([rng.integers(0, n_classes, n)[:, None]] if with_class else [])
    preds = np.hstack(cols) if n else np.empty((0, 6 if with_class else 5))
    ours = box_nms_keep(preds, thr, metric)
    if n:
        ref = sv.box_non_max_suppression(preds, thr, overlap_metric=sv.OverlapMetric(metric.upper()))
        np.testing.assert_array_equal(ours, ref)
    else:
        assert ours.shape == (0,)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 25), thr=st.sampled_from([0.0, 0.1, 0.5, 0.8]), tie_scores=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_mask_nms_equals_supervision(n, thr, tie_scores, seed):
    rng = np.random.default_rng(seed)
    dense = random_masks(rng, n, 50, 60)
    if n > 3:
        dense[1] = dense[0]
        dense[3, :, :30] = dense[2, :, :30]
    compact = to_compact(dense, loose=1)
    boxes = compact.bbox_xyxy.astype(np.float64)
    scores = rng.integers(0, 3, n) / 3 if tie_scores else rng.random(n)
    preds = np.hstack([boxes.reshape(n, 4), scores[:, None], rng.integers(0, 2, n)[:, None]])
    ours = mask_nms_keep(preds, compact, thr)
    if n:
        np.testing.assert_array_equal(ours, sv.mask_non_max_suppression(preds, dense, thr))
        np.testing.assert_array_equal(ours, sv.mask_non_max_suppression(preds, compact, thr))
        np.testing.assert_array_equal(mask_nms_keep(preds[:, :5], compact, thr), sv.mask_non_max_suppression(preds[:, :5], dense, thr))
    else:
        assert ours.shape == (0,)


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_detections_nms_equals_with_nms(class_agnostic):
    rng = np.random.default_rng(21)
    dense = random_masks(rng, 40, 120, 160)
    compact = to_compact(dense)
    xyxy = compact.bbox_xyxy.astype(np.float32)
    conf = rng.random(40).astype(np.float32)
    cls = rng.integers(0, 3, 40)
    det_masks = sv.Detections(xyxy=xyxy, mask=compact, confidence=conf, class_id=cls)
    det_boxes = sv.Detections(xyxy=xyxy, confidence=conf, class_id=cls)
    for det in (det_masks, det_boxes):
        for thr in (0.2, 0.5):
            ours = non_max_suppression(det, thr, class_agnostic)
            ref = det.with_nms(thr, class_agnostic)
            np.testing.assert_array_equal(ours.xyxy, ref.xyxy)
            np.testing.assert_array_equal(ours.confidence, ref.confidence)
            if det.mask is not None:
                assert isinstance(ours.mask, sv.CompactMask)
                np.testing.assert_array_equal(ours.mask.to_dense(), ref.mask.to_dense())
    assert len(non_max_suppression(sv.Detections.empty())) == 0


def test_nms_bad_inputs():
    with pytest.raises(InvalidMaskError, match="iou_threshold"):
        box_nms_keep(np.zeros((1, 5)), 1.1)
    with pytest.raises(InvalidMaskError, match="shape"):
        box_nms_keep(np.zeros((1, 4)))
    with pytest.raises(InvalidMaskError, match="out of order"):
        box_nms_keep(np.array([[3, 0, 1, 1, 0.5]]))
    cm = to_compact(np.ones((2, 3, 3), dtype=bool))
    with pytest.raises(InvalidMaskError, match="2 masks for 1"):
        mask_nms_keep(np.zeros((1, 5)), cm)
    with pytest.raises(InvalidMaskError, match="CompactMask"):
        mask_nms_keep(np.zeros((2, 5)), np.ones((2, 3, 3), dtype=bool))
    det = sv.Detections(xyxy=np.zeros((1, 4)), class_id=np.array([0]))
    with pytest.raises(InvalidMaskError, match="confidence"):
        non_max_suppression(det)
    det = sv.Detections(xyxy=np.zeros((1, 4)), confidence=np.array([0.5]))
    with pytest.raises(InvalidMaskError, match="class_id"):
        non_max_suppression(det)


def test_box_nms_compares_float32_iou_like_supervision():
    # IoU = 3/10: 0.3 in float64 is not > 0.3, but float32(0.3) is.
    preds = np.array([[0, 0, 10, 1, 0.9], [0, 0, 3, 1, 0.8]])
    ref = sv.box_non_max_suppression(preds, 0.3)
    assert ref.tolist() == [True, False]
    np.testing.assert_array_equal(box_nms_keep(preds, 0.3), ref)
