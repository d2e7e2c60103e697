"""The response payload: Roboflow's schema, its points equal the server's dense path, RLE decodes exactly.

The reference for ``points`` is inference-core 1.8.3's ``mask2poly``
(``inference/core/utils/postprocess.py``), restated here from its definition:
``cv2.findContours(dense_uint8, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`` on the
whole frame, the contour with the most points (``argmax`` of the lengths: the
first on ties), as float32; an empty mask gives no points. The pydantic models
restate inference-core's response models (``InstanceSegmentationPrediction``,
``InstanceSegmentationRLEPrediction``, ``InstanceSegmentationInferenceResponse``
from roboflow-workflows' ``segmentation_entities.py`` and
``inference_response_entities.py``, which inference-core re-exports).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import List, Literal, Optional, Union

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from inference_accel import dispatch
from inference_accel.errors import InvalidArgumentError, InvalidMaskError
from inference_accel.masks import polygons
from inference_accel.masks.polygons import longest_polygon
from inference_accel import response as response_module
from inference_accel.response import MASK_FORMATS, build_response, response_json


# -- the server's definitions, restated ----------------------------------------
def server_points(dense: np.ndarray) -> np.ndarray:
    """inference-core's ``masks2poly`` for one (H, W) mask."""
    mask = np.ascontiguousarray(dense.astype(bool)).view(np.uint8)
    if not np.any(mask):
        return np.zeros((0, 2), dtype=np.float32)
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return np.zeros((0, 2), dtype=np.float32)
    longest = contours[np.array([len(x) for x in contours]).argmax()]
    return np.array(longest).reshape(-1, 2).astype("float32")


class Point(BaseModel):
    x: float
    y: float


class InstanceSegmentationBasePrediction(BaseModel):
    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_name: str = Field(alias="class")
    class_id: int
    detection_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    parent_id: Optional[str] = None


class InstanceSegmentationPrediction(InstanceSegmentationBasePrediction):
    class_confidence: Union[float, None] = None
    points: List[Point]
    mask_format: Literal["polygon"] = "polygon"


class InstanceSegmentationRLEPrediction(InstanceSegmentationBasePrediction):
    rle: dict
    mask_format: Literal["rle"] = "rle"


class InferenceResponseImage(BaseModel):
    width: int
    height: int


class InstanceSegmentationInferenceResponse(BaseModel):
    inference_id: Optional[str] = None
    frame_id: Optional[int] = None
    time: Optional[float] = None
    visualization: Optional[str] = None
    predictions: List[Union[InstanceSegmentationPrediction, InstanceSegmentationRLEPrediction]]
    image: Union[List[InferenceResponseImage], InferenceResponseImage]


# -- masks ----------------------------------------------------------------------
def _blob(rng, h, w):
    """A ragged filled shape: random polygon, dilated noise or an ellipse."""
    mask = np.zeros((h, w), np.uint8)
    kind = rng.integers(3)
    if kind == 0:
        pts = np.stack([rng.integers(-2, w + 2, 7), rng.integers(-2, h + 2, 7)], axis=1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif kind == 1:
        mask = (rng.random((h, w)) < 0.08).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
    else:
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1)))
        cv2.ellipse(mask, centre, axes, float(rng.integers(180)), 0, 360, 1, -1)
    return mask.astype(bool)


def structured_masks(h: int, w: int, seed: int) -> np.ndarray:
    """Random, ragged, holed, multi-component, tied, edge-touching, 1-pixel, empty and full masks."""
    rng = np.random.default_rng(seed)
    out = [
        rng.random((h, w)) < 0.5,  # noise: many components, pinches, single pixels
        rng.random((h, w)) < 0.9,
        _blob(rng, h, w),
        _blob(rng, h, w) | _blob(rng, h, w),
        np.zeros((h, w), bool),  # empty
        np.ones((h, w), bool),  # full frame: touches every edge
    ]
    one = np.zeros((h, w), bool)
    one[rng.integers(h), rng.integers(w)] = True
    out.append(one)
    corner = np.zeros((h, w), bool)
    corner[-1, -1] = True
    out.append(corner)
    if h >= 5 and w >= 5:
        holed = np.zeros((h, w), bool)
        holed[1:-1, 1:-1] = True
        holed[2:-2, 2:-2] = False
        holed[h // 2, w // 2] = True  # an island in the hole: not external
        out.append(holed)
        edges = np.zeros((h, w), bool)
        edges[0, :] = edges[:, 0] = edges[-1, : w // 2] = edges[h // 3 :, -1] = True
        out.append(edges)
    if h >= 3 and w >= 9:
        tied = np.zeros((h, w), bool)  # two equal rectangles: the tie goes to findContours' first
        tied[0:2, 0:3] = tied[h - 2 : h, w - 3 : w] = True
        out.append(tied)
        diag = np.zeros((h, w), bool)  # 8-connected staircase and a pinch
        for i in range(min(h, w)):
            diag[i, i] = True
        diag[0, 2] = diag[1, 3] = True
        out.append(diag)
    return np.stack(out)


def compact(dense: np.ndarray, rng: np.random.Generator) -> sv.CompactMask:
    """A CompactMask of ``dense`` whose crops are the tight boxes grown by a random margin."""
    n, h, w = dense.shape
    boxes = []
    for m in dense:
        ys, xs = np.nonzero(m)
        if xs.size == 0:
            x0, y0 = int(rng.integers(w)), int(rng.integers(h))
            boxes.append([x0, y0, x0, y0])
            continue
        grow = rng.integers(0, 4, 4)
        boxes.append([
            max(xs.min() - grow[0], 0), max(ys.min() - grow[1], 0),
            min(xs.max() + grow[2], w - 1), min(ys.max() + grow[3], h - 1),
        ])
    cm = sv.CompactMask.from_dense(dense, np.array(boxes, dtype=np.float32), (h, w))
    assert np.array_equal(cm.to_dense(), dense)
    return cm


def detections_of(dense: np.ndarray, seed: int = 0, names: bool = True) -> sv.Detections:
    rng = np.random.default_rng(seed)
    n, h, w = dense.shape
    x1 = rng.uniform(0, w, n).astype(np.float32)
    y1 = rng.uniform(0, h, n).astype(np.float32)
    xyxy = np.stack([x1, y1, x1 + rng.uniform(0, w, n), y1 + rng.uniform(0, h, n)], axis=1).astype(np.float32)
    data = {"class_name": np.array([f"class-{i % 3}" for i in range(n)])} if names else {}
    return sv.Detections(
        xyxy=xyxy,
        confidence=rng.uniform(0.4, 1.0, n).astype(np.float32),
        class_id=rng.integers(0, 90, n),
        mask=compact(dense, rng),
        data=data,
    )


SIZES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 9), (17, 4), (37, 53), (64, 64), (120, 91), (200, 331)]


# -- points ---------------------------------------------------------------------
@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("transposed", [True, False])
def test_points_equal_the_server_dense_path(h, w, transposed):
    dense = structured_masks(h, w, seed=h * 1000 + w)
    det = detections_of(dense, seed=h + w)
    payload = build_response(det, transposed_trace=transposed)
    assert len(payload["predictions"]) == len(dense)
    for prediction, mask in zip(payload["predictions"], dense):
        expected = server_points(mask)
        got = np.array([[p["x"], p["y"]] for p in prediction["points"]], dtype=np.float64).reshape(-1, 2)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected.astype(np.float64))
        assert all(type(p["x"]) is float and type(p["y"]) is float for p in prediction["points"])


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    density=st.sampled_from([0.1, 0.4, 0.6, 0.85]),
    seed=st.integers(0, 2**32 - 1),
)
def test_points_on_random_noise_masks(h, w, density, seed):
    rng = np.random.default_rng(seed)
    dense = rng.random((3, h, w)) < density
    dense[1] = cv2.morphologyEx(dense[1].astype(np.uint8), cv2.MORPH_CLOSE, np.ones((2, 2), np.uint8)).astype(bool)
    cm = compact(dense, rng)
    for i, mask in enumerate(dense):
        expected = server_points(mask)
        np.testing.assert_array_equal(longest_polygon(cm, i).astype(np.float32), expected)
        coco = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        np.testing.assert_array_equal(longest_polygon(coco).astype(np.float32), expected)


def test_offset_crops_in_a_large_frame():
    """Masks far from the origin of a 1080p frame: the offsets survive the transposed trace."""
    rng = np.random.default_rng(7)
    dense = np.zeros((4, 1080, 1920), bool)
    dense[0, 900:1080, 1700:1920] = rng.random((180, 220)) < 0.7
    dense[1, 3:40, 1000:1010] = True
    dense[2] = _blob(rng, 1080, 1920)
    dense[3, 500, 1919] = True
    det = detections_of(dense, seed=3)
    for prediction, mask in zip(build_response(det)["predictions"], dense):
        got = np.array([[p["x"], p["y"]] for p in prediction["points"]], dtype=np.float32).reshape(-1, 2)
        np.testing.assert_array_equal(got, server_points(mask))


def test_dense_mask_input_gives_the_same_payload_shapes():
    dense = structured_masks(23, 31, seed=5)
    det = detections_of(dense, seed=5)
    dense_det = sv.Detections(xyxy=det.xyxy, confidence=det.confidence, class_id=det.class_id, mask=dense, data=det.data)
    a, b = build_response(det), build_response(dense_det)
    assert [p["points"] for p in a["predictions"]] == [p["points"] for p in b["predictions"]]


# -- schema -----------------------------------------------------------------------
def test_schema_centres_and_names():
    dense = structured_masks(30, 40, seed=11)
    det = detections_of(dense, seed=11)
    payload = build_response(det, frame_id=17)
    assert list(payload) == ["image", "predictions", "frame_id"]
    assert payload["image"] == {"width": 40, "height": 30}
    assert payload["frame_id"] == 17
    ids = set()
    for i, prediction in enumerate(payload["predictions"]):
        assert list(prediction) == [
            "x", "y", "width", "height", "confidence", "class", "class_id", "detection_id", "points", "mask_format",
        ]
        x1, y1, x2, y2 = (float(v) for v in det.xyxy[i])
        assert prediction["x"] == (x1 + x2) / 2.0 and prediction["y"] == (y1 + y2) / 2.0
        assert prediction["width"] == x2 - x1 and prediction["height"] == y2 - y1
        assert prediction["confidence"] == float(det.confidence[i])
        assert prediction["class_id"] == int(det.class_id[i]) and type(prediction["class_id"]) is int
        assert prediction["class"] == f"class-{i % 3}"
        assert prediction["mask_format"] == "polygon"
        assert str(uuid.UUID(prediction["detection_id"])) == prediction["detection_id"]
        ids.add(prediction["detection_id"])
    assert len(ids) == len(dense)


def test_unnamed_classes_are_their_id_as_text():
    det = detections_of(structured_masks(6, 7, seed=1), names=False)
    assert [p["class"] for p in build_response(det)["predictions"]] == [str(int(c)) for c in det.class_id]


def test_empty_detections_and_empty_masks():
    assert build_response(sv.Detections.empty(), (4, 5)) == {"image": {"width": 5, "height": 4}, "predictions": []}
    det = detections_of(np.zeros((2, 6, 6), bool))
    assert [p["points"] for p in build_response(det)["predictions"]] == [[], []]
    rles = [p["rle"] for p in build_response(det, mask_format="rle")["predictions"]]
    assert [mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}).any() for r in rles] == [False, False]


@pytest.mark.parametrize("h,w", SIZES)
def test_rle_decodes_to_the_exact_mask(h, w):
    dense = structured_masks(h, w, seed=h + 7 * w)
    det = detections_of(dense, seed=w)
    payload = build_response(det, mask_format="rle")
    for prediction, mask in zip(payload["predictions"], dense):
        assert "points" not in prediction and prediction["mask_format"] == "rle"
        rle = prediction["rle"]
        assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        np.testing.assert_array_equal(decoded.astype(bool), mask)
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


@pytest.mark.parametrize("mask_format", MASK_FORMATS)
def test_pydantic_round_trip(mask_format):
    dense = structured_masks(25, 33, seed=4)
    payload = build_response(detections_of(dense, seed=4), mask_format=mask_format)
    model = InstanceSegmentationInferenceResponse.model_validate(payload)
    expected_type = InstanceSegmentationPrediction if mask_format == "polygon" else InstanceSegmentationRLEPrediction
    assert all(type(p) is expected_type for p in model.predictions)
    assert model.model_dump(by_alias=True, exclude_none=True) == payload
    again = InstanceSegmentationInferenceResponse.model_validate_json(model.model_dump_json(by_alias=True))
    assert again.model_dump(by_alias=True, exclude_none=True) == payload


@pytest.mark.parametrize("h,w", SIZES + [(1080, 1920)])
@pytest.mark.parametrize("mask_format", MASK_FORMATS)
def test_response_json_is_json_dumps_of_the_payload_byte_for_byte(monkeypatch, h, w, mask_format):
    dense = structured_masks(h, w, seed=3 * h + w) if h < 1000 else np.stack(
        [_blob(np.random.default_rng(i), h, w) for i in range(3)] + [np.zeros((h, w), bool)]
    )
    det = detections_of(dense, seed=h, names=h % 2 == 0)
    if h % 3 == 0:
        det.data = {"class_name": np.array(["é ü 名", 'quo"te\\'] * len(dense))[: len(dense)]}

    def deterministic_ids():
        counter = iter(range(10**6))
        monkeypatch.setattr(response_module, "uuid4", lambda: uuid.UUID(int=next(counter)))

    for frame_id in (None, 12):
        deterministic_ids()
        expected = json.dumps(build_response(det, mask_format=mask_format, frame_id=frame_id), separators=(",", ":"))
        deterministic_ids()
        assert response_json(det, mask_format=mask_format, frame_id=frame_id) == expected.encode()
    assert response_json(sv.Detections.empty(), (3, 4)) == b'{"image":{"width":4,"height":3},"predictions":[]}'


# -- bad input ----------------------------------------------------------------------
def test_bad_input_names_the_problem():
    det = detections_of(structured_masks(6, 7, seed=2))
    with pytest.raises(InvalidArgumentError, match="mask_format"):
        build_response(det, mask_format="bitmap")
    with pytest.raises(InvalidArgumentError, match="Detections"):
        build_response([det])
    with pytest.raises(InvalidMaskError, match="image_hw"):
        build_response(det, (6, 8))
    no_masks = sv.Detections(xyxy=det.xyxy, confidence=det.confidence, class_id=det.class_id)
    with pytest.raises(InvalidArgumentError, match="image_hw is required"):
        build_response(no_masks)
    with pytest.raises(InvalidMaskError, match="no masks"):
        build_response(no_masks, (6, 7))
    no_conf = sv.Detections(xyxy=det.xyxy, class_id=det.class_id, mask=det.mask)
    with pytest.raises(InvalidArgumentError, match="confidences"):
        build_response(no_conf)
    with pytest.raises(InvalidMaskError, match=r"\(N, H, W\)"):
        build_response(sv.Detections(xyxy=det.xyxy, confidence=det.confidence, class_id=det.class_id,
                                     mask=np.zeros((len(det), 6, 8), bool)), (6, 7))


def test_bad_mask_sources_name_the_problem():
    cm = compact(structured_masks(5, 9, seed=1), np.random.default_rng(1))
    with pytest.raises(InvalidMaskError, match="CompactMask or a COCO RLE"):
        longest_polygon(np.zeros((5, 9), bool))
    with pytest.raises(InvalidMaskError, match="needs the mask index"):
        longest_polygon(cm)
    with pytest.raises(InvalidMaskError, match="out of range"):
        longest_polygon(cm, len(cm))
    with pytest.raises(InvalidMaskError, match="CompactMask"):
        polygons.longest_polygons([cm])
    with pytest.raises(InvalidMaskError, match="sum to"):
        longest_polygon({"size": [3, 3], "counts": [4, 4]})


# -- the fallback -----------------------------------------------------------------------
def test_fallback_when_the_self_check_fails_warns_once_and_stays_exact(monkeypatch, caplog):
    dense = structured_masks(19, 27, seed=9)
    det = detections_of(dense, seed=9)
    monkeypatch.setattr(polygons, "_transposed_state", {"reason": "simulated mismatch", "descending": True})
    dispatch.reset_runtime_state()
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        first = build_response(det)
        build_response(det)
    warnings = [r for r in caplog.records if "simulated mismatch" in r.getMessage()]
    assert len(warnings) == 1 and "row-major" in warnings[0].getMessage()
    for prediction, mask in zip(first["predictions"], dense):
        got = np.array([[p["x"], p["y"]] for p in prediction["points"]], dtype=np.float32).reshape(-1, 2)
        np.testing.assert_array_equal(got, server_points(mask))
    dispatch.reset_runtime_state()


# -- the pipeline's response stage --------------------------------------------------------
def test_pipeline_response_stage_emits_the_payload(tmp_path):
    from inference_accel.flags import Flags
    from inference_accel.pipeline import SegmentationPipeline
    from tests.helpers_onnx import write_tiny_seg_model

    model = str(write_tiny_seg_model(tmp_path / "tiny.onnx", size=64, queries=10))
    with pytest.raises(InvalidArgumentError, match="mask_format"):
        SegmentationPipeline(model, flags=Flags(), mask_format="png")
    frame = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    results = {}
    for mask_format in MASK_FORMATS:
        pipeline = SegmentationPipeline(model, flags=Flags(), threshold=0.0, mask_format=mask_format)
        results[mask_format] = next(iter(pipeline.run([frame])))
    polygon, rle = results["polygon"], results["rle"]
    assert polygon.response["image"] == {"width": 90, "height": 70} and polygon.response["frame_id"] == 0
    assert len(polygon.response["predictions"]) == len(polygon.detections) > 0
    assert "response" in polygon.times_ms
    dense = polygon.detections.mask.to_dense()
    for prediction, mask in zip(polygon.response["predictions"], dense):
        got = np.array([[p["x"], p["y"]] for p in prediction["points"]], dtype=np.float32).reshape(-1, 2)
        np.testing.assert_array_equal(got, server_points(mask))
    for prediction, mask in zip(rle.response["predictions"], rle.detections.mask.to_dense()):
        decoded = mask_utils.decode({"size": prediction["rle"]["size"], "counts": prediction["rle"]["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), mask)


@pytest.mark.parametrize("mask_format", MASK_FORMATS)
def test_pipeline_json_responses_are_the_payload_serialised(tmp_path, monkeypatch, mask_format):
    from inference_accel.flags import Flags
    from inference_accel.pipeline import SegmentationPipeline
    from tests.helpers_onnx import write_tiny_seg_model

    model = str(write_tiny_seg_model(tmp_path / "tiny.onnx", size=64, queries=10))
    with pytest.raises(InvalidArgumentError, match="response_format"):
        SegmentationPipeline(model, flags=Flags(), response_format="msgpack")
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (70 + 9 * i, 90, 3), dtype=np.uint8) for i in range(3)]
    outputs = {}
    for response_format in ("dict", "json"):
        counter = iter(range(10**6))
        monkeypatch.setattr(response_module, "uuid4", lambda: uuid.UUID(int=next(counter)))
        pipeline = SegmentationPipeline(
            model, flags=Flags(), threshold=0.0, mask_format=mask_format, response_format=response_format
        )
        outputs[response_format] = [r.response for r in pipeline.run(iter(frames))]
    assert all(isinstance(r, bytes) for r in outputs["json"])
    assert sum(len(r["predictions"]) for r in outputs["dict"]) > 0
    assert [r["frame_id"] for r in outputs["dict"]] == [0, 1, 2]
    assert outputs["json"] == [json.dumps(r, separators=(",", ":")).encode() for r in outputs["dict"]]


def test_an_unmappable_trace_falls_back_for_that_mask(monkeypatch, caplog):
    dense = structured_masks(12, 14, seed=3)
    det = detections_of(dense, seed=3)

    def unmappable(*_args):
        raise polygons._UnmappableTrace("simulated")

    monkeypatch.setattr(polygons, "_longest_transposed", unmappable)
    dispatch.reset_runtime_state()
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        payload = build_response(det)
    assert sum("could not be mapped back (simulated)" in r.getMessage() for r in caplog.records) == 1
    for prediction, mask in zip(payload["predictions"], dense):
        got = np.array([[p["x"], p["y"]] for p in prediction["points"]], dtype=np.float32).reshape(-1, 2)
        np.testing.assert_array_equal(got, server_points(mask))
    dispatch.reset_runtime_state()


def test_self_check_passes_on_this_opencv():
    assert polygons.transposed_trace_reason() is None
