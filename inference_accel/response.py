"""The response stage: detections -> the JSON payload an inference server returns.

Each detection becomes ``{x1, y1, x2, y2, confidence, class_id, class_name,
points}`` where ``points`` is the mask's largest external contour in frame
pixels, computed sparsely (only the mask's crop is painted, see
:mod:`inference_accel.masks.polygons`).

>>> import numpy as np, supervision as sv
>>> det = sv.Detections(xyxy=np.array([[1., 1., 3., 3.]]), confidence=np.array([0.9]),
...                     class_id=np.array([0]))
>>> detections_to_response(det)[0]["class_id"]
0
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from inference_accel.masks.polygons import masks_to_polygons


def detections_to_response(detections: sv.Detections) -> list[dict]:
    names = detections.data.get("class_name") if detections.data else None
    polygons = masks_to_polygons(detections.mask, "largest") if detections.mask is not None else None
    payload = []
    for i in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        item = {
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "confidence": float(detections.confidence[i]) if detections.confidence is not None else None,
            "class_id": int(detections.class_id[i]) if detections.class_id is not None else None,
            "class_name": str(names[i]) if names is not None else None,
        }
        if polygons is not None:
            item["points"] = np.asarray(polygons[i]).reshape(-1, 2).tolist()
        payload.append(item)
    return payload
