"""Detection selection: the part of postprocessing that every executor shares.

Semantics (rfdetr's ``PostProcess`` plus Roboflow ``inference``'s extras), in
this order:

1. ``prob = sigmoid(logits)``; flat top-k over Q x C with k = Q, ordered by
   descending score then ascending flat index (rfdetr's stable argsort), so a
   query may appear with several classes;
2. strict ``score > threshold``;
3. class remap / drop: ``class_mapping[c]`` gives our class id for model
   class ``c``, ``-1`` drops it; with no mapping, ids ``>= num_classes`` drop;
4. keep the first ``max_detections``;
5. boxes: cxcywh -> xyxy, times (w, h, w, h) of the model input's content
   mapping (the frame for stretch), clamped to the frame.

>>> import torch
>>> logits = torch.full((3, 2), -10.0); logits[1, 0] = 5.0
>>> boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 3)
>>> s = select_detections(logits, boxes, frame_hw=(100, 200), threshold=0.4)
>>> s.query.tolist(), s.class_id.tolist(), s.xyxy.tolist()
([1], [0], [[50.0, 25.0, 150.0, 75.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_accel.preprocess.geometry import Geometry


@dataclass
class Selection:
    """Selected detections of one image, in score order.

    ``query``: (N,) int64 query index of each detection (into the mask
    logits). ``class_id``: (N,) int64 after remapping. ``confidence``: (N,)
    float32. ``xyxy``: (N, 4) float32 in frame pixels, clamped.
    """

    query: torch.Tensor
    class_id: torch.Tensor
    confidence: torch.Tensor
    xyxy: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])


def topk_candidates(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rfdetr's top-k: (scores, query, class) of the top Q of Q*C, for one image (Q, C)."""
    num_queries, num_classes = logits.shape
    prob = logits.sigmoid().reshape(-1)
    order = torch.argsort(prob, descending=True, stable=True)[:num_queries]
    return prob[order], order // num_classes, order % num_classes


def boxes_to_frame(
    boxes_cxcywh: torch.Tensor, frame_hw: tuple[int, int], geometry: Geometry | None
) -> torch.Tensor:
    """Normalised cxcywh over the model input -> clamped xyxy in frame pixels.

    For stretch this is exactly rfdetr's arithmetic: xyxy in [0, 1], times
    (w, h, w, h), clamped to [0, w] / [0, h].
    """
    cx, cy, w, h = boxes_cxcywh.unbind(-1)
    xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
    fh, fw = frame_hw
    if geometry is None or geometry.is_stretch:
        scale = torch.tensor([fw, fh, fw, fh], dtype=xyxy.dtype, device=xyxy.device)
        xyxy = xyxy * scale
    else:
        ih, iw = geometry.input_hw
        x0, y0 = geometry.content[:2]
        kx, ky = geometry.content_scale
        # input pixels -> content-relative -> frame pixels
        px = xyxy[..., 0::2] * iw
        py = xyxy[..., 1::2] * ih
        fx = (px - x0) * kx
        fy = (py - y0) * ky
        xyxy = torch.stack([fx[..., 0], fy[..., 0], fx[..., 1], fy[..., 1]], dim=-1).to(
            boxes_cxcywh.dtype
        )
    limit = torch.tensor([fw, fh, fw, fh], dtype=xyxy.dtype, device=xyxy.device)
    return xyxy.clamp_min(0.0).clamp(max=limit)


def select_detections(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    frame_hw: tuple[int, int],
    threshold: float = 0.4,
    max_detections: int = 300,
    class_mapping: np.ndarray | None = None,
    num_classes: int | None = None,
    geometry: Geometry | None = None,
) -> Selection:
    """Select detections of one image from ``logits`` (Q, C) and ``boxes`` (Q, 4)."""
    logits = logits.float()
    scores, query, cls = topk_candidates(logits)
    keep = scores > threshold
    scores, query, cls = scores[keep], query[keep], cls[keep]
    if class_mapping is not None:
        mapping = torch.as_tensor(np.asarray(class_mapping), dtype=torch.int64, device=cls.device)
        in_range = cls < mapping.shape[0]
        mapped = torch.full_like(cls, -1)
        mapped[in_range] = mapping[cls[in_range]]
        keep = mapped >= 0
        scores, query, cls = scores[keep], query[keep], mapped[keep]
    elif num_classes is not None:
        keep = cls < num_classes
        scores, query, cls = scores[keep], query[keep], cls[keep]
    scores, query, cls = scores[:max_detections], query[:max_detections], cls[:max_detections]
    xyxy = boxes_to_frame(boxes_cxcywh.float()[query], frame_hw, geometry)
    return Selection(query=query, class_id=cls, confidence=scores, xyxy=xyxy)
