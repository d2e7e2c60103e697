"""Dense reference postprocessing: what every fast path must equal.

Selection as in :mod:`~inference_accel.postprocess.selection`; masks gathered
by query, ``F.interpolate(bilinear, align_corners=False)`` to the frame (or
the placement window, see :mod:`~inference_accel.postprocess.mask_geometry`)
and thresholded at ``> 0``, exactly rfdetr's ``PostProcess``. It builds the
dense (N, H, W) mask, which is what makes it slow at high resolution.

>>> import torch
>>> logits = torch.full((2, 3), -9.0); logits[0, 2] = 3.0
>>> boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2)
>>> masks = torch.ones(2, 4, 4)
>>> det = postprocess_reference(logits, boxes, masks, frame_hw=(8, 8))
>>> det.class_id.tolist(), det.mask.shape, int(det.mask.sum())
([2], (1, 8, 8), 64)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import supervision as sv
import torch
import torch.nn.functional as F

from inference_accel.postprocess.mask_geometry import MaskPlacement, mask_placement
from inference_accel.postprocess.selection import Selection, select_detections
from inference_accel.preprocess.geometry import Geometry

MASK_CHUNK = 32  # masks upsampled per F.interpolate call (bounds peak memory)


def upsample_masks_dense(
    mask_logits: torch.Tensor, placement: MaskPlacement, frame_hw: tuple[int, int]
) -> torch.Tensor:
    """(N, Hm, Wm) logits -> (N, H, W) bool frame masks, the reference way."""
    n = mask_logits.shape[0]
    fh, fw = frame_hw
    out = torch.zeros((n, fh, fw), dtype=torch.bool, device=mask_logits.device)
    if n == 0:
        return out
    r0, r1 = placement.rows
    c0, c1 = placement.cols
    window = mask_logits[:, r0:r1, c0:c1].float()
    oh, ow = placement.out_hw
    top, left = placement.top_left
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + oh, fh), min(left + ow, fw)
    for start in range(0, n, MASK_CHUNK):
        up = F.interpolate(
            window[start : start + MASK_CHUNK].unsqueeze(1),
            size=(oh, ow),
            mode="bilinear",
            align_corners=False,
        )[:, 0]
        out[start : start + MASK_CHUNK, y0:y1, x0:x1] = (
            up[:, y0 - top : y1 - top, x0 - left : x1 - left] > 0.0
        )
    return out


def selection_to_detections(
    selection: Selection,
    mask: object,
    class_names: Sequence[str] | None,
) -> sv.Detections:
    """Wrap a selection and its masks (dense array or CompactMask) as ``sv.Detections``."""
    class_id = selection.class_id.cpu().numpy().astype(int)
    data = {}
    if class_names is not None:
        data["class_name"] = np.array(
            [class_names[c] if 0 <= c < len(class_names) else str(c) for c in class_id],
            dtype=object if len(class_id) == 0 else None,
        )
    return sv.Detections(
        xyxy=selection.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4),
        confidence=selection.confidence.cpu().numpy().astype(np.float32),
        class_id=class_id,
        mask=mask,
        data=data,
    )


def postprocess_reference(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    mask_logits: torch.Tensor,
    frame_hw: tuple[int, int] | None = None,
    *,
    geometry: Geometry | None = None,
    threshold: float = 0.4,
    max_detections: int = 300,
    class_mapping: np.ndarray | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> sv.Detections:
    """One image's raw outputs -> ``sv.Detections`` with a dense (N, H, W) bool mask.

    ``logits``: (Q, C); ``boxes_cxcywh``: (Q, 4) normalised; ``mask_logits``:
    (Q, Hm, Wm). ``frame_hw`` defaults to ``geometry.frame_hw``.
    """
    if frame_hw is None:
        if geometry is None:
            raise ValueError("give frame_hw or geometry")
        frame_hw = geometry.frame_hw
    frame_hw = (int(frame_hw[0]), int(frame_hw[1]))
    selection = select_detections(
        logits,
        boxes_cxcywh,
        frame_hw,
        threshold=threshold,
        max_detections=max_detections,
        class_mapping=class_mapping,
        num_classes=num_classes,
        geometry=geometry,
    )
    placement = mask_placement(geometry, mask_logits.shape[-2:], frame_hw)
    masks = upsample_masks_dense(mask_logits.index_select(0, selection.query), placement, frame_hw)
    return selection_to_detections(selection, masks.cpu().numpy(), class_names)
