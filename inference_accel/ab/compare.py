"""The comparison core: two ``sv.Detections`` of one frame -> one JSON-able record.

Matching uses our sparse matcher (:func:`~inference_accel.masks.matching.match_sparse`):

1. same class, mask IoU > ``iou_threshold`` (0.5), one to one (box IoU when a
   side has no masks, and for pairs whose masks are both empty);
2. of what is left, pairs of *different* classes with IoU > the threshold are
   **class disagreements**;
3. everything else is present on one side only.

Pixel counts are exact (intersections of the runs), so "masks pixel-identical"
means the XOR of the two masks is empty; no (N, H, W) array is built.

>>> import numpy as np, supervision as sv
>>> d = sv.Detections(xyxy=np.array([[0., 0, 4, 4]]), confidence=np.array([0.9]), class_id=np.array([1]))
>>> r = compare_frame(d, d)
>>> r["matched"], r["problems"]
(1, [])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import supervision as sv

from inference_accel.masks.box_iou import box_iou_sparse
from inference_accel.masks.mask_iou import mask_areas, mask_intersections
from inference_accel.masks.matching import match_sparse


@dataclass(frozen=True)
class Tolerance:
    """What counts as a difference. Defaults: exact masks and classes, equal counts, exact scores and boxes."""

    score: float = 0.0
    box: float = 0.0
    iou_threshold: float = 0.5


def as_compact(detections: sv.Detections, image_hw: tuple[int, int] | None = None) -> sv.CompactMask | None:
    """The masks of ``detections`` as a ``CompactMask`` (None when it has none)."""
    mask = detections.mask
    if mask is None:
        return None
    if isinstance(mask, sv.CompactMask):
        return mask
    dense = np.asarray(mask, dtype=bool)
    hw = dense.shape[1:] if dense.ndim == 3 and dense.shape[0] else image_hw
    if hw is None:
        return None
    dense = dense.reshape(-1, *hw)
    # Crop to each mask's own extent (never to its box: a mask may reach past its box).
    boxes = np.zeros((len(dense), 4), np.float64)
    for i, plane in enumerate(dense):
        ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        if ys.size:
            boxes[i] = (xs[0], ys[0], xs[-1], ys[-1])
    return sv.CompactMask.from_dense(dense, boxes, tuple(int(v) for v in hw))


def _image_hw(mask) -> tuple[int, int] | None:
    if mask is None:
        return None
    if isinstance(mask, sv.CompactMask):
        return tuple(int(v) for v in mask._image_shape)
    arr = np.asarray(mask)
    return tuple(arr.shape[1:3]) if arr.ndim == 3 else None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else (1.0 if np.array_equal(a, b) else 0.0)


def _pairs(a: sv.Detections, b: sv.Detections, ma, mb):
    """Every (i, j, weight, xor_pixels, mask_iou) with IoU > 0.

    ``weight`` (what the matcher maximises) is the mask IoU where both sides have
    masks, else the box IoU; two empty masks are matched on their boxes, and
    count as identical (mask IoU 1, no differing pixel). Without masks
    ``xor_pixels`` is -1 and ``mask_iou`` NaN.
    """
    if ma is not None and mb is not None and len(a) and len(b):
        rows, cols, inter = mask_intersections(ma, mb)
        area_a, area_b = mask_areas(ma), mask_areas(mb)
        union = area_a[rows] + area_b[cols] - inter
        ious = inter / np.maximum(union, 1)
        xor = union - inter
        miou = ious.copy()
        # Both masks empty: identical masks, matched on the box.
        ea, eb = np.flatnonzero(area_a == 0), np.flatnonzero(area_b == 0)
        if ea.size and eb.size:
            r2, c2, v2 = box_iou_sparse(np.asarray(a.xyxy, float)[ea], np.asarray(b.xyxy, float)[eb])
            rows = np.concatenate((rows, ea[r2]))
            cols = np.concatenate((cols, eb[c2]))
            ious = np.concatenate((ious, v2))
            xor = np.concatenate((xor, np.zeros(r2.size, np.int64)))
            miou = np.concatenate((miou, np.ones(r2.size)))
        return rows, cols, ious.astype(np.float64), xor.astype(np.int64), miou.astype(np.float64)
    if len(a) and len(b):
        rows, cols, ious = box_iou_sparse(np.asarray(a.xyxy, float), np.asarray(b.xyxy, float))
        return rows, cols, ious, np.full(rows.size, -1, np.int64), np.full(rows.size, np.nan)
    e = np.empty(0, np.int64)
    return e, e.copy(), np.empty(0, np.float64), e.copy(), np.empty(0, np.float64)


def _classes(d: sv.Detections) -> np.ndarray:
    return np.zeros(len(d), np.int64) if d.class_id is None else np.asarray(d.class_id, np.int64)


def _scores(d: sv.Detections) -> np.ndarray:
    return np.full(len(d), np.nan) if d.confidence is None else np.asarray(d.confidence, np.float64)


def _match(rows, cols, ious, keep, shape, threshold):
    keep = keep & (ious > threshold)
    return match_sparse(rows[keep], cols[keep], ious[keep], shape, threshold)


def compare_frame(a: sv.Detections, b: sv.Detections, index: int = 0, tol: Tolerance = Tolerance(), limit: int = 20) -> dict:
    """One frame's comparison record (JSON-able); ``problems`` lists every difference beyond ``tol``."""
    ma, mb = as_compact(a, _image_hw(b.mask)), as_compact(b, _image_hw(a.mask))
    masks = ma is not None and mb is not None
    if masks and tuple(ma._image_shape) != tuple(mb._image_shape):
        raise ValueError(f"frame {index}: mask image sizes differ: {tuple(ma._image_shape)} vs {tuple(mb._image_shape)}")
    ca, cb = _classes(a), _classes(b)
    sa, sb = _scores(a), _scores(b)
    rows, cols, ious, xor, miou = _pairs(a, b, ma, mb)
    lookup = {(int(r), int(c)): (float(m) if masks else float(v), int(x)) for r, c, v, x, m in zip(rows, cols, ious, xor, miou)}
    shape = (len(a), len(b))
    same = ca[rows] == cb[cols] if rows.size else np.zeros(0, bool)
    matched = _match(rows, cols, ious, same, shape, tol.iou_threshold)
    used_a, used_b = set(matched.rows.tolist()), set(matched.cols.tolist())
    free = np.array([int(r) not in used_a and int(c) not in used_b for r, c in zip(rows, cols)], bool)
    swapped = _match(rows, cols, ious, free & ~same, shape, tol.iou_threshold)
    used_a |= set(swapped.rows.tolist())
    used_b |= set(swapped.cols.tolist())

    problems: list[str] = []
    if len(a) != len(b):
        problems.append(f"detection count differs: A {len(a)} vs B {len(b)}")
    pairs = []
    for i, j in zip(matched.rows.tolist(), matched.cols.tolist()):
        iou, x = lookup[(i, j)]
        box_iou = _box_iou(np.asarray(a.xyxy[i], float), np.asarray(b.xyxy[j], float))
        box_diff = float(np.max(np.abs(np.asarray(a.xyxy[i], float) - np.asarray(b.xyxy[j], float))))
        score_diff = float(abs(sa[i] - sb[j]))
        pairs.append({"a": i, "b": j, "class": int(ca[i]), "iou": iou, "box_iou": box_iou,
                      "box_diff": box_diff, "score_diff": score_diff, "xor_pixels": x if masks else None})
        if masks and x > 0:
            problems.append(f"mask differs: A#{i} vs B#{j} (class {ca[i]}): {x} pixel(s) differ, IoU {iou:.6f}")
        if score_diff > tol.score or math.isnan(score_diff) and not (math.isnan(sa[i]) and math.isnan(sb[j])):
            problems.append(f"score differs: A#{i} {sa[i]:.6g} vs B#{j} {sb[j]:.6g} (|diff| {score_diff:.3g} > {tol.score:g})")
        if box_diff > tol.box:
            problems.append(f"box differs: A#{i} vs B#{j} by {box_diff:.3g} px (> {tol.box:g})")
    disagreements = []
    for i, j in zip(swapped.rows.tolist(), swapped.cols.tolist()):
        iou, _ = lookup[(i, j)]
        disagreements.append({"a": i, "b": j, "class_a": int(ca[i]), "class_b": int(cb[j]), "iou": iou})
        problems.append(f"class differs: A#{i} class {ca[i]} vs B#{j} class {cb[j]} (IoU {iou:.4f})")
    only_a = [i for i in range(len(a)) if i not in used_a]
    only_b = [j for j in range(len(b)) if j not in used_b]
    for i in only_a:
        problems.append(f"only in A: A#{i} class {ca[i]} score {sa[i]:.4g} box {np.round(np.asarray(a.xyxy[i], float), 1).tolist()}")
    for j in only_b:
        problems.append(f"only in B: B#{j} class {cb[j]} score {sb[j]:.4g} box {np.round(np.asarray(b.xyxy[j], float), 1).tolist()}")
    mask_ious = [p["iou"] for p in pairs] if masks else []
    record = {
        "frame": int(index),
        "count_a": len(a),
        "count_b": len(b),
        "matched": len(pairs),
        "class_disagreements": disagreements,
        "only_a": only_a,
        "only_b": only_b,
        "masks_compared": masks,
        "masks_identical": sum(1 for p in pairs if p["xor_pixels"] == 0) if masks else None,
        "differing_pixels": int(sum(p["xor_pixels"] for p in pairs)) if masks else None,
        "mean_box_iou": float(np.mean([p["box_iou"] for p in pairs])) if pairs else None,
        "max_score_diff": max((p["score_diff"] for p in pairs), default=None),
        "max_box_diff": max((p["box_diff"] for p in pairs), default=None),
        "mean_mask_iou": float(np.mean(mask_ious)) if mask_ious else None,
        "worst_mask_iou": float(min(mask_ious)) if mask_ious else None,
        "pairs": pairs,
        "problems": problems[:limit] + ([f"... and {len(problems) - limit} more"] if len(problems) > limit else []),
        "problem_count": len(problems),
    }
    return record


def badness(record: dict) -> tuple:
    """Sort key: worse frames first (problems, unmatched, differing pixels, lowest mask IoU)."""
    return (
        -record["problem_count"],
        -(len(record["only_a"]) + len(record["only_b"]) + len(record["class_disagreements"])),
        -(record["differing_pixels"] or 0),
        record["worst_mask_iou"] if record["worst_mask_iou"] is not None else 1.0,
    )


def summarize(records: list[dict], tol: Tolerance = Tolerance()) -> dict:
    """Totals over the frames; ``differs`` is True when any frame has a problem."""
    pairs = [p for r in records for p in r["pairs"]]
    mask_pairs = [p for r in records if r["masks_compared"] for p in r["pairs"]]
    identical = sum(1 for p in mask_pairs if p["xor_pixels"] == 0)
    return {
        "frames": len(records),
        "frames_differing": sum(1 for r in records if r["problem_count"]),
        "detections_a": sum(r["count_a"] for r in records),
        "detections_b": sum(r["count_b"] for r in records),
        "frames_count_differs": sum(1 for r in records if r["count_a"] != r["count_b"]),
        "matched": len(pairs),
        "iou_threshold": tol.iou_threshold,
        "class_disagreements": sum(len(r["class_disagreements"]) for r in records),
        "only_a": sum(len(r["only_a"]) for r in records),
        "only_b": sum(len(r["only_b"]) for r in records),
        "mean_box_iou": float(np.mean([p["box_iou"] for p in pairs])) if pairs else None,
        "max_score_diff": max((p["score_diff"] for p in pairs), default=None),
        "max_box_diff": max((p["box_diff"] for p in pairs), default=None),
        "masks_compared": len(mask_pairs),
        "masks_identical": identical,
        "masks_identical_share": identical / len(mask_pairs) if mask_pairs else None,
        "differing_pixels": int(sum(p["xor_pixels"] for p in mask_pairs)),
        "mean_mask_iou": float(np.mean([p["iou"] for p in mask_pairs])) if mask_pairs else None,
        "worst_mask_iou": float(min(p["iou"] for p in mask_pairs)) if mask_pairs else None,
        "tolerance": {"score": tol.score, "box": tol.box, "masks": 0, "classes": 0, "counts": 0},
        "problems": sum(r["problem_count"] for r in records),
        "differs": any(r["problem_count"] for r in records),
    }
