"""The response stage: detections -> the payload Roboflow's inference server returns.

The shape is inference-core 1.8.3's ``InstanceSegmentationInferenceResponse``
as ``model_dump(by_alias=True, exclude_none=True)`` writes it
(``inference/core/entities/responses/inference.py``; the models live in
roboflow-workflows' ``core_steps/common/segmentation_entities.py``)::

    {"image": {"width": W, "height": H},
     "predictions": [{"x", "y", "width", "height", "confidence", "class",
                      "class_id", "detection_id", "points": [{"x", "y"}, ...],
                      "mask_format": "polygon"}, ...]}

``x, y`` is the box centre, ``width, height`` its size, all from the box
corners as the server's adapter computes them (``(x1 + x2) / 2``...).
``points`` are exactly the server's: ``mask2poly`` on the dense mask, i.e.
the external contour with the most points (see
:func:`~inference_accel.masks.polygons.longest_polygon`), as float32 values;
an empty mask gives ``[]``. With ``mask_format="rle"`` a prediction carries
``"rle": {"size": [H, W], "counts": str}`` (COCO compressed RLE of the full
frame, what pycocotools encodes, computed from the crop runs) and
``"mask_format": "rle"`` instead of ``points``, the server's
``InstanceSegmentationRLEPrediction``.

Left out, as the server leaves them out when unset: ``inference_id``,
``time``, ``visualization``, ``resolved_model``, ``original_image``,
``mask_metadata`` (opt-in reduced mask grids, which we never produce),
``parent_id``, ``class_confidence``. ``frame_id`` is set when given.

>>> import numpy as np, supervision as sv
>>> dense = np.zeros((1, 4, 6), bool); dense[0, 1:3, 1:4] = True
>>> det = sv.Detections(xyxy=np.array([[1., 1., 4., 3.]]), confidence=np.array([0.5]),
...     class_id=np.array([2]), mask=sv.CompactMask.from_dense(dense, np.array([[1, 1, 3, 2]]), (4, 6)))
>>> payload = build_response(det)
>>> payload["image"], [payload["predictions"][0][k] for k in ("x", "y", "width", "height", "class")]
({'width': 6, 'height': 4}, [2.5, 2.0, 3.0, 2.0, '2'])
>>> payload["predictions"][0]["points"]
[{'x': 1.0, 'y': 1.0}, {'x': 1.0, 'y': 2.0}, {'x': 3.0, 'y': 2.0}, {'x': 3.0, 'y': 1.0}]
>>> import pycocotools.mask as mask_utils
>>> rle = build_response(det, mask_format="rle")["predictions"][0]["rle"]
>>> rle["counts"] == mask_utils.encode(np.asfortranarray(dense[0].astype(np.uint8)))["counts"].decode()
True
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import numpy as np
import supervision as sv

from inference_accel.arguments import check_choice
from inference_accel.errors import InvalidArgumentError, InvalidMaskError
from inference_accel.masks import polygons_native
from inference_accel.masks._runs import check_hw
from inference_accel.masks.coco_rle import to_coco_rle
from inference_accel.masks.polygons import longest_polygons

__all__ = ["MASK_FORMATS", "RESPONSE_FORMATS", "build_response", "response_json"]

#: The ``mask_format`` values: polygon points (Roboflow's default) or COCO RLE.
MASK_FORMATS = ("polygon", "rle")
#: How a pipeline hands the payload over: Python objects (build_response) or compact JSON bytes (response_json).
RESPONSE_FORMATS = ("dict", "json")


def _compact(detections: sv.Detections, image_hw: tuple[int, int]) -> sv.CompactMask:
    """The detections' masks as a CompactMask over ``image_hw``."""
    mask = detections.mask
    if isinstance(mask, sv.CompactMask):
        if tuple(int(v) for v in mask.shape[1:]) != image_hw:
            raise InvalidMaskError(f"masks cover {tuple(mask.shape[1:])} but image_hw is {image_hw}")
        return mask
    dense = np.asarray(mask)
    if dense.ndim != 3 or dense.shape[0] != len(detections) or dense.shape[1:] != image_hw:
        raise InvalidMaskError(
            f"masks must be a CompactMask or an (N, H, W) array with N = {len(detections)} and "
            f"(H, W) = {image_hw}, got shape {dense.shape}"
        )
    whole = np.tile(np.array([[0, 0, image_hw[1] - 1, image_hw[0] - 1]]), (len(detections), 1))
    return sv.CompactMask.from_dense(dense.astype(bool, copy=False), whole, image_hw)


def _points_numpy(polygon: np.ndarray) -> list[dict[str, float]]:
    """The reference: ``[{"x", "y"}, ...]`` of a (K, 2) int polygon, values as the server's float32 casts give them."""
    as_f32 = polygon.astype(np.float32)
    return [{"x": x, "y": y} for x, y in zip(as_f32[:, 0].tolist(), as_f32[:, 1].tolist())]


def _points_of(polygons: list[np.ndarray]) -> list[list[dict[str, float]]]:
    """Every polygon's points: the compiled helper when usable, else the reference."""
    if polygons_native.native_reason() is None:
        return polygons_native.points_dicts(polygons)
    return [_points_numpy(p) for p in polygons]


def build_response(
    detections: sv.Detections,
    image_hw: tuple[int, int] | None = None,
    *,
    mask_format: str = "polygon",
    frame_id: int | None = None,
    transposed_trace: bool = True,
    _polygons: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The Roboflow instance-segmentation payload of one frame's detections.

    Args:
        detections: boxes, confidences, class ids and masks (a CompactMask,
            or a dense (N, H, W) array); class names from
            ``detections.data["class_name"]`` when present, else the class id
            as a string (what the server writes for an unnamed class).
        image_hw: the frame's (H, W); default: the masks' image shape.
        mask_format: ``"polygon"`` (points) or ``"rle"`` (COCO RLE).
        frame_id: the frame's index in a video, written as ``frame_id``.
        transposed_trace: ``False`` forces the row-major contour path (see
            :func:`~inference_accel.masks.polygons.longest_polygon`).
        _polygons: internal (:func:`response_json`): polygons already known.

    Raises:
        InvalidArgumentError: an unknown ``mask_format``, detections without
            confidences or class ids, or no way to know the frame size.
        InvalidMaskError: detections without masks, or masks of another size.

    >>> import numpy as np, supervision as sv
    >>> build_response(sv.Detections.empty(), (2, 3))
    {'image': {'width': 3, 'height': 2}, 'predictions': []}
    """
    check_choice("mask_format", mask_format, MASK_FORMATS)
    if not isinstance(detections, sv.Detections):
        raise InvalidArgumentError(f"detections must be supervision Detections, got {type(detections).__name__}")
    if image_hw is None:
        if detections.mask is None:
            raise InvalidArgumentError("image_hw is required when the detections carry no masks")
        image_hw = tuple(int(v) for v in np.shape(detections.mask)[1:])
    image_hw = check_hw(image_hw, "image_hw")
    payload: dict[str, Any] = {"image": {"width": image_hw[1], "height": image_hw[0]}, "predictions": []}
    if frame_id is not None:
        payload["frame_id"] = int(frame_id)
    n = len(detections)
    if n == 0:
        return payload
    if detections.mask is None:
        raise InvalidMaskError("detections carry no masks; an instance-segmentation response needs them")
    if detections.confidence is None or detections.class_id is None:
        raise InvalidArgumentError("detections need confidences and class ids for a response")
    masks = _compact(detections, image_hw)
    if mask_format == "polygon":
        polygons = _polygons if _polygons is not None else longest_polygons(masks, transposed_trace=transposed_trace)
        shapes = [{"points": points, "mask_format": "polygon"} for points in _points_of(polygons)]
    else:
        shapes = [{"rle": {"size": r["size"], "counts": r["counts"].decode("ascii")}, "mask_format": "rle"}
                  for r in to_coco_rle(masks)]
    names = detections.data.get("class_name") if detections.data else None
    class_ids = [int(c) for c in detections.class_id.tolist()]
    confidences = [float(c) for c in detections.confidence.tolist()]
    boxes = [[float(v) for v in box] for box in detections.xyxy.tolist()]
    predictions = payload["predictions"]
    for i, ((x1, y1, x2, y2), confidence, class_id) in enumerate(zip(boxes, confidences, class_ids)):
        prediction = {
            "x": (x1 + x2) / 2.0,
            "y": (y1 + y2) / 2.0,
            "width": x2 - x1,
            "height": y2 - y1,
            "confidence": confidence,
            "class": str(names[i]) if names is not None else str(class_id),
            "class_id": class_id,
            "detection_id": str(uuid4()),
        }
        prediction.update(shapes[i])
        predictions.append(prediction)
    return payload


#: Fixed bytes around a point's two coordinates in compact JSON: ``{"x":X.0,"y":Y.0},``.
_POINT_HEAD = np.frombuffer(b'{"x":', np.uint8)
_POINT_MIDDLE = np.frombuffer(b'.0,"y":', np.uint8)
_POINT_TAIL = np.frombuffer(b'.0},', np.uint8)


def _points_json(polygons: list[np.ndarray]) -> list[bytes]:
    """Compact JSON of each polygon's ``points``: the compiled helper when usable, else the numpy pass."""
    if polygons_native.native_reason() is None:
        return polygons_native.points_json(polygons)
    return _points_json_numpy(polygons)


def _points_json_numpy(polygons: list[np.ndarray]) -> list[bytes]:
    """Compact JSON of each polygon's ``points`` list, brackets excluded, in one vectorised pass.

    Byte for byte what ``json.dumps(_points_numpy(p), separators=(",", ":"))[1:-1]``
    writes: the coordinates are non-negative integers below 2**31, whose
    float32 cast is an integer-valued float with the repr "<integer>.0". Each point is laid
    out in a fixed-width row (digits right-aligned), the unused leading digit
    cells and the last point's comma are zero bytes, and the zero bytes are
    dropped.
    """
    counts = np.array([len(p) for p in polygons], dtype=np.int64)
    if counts.sum() == 0:
        return [b""] * len(polygons)
    points = np.concatenate([p for p in polygons if len(p)]).astype(np.float32).astype(np.int64)
    top = int(points.max())
    width = len(str(top))
    n = points.shape[0]
    row = 5 + width + 7 + width + 4
    rows = np.zeros((n, row), dtype=np.uint8)
    rows[:, :5] = _POINT_HEAD
    rows[:, 5 + width : 12 + width] = _POINT_MIDDLE
    rows[:, row - 4 :] = _POINT_TAIL
    cells = np.arange(width)
    for start, values in ((5, points[:, 0]), (12 + width, points[:, 1])):
        rest = values.copy()
        for k in range(width - 1, -1, -1):
            rows[:, start + k] = 48 + rest % 10
            rest //= 10
        digits = np.ones(n, dtype=np.int64)
        power = 10
        while power <= top:
            digits += values >= power
            power *= 10
        block = rows[:, start : start + width]
        block[cells[None, :] < (width - digits)[:, None]] = 0
    ends = np.cumsum(counts)
    rows[ends[counts > 0] - 1, row - 1] = 0  # no comma after a polygon's last point
    kept = rows != 0
    text = rows[kept].tobytes()
    offsets = np.concatenate(([0], np.cumsum(kept.sum(axis=1))))[np.concatenate(([0], ends))].tolist()
    return [text[offsets[i] : offsets[i + 1]] for i in range(len(polygons))]


def response_json(
    detections: sv.Detections,
    image_hw: tuple[int, int] | None = None,
    *,
    mask_format: str = "polygon",
    frame_id: int | None = None,
    transposed_trace: bool = True,
) -> bytes:
    """:func:`build_response` serialised: compact JSON bytes, with the points written by numpy.

    Byte for byte ``json.dumps(build_response(...), separators=(",", ":")).encode()``
    (same arguments, same detection ids), without building a Python dict per
    point: the polygon points are formatted in one vectorised pass.

    >>> import numpy as np, supervision as sv
    >>> dense = np.zeros((1, 4, 6), bool); dense[0, 1:3, 1:4] = True
    >>> det = sv.Detections(xyxy=np.array([[1., 1., 4., 3.]]), confidence=np.array([0.5]),
    ...     class_id=np.array([2]), mask=sv.CompactMask.from_dense(dense, np.array([[1, 1, 3, 2]]), (4, 6)))
    >>> text = response_json(det)
    >>> json.loads(text)["predictions"][0]["points"][:2]
    [{'x': 1.0, 'y': 1.0}, {'x': 1.0, 'y': 2.0}]
    """
    if mask_format != "polygon" or len(detections) == 0:
        payload = build_response(
            detections, image_hw, mask_format=mask_format, frame_id=frame_id, transposed_trace=transposed_trace
        )
        return json.dumps(payload, separators=(",", ":")).encode()
    # The payload without points: build_response's checks and fields, with empty polygons.
    skeleton = build_response(
        detections, image_hw, mask_format=mask_format, frame_id=frame_id,
        transposed_trace=transposed_trace, _polygons=[np.empty((0, 2), np.int32)] * len(detections),
    )
    masks = _compact(detections, (skeleton["image"]["height"], skeleton["image"]["width"]))
    texts = _points_json(longest_polygons(masks, transposed_trace=transposed_trace))
    parts = []
    for prediction, points in zip(skeleton["predictions"], texts):
        head = {k: v for k, v in prediction.items() if k not in ("points", "mask_format")}
        parts.append(
            json.dumps(head, separators=(",", ":")).encode()[:-1]
            + b',"points":[' + points + b'],"mask_format":"polygon"}'
        )
    image = json.dumps(skeleton["image"], separators=(",", ":")).encode()
    tail = b"" if frame_id is None else b',"frame_id":' + json.dumps(skeleton["frame_id"]).encode()
    return b'{"image":' + image + b',"predictions":[' + b",".join(parts) + b"]" + tail + b"}"
