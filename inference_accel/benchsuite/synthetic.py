"""Realistic-mask scenario: synthetic engine outputs shaped like a trained model's.

The bundled model has random weights: its masks cover 60-80% of the frame
with ragged edges, a pathological load for postprocessing and the response.
This scenario feeds those two stages with **synthetic engine outputs** (not a
model, and never reported as one) shaped like a trained RF-DETR-Seg's:

- 5-40 detections per frame (queries above the threshold; the rest far below;
  a model with fewer queries gets at most one per query);
- a COCO-like spread of mask areas: log-normal fraction of the frame, median
  1%, about 90% under 5%, clipped to [0.05%, 40%];
- smooth logits: an ellipse with a gently wavy outline, the logit proportional
  to the signed distance to it in mask pixels (``EDGE_LOGITS_PER_PIXEL``: about
  -3 to +3 across two mask pixels, as trained masks' edges are), clamped to
  +-12.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed
gives the same outputs. :func:`run_scenario` times the fast and the reference
postprocessing and the response on the same outputs in the same run, and
checks that the two postprocessings are identical.

>>> out = synthetic_outputs(frame_index=0, seed=7)
>>> out.logits.shape, out.boxes.shape, out.masks.shape
((100, 91), (100, 4), (100, 78, 78))
>>> 5 <= out.detections <= 40
True
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np

MIN_DETECTIONS, MAX_DETECTIONS = 5, 40
AREA_MEDIAN = 0.01  # fraction of the frame
AREA_LOG_SIGMA = 1.2  # P(area < 5%) = Phi(ln 5 / 1.2) ~ 0.91
AREA_RANGE = (0.0005, 0.40)
EDGE_LOGITS_PER_PIXEL = 3.0  # logit units per mask pixel across the edge
LOGIT_CLAMP = 12.0
BELOW_THRESHOLD_LOGIT = -6.0  # sigmoid = 0.0025: far below any usable threshold
LABEL = "synthetic engine outputs (not a model)"


@dataclass
class SyntheticOutputs:
    """One frame's engine outputs: ``logits`` (Q, C), ``boxes`` (Q, 4) cxcywh normalised, ``masks`` (Q, Hm, Wm)."""

    logits: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    detections: int
    area_fractions: np.ndarray  # the drawn ellipse area of each detection, as a fraction of the frame


def _mask_logits(box: np.ndarray, mask_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth logits of one object: an ellipse filling its box, with a wavy outline."""
    mh, mw = mask_hw
    cx, cy, w, h = box
    ys = (np.arange(mh, dtype=np.float64) + 0.5) / mh
    xs = (np.arange(mw, dtype=np.float64) + 0.5) / mw
    dx = (xs[None, :] - cx) / (w / 2)
    dy = (ys[:, None] - cy) / (h / 2)
    radius = np.hypot(dx, dy)
    angle = np.arctan2(dy, dx)
    phases = rng.uniform(0, 2 * math.pi, 2)
    outline = 1.0 + 0.10 * np.sin(3 * angle + phases[0]) + 0.05 * np.sin(5 * angle + phases[1])
    # Signed distance to the outline, in mask pixels (positive inside).
    semi_axis_px = min(w * mw, h * mh) / 2
    distance_px = (outline - radius) * semi_axis_px
    return np.clip(EDGE_LOGITS_PER_PIXEL * distance_px, -LOGIT_CLAMP, LOGIT_CLAMP).astype(np.float32)


def synthetic_outputs(frame_index: int, seed: int = 0, queries: int = 100, classes: int = 91,
                      mask_hw: tuple[int, int] = (78, 78), threshold: float = 0.4) -> SyntheticOutputs:
    """The outputs of frame ``frame_index`` (deterministic in ``seed`` and ``frame_index``)."""
    if queries < 1 or classes < 2:
        raise ValueError(f"need queries >= 1 and classes >= 2, got {queries} and {classes}")
    rng = np.random.default_rng([seed, frame_index])
    # A model with fewer queries than MAX_DETECTIONS (a test model) gets at most one detection per query.
    count = int(rng.integers(min(MIN_DETECTIONS, queries), min(MAX_DETECTIONS, queries) + 1))
    logits = np.full((queries, classes), BELOW_THRESHOLD_LOGIT, np.float32)
    boxes = np.zeros((queries, 4), np.float32)
    masks = np.full((queries, *mask_hw), -LOGIT_CLAMP, np.float32)
    chosen = rng.choice(queries, count, replace=False)
    areas = np.clip(np.exp(rng.normal(math.log(AREA_MEDIAN), AREA_LOG_SIGMA, count)), *AREA_RANGE)
    aspects = np.exp(rng.normal(0.0, 0.5, count))  # width / height
    low_logit = math.log(threshold / (1 - threshold)) + 0.2
    for query, area, aspect in zip(chosen, areas, aspects):
        box_area = area * 4 / math.pi  # the ellipse fills pi/4 of its box
        w = min(math.sqrt(box_area * aspect), 0.95)
        h = min(box_area / w, 0.95)
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        boxes[query] = (cx, cy, w, h)
        logits[query, rng.integers(1, classes)] = rng.uniform(low_logit, 4.0)
        masks[query] = _mask_logits(boxes[query], mask_hw, rng)
    # Queries below the threshold still get plausible boxes (the selection reads them).
    rest = np.setdiff1d(np.arange(queries), chosen)
    boxes[rest] = np.column_stack([rng.uniform(0.2, 0.8, (rest.size, 2)), rng.uniform(0.05, 0.3, (rest.size, 2))])
    return SyntheticOutputs(logits, boxes, masks, count, areas)


def run_scenario(videos: dict[str, tuple[int, int]], frames: int, seed: int = 0, input_hw=(312, 312),
                 queries: int = 100, classes: int = 91, mask_hw=(78, 78), threshold: float = 0.4,
                 resize_mode: str = "stretch", flags=None, device: str = "cpu", max_detections: int = 300) -> dict:
    """Postprocessing and response, fast vs reference, on ``frames`` synthetic frames per frame size.

    ``videos`` maps a name to its frame (height, width). The two paths run on
    the same outputs, interleaved frame by frame; their detections are
    compared (boxes, scores, classes, every mask pixel). ``device``: where
    the outputs live (``cuda``: the GPU fast path; not yet run on a GPU).
    """
    import torch

    from inference_accel.flags import read_flags
    from inference_accel.parity import compare_detections
    from inference_accel.postprocess.api import postprocess
    from inference_accel.preprocess.geometry import plan_geometry
    from inference_accel.response import build_response

    base = flags or read_flags()
    paths = {"reference": replace(base, postproc_fast=False), "fast": replace(base, postproc_fast=True)}
    rows = []
    for name, frame_hw in videos.items():
        geometry = plan_geometry(tuple(frame_hw), tuple(input_hw), resize_mode)
        times = {p: {"postprocess": [], "response": []} for p in paths}
        implementations = {p: set() for p in paths}
        identical, counts, areas = 0, [], []
        for index in range(frames):
            out = synthetic_outputs(index, seed, queries, classes, mask_hw, threshold)
            tensors = [torch.from_numpy(a).to(device) for a in (out.logits, out.boxes, out.masks)]
            results = {}
            for path, path_flags in (paths.items() if index % 2 == 0 else reversed(list(paths.items()))):
                start = time.perf_counter()
                detections, impl = postprocess(*tensors, geometry, threshold=threshold, num_classes=classes,
                                               max_detections=max_detections, flags=path_flags)
                middle = time.perf_counter()
                build_response(detections, tuple(frame_hw))
                end = time.perf_counter()
                times[path]["postprocess"].append((middle - start) * 1e3)
                times[path]["response"].append((end - middle) * 1e3)
                implementations[path].add(impl)
                results[path] = detections
            identical += not compare_detections(results["fast"], results["reference"])
            counts.append(len(results["reference"]))
            if len(results["reference"]):
                mask = results["reference"].mask
                areas.extend((np.asarray(mask).reshape(len(mask), -1).sum(axis=1) / (frame_hw[0] * frame_hw[1])).tolist())
        row = {"video": name, "frame_hw": list(frame_hw), "frames": frames, "identical_frames": identical,
               "detections_per_frame": {"min": min(counts), "max": max(counts), "mean": statistics.fmean(counts)},
               "mask_area_fraction": {"median": statistics.median(areas) if areas else 0.0,
                                      "under_5_percent": (sum(a < 0.05 for a in areas) / len(areas)) if areas else 0.0},
               "paths": {}}
        for path in paths:
            medians = {stage: statistics.median(v) for stage, v in times[path].items()}
            row["paths"][path] = {"median_ms": medians, "implementations": sorted(implementations[path])}
        ref, fast = (sum(row["paths"][p]["median_ms"].values()) for p in ("reference", "fast"))
        row["ratio_post_plus_response"] = ref / fast if fast else None
        rows.append(row)
    return {"label": LABEL, "status": "ok", "device": device, "seed": seed, "threshold": threshold,
            "max_detections": max_detections, "resize_mode": resize_mode,
            "engine_output_shape": {"queries": queries, "classes": classes, "mask_hw": list(mask_hw),
                                    "input_hw": list(input_hw)},
            "method": ("The same synthetic outputs through the reference and the fast postprocessing, then the "
                       "response, interleaved frame by frame (order alternating); medians over frames"),
            "rows": rows}
