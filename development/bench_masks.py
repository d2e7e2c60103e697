"""Benchmark the dense-free mask toolkit against the dense computations.

Cases (every row checks that both paths give identical results):

1. seed 003: 5,000 GT boxes vs 10,000 predictions (50 px, 10,000 px tile):
   dense IoU matrix + dense Hungarian vs sparse IoU + per-component Hungarian.
   Peak memory from tracemalloc (numpy allocations are traced), time measured
   separately without tracing.
2. RLE -> largest polygon for 100 seg-nano-like masks at 1080p and 4K: decode
   to the dense frame + cv2.findContours vs painting the tight crop.
3. CompactMask -> compressed COCO RLE at 1080p: to_dense + pycocotools.encode
   vs our run arithmetic.
4. Multiclass RLE of a 1080p label map vs per-class binary pycocotools encoding.

Run: ``.venv/bin/python development/bench_masks.py [--repeats 5] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import supervision as sv
from scipy.optimize import linear_sum_assignment

from inference_accel.masks import (
    encode_multiclass,
    largest_polygon,
    match_boxes,
    multiclass_to_coco,
    to_coco_rle,
)


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (seconds) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak traced bytes while running ``fn`` once."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ 1. seed 003


def dense_match(a: np.ndarray, b: np.ndarray, thr: float, prefilter: bool) -> set:
    """Dense reference: full float64 IoU matrix (supervision's formula) + LSA."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    del iw, ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    del inter, union
    weight = np.where((iou >= thr) & (iou > 0), iou, 0.0) if prefilter else iou
    r, c = linear_sum_assignment(weight, maximize=True)
    keep = (iou[r, c] > 0) & (iou[r, c] >= thr)
    return set(zip(r[keep].tolist(), c[keep].tolist()))


def bench_seed003(repeats: int) -> list[dict]:
    rng = np.random.default_rng(42)

    def boxes(n: int) -> np.ndarray:
        xy = rng.uniform(0, 10000 - 50, (n, 2))
        return np.hstack([xy, xy + 50])

    gt, pred = boxes(5000), boxes(10000)
    rows = []
    for prefilter in (True, False):
        thr = 0.5
        t_dense, ref = median_time(lambda: dense_match(gt, pred, thr, prefilter), 1)
        m_dense = peak_memory(lambda: dense_match(gt, pred, thr, prefilter))
        t_ours, got = median_time(lambda: match_boxes(gt, pred, thr, prefilter), repeats)
        m_ours = peak_memory(lambda: match_boxes(gt, pred, thr, prefilter))
        same = set(zip(got.rows.tolist(), got.cols.tolist())) == ref
        rows.append({
            "case": f"seed003 match 5000x10000 thr=0.5 prefilter={prefilter}",
            "dense_s": t_dense, "ours_s": t_ours, "speedup": t_dense / t_ours,
            "dense_peak_MB": m_dense / 2**20, "ours_peak_MB": m_ours / 2**20,
            "memory_ratio": m_dense / m_ours, "identical": same, "matches": len(ref),
            "note": "dense timed once (1 run)",
        })
    return rows


# ------------------------------------------------------------- masks to bench


def seg_masks(n: int, h: int, w: int, seed: int) -> tuple[sv.CompactMask, list[dict]]:
    """``n`` real-looking instance masks (polygons, ellipses, some with holes)."""
    rng = np.random.default_rng(seed)
    scale = h / 1080
    parts = []
    frame = np.zeros((h, w), dtype=np.uint8)
    for k in range(n):
        frame[:] = 0
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.uniform(15, 160) * scale)
        if k % 2:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 24))
            radii = rng.uniform(0.5, 1.0, 24) * r
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            cv2.fillPoly(frame, [pts.astype(np.int32)], 1)
        else:
            cv2.ellipse(frame, (cx, cy), (r, max(2, int(r * rng.uniform(0.3, 1)))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if k % 5 == 0:
            cv2.circle(frame, (cx, cy), max(1, r // 4), 0, -1)
        ys, xs = np.nonzero(frame)
        box = np.array([[xs.min(), ys.min(), xs.max(), ys.max()]], dtype=np.float32)
        parts.append(sv.CompactMask.from_dense(frame[None].astype(bool), box, (h, w)))
    cm = sv.CompactMask.merge(parts)
    return cm, to_coco_rle(cm)


def dense_largest(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.empty((0, 2), dtype=np.int32)
    return contours[int(np.argmax([cv2.contourArea(c) for c in contours]))][:, 0, :]


def bench_polygons(repeats: int) -> list[dict]:
    rows = []
    for name, (h, w) in {"1080p": (1080, 1920), "4K": (2160, 3840)}.items():
        cm, rles = seg_masks(100, h, w, seed=3)
        n = len(cm)

        def dense_compact():
            return [dense_largest(cm[i].astype(np.uint8)) for i in range(n)]

        def dense_coco():
            return [dense_largest(mask_utils.decode(r)) for r in rles]

        def ours_compact():
            return [largest_polygon(cm, i) for i in range(n)]

        def ours_coco():
            return [largest_polygon(r) for r in rles]

        for label, dense_fn, ours_fn in (("CompactMask", dense_compact, ours_compact), ("COCO RLE", dense_coco, ours_coco)):
            t_d, ref = median_time(dense_fn, repeats)
            t_o, got = median_time(ours_fn, repeats)
            same = all(np.array_equal(a, b) for a, b in zip(ref, got))
            rows.append({"case": f"RLE->largest polygon, {label}, 100 masks {name}", "dense_s": t_d, "ours_s": t_o, "speedup": t_d / t_o, "identical": same})
    return rows


def bench_coco(repeats: int) -> list[dict]:
    rows = []
    for name, (h, w) in {"1080p": (1080, 1920), "4K": (2160, 3840)}.items():
        cm, _ = seg_masks(100, h, w, seed=4)

        def dense():
            stack = cm.to_dense()
            return mask_utils.encode(np.asfortranarray(stack.transpose(1, 2, 0).astype(np.uint8)))

        t_d, ref = median_time(dense, max(1, repeats // 2))
        t_o, got = median_time(lambda: to_coco_rle(cm), repeats)
        rows.append({"case": f"CompactMask->compressed COCO RLE, 100 masks {name}", "dense_s": t_d, "ours_s": t_o, "speedup": t_d / t_o, "identical": got == ref})
    return rows


def bench_multiclass(repeats: int) -> list[dict]:
    rows = []
    h, w = 1080, 1920
    for k in (2, 5, 10, 20, 50, 90):
        rng = np.random.default_rng(k)
        label = np.zeros((h, w), dtype=np.uint8)
        for _ in range(6 * k):
            cv2.ellipse(label, (int(rng.integers(0, w)), int(rng.integers(0, h))), (int(rng.integers(20, 200)), int(rng.integers(20, 200))), float(rng.uniform(0, 180)), 0, 360, int(rng.integers(1, k + 1)), -1)
        classes = [c for c in np.unique(label).tolist() if c != 0]

        def per_class():
            return {c: mask_utils.encode(np.asfortranarray((label == c).astype(np.uint8))) for c in classes}

        t_pc, ref = median_time(per_class, repeats)
        t_enc, rle = median_time(lambda: encode_multiclass(label), repeats)
        t_full, got = median_time(lambda: multiclass_to_coco(encode_multiclass(label)), repeats)
        rows.append({
            "case": f"multiclass 1080p, {len(classes)} classes", "dense_s": t_pc, "ours_s": t_enc,
            "speedup": t_pc / t_enc, "ours_plus_coco_s": t_full, "speedup_with_coco": t_pc / t_full,
            "identical": got == ref,
            "note": "dense = per-class pycocotools.encode; ours = encode_multiclass (and + per-class COCO)",
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--only", choices=["seed003", "polygons", "coco", "multiclass"])
    args = parser.parse_args()
    benches = {"seed003": bench_seed003, "polygons": bench_polygons, "coco": bench_coco, "multiclass": bench_multiclass}
    results = []
    for name, fn in benches.items():
        if args.only and args.only != name:
            continue
        results.extend(fn(args.repeats))
    print(f"{'case':62s} {'dense ms':>10s} {'ours ms':>9s} {'speedup':>8s} {'mem dense/ours MB':>20s} identical")
    for r in results:
        mem = f"{r['dense_peak_MB']:.1f}/{r['ours_peak_MB']:.2f}" if "dense_peak_MB" in r else ""
        print(f"{r['case']:62s} {r['dense_s'] * 1e3:10.2f} {r['ours_s'] * 1e3:9.2f} {r['speedup']:7.1f}x {mem:>20s} {r['identical']}")
        if "ours_plus_coco_s" in r:
            print(f"{'  + per-class COCO strings':62s} {'':10s} {r['ours_plus_coco_s'] * 1e3:9.2f} {r['speedup_with_coco']:7.1f}x")
        if "memory_ratio" in r:
            print(f"{'  memory ratio':62s} {r['memory_ratio']:.0f}x less")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"repeats": args.repeats, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
