"""The compiled response helper (``masks/_polygons_native.c``) against its references.

- painting: ``polygons._paint_numpy`` (np.repeat of the runs), every byte;
- points JSON: ``json.dumps`` of the reference dicts (compact separators), and
  the numpy formatter, byte for byte;
- points dicts: ``response._points_numpy``, object for object (keys, order,
  float type and value);
- the switch and the fallback: the whole payload and its JSON bytes equal
  with the helper off, and ``native_reason`` says why.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import supervision as sv

from inference_accel.errors import FlagValueError
from inference_accel.masks import polygons, polygons_native
from inference_accel import response as response_module
from inference_accel.response import build_response, response_json

needs_helper = pytest.mark.skipif(
    polygons_native._polygons_native is None, reason="compiled helper not built (see test_helper_is_built)"
)


def test_helper_is_built():
    # The README's install builds it; a missing compiler must not hide here.
    assert polygons_native._IMPORT_ERROR is None
    assert polygons_native.native_reason({}) is None


def random_intervals(rng: np.random.Generator, total: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint, non-empty intervals inside [0, total)."""
    cells = rng.random(total) < density
    edges = np.flatnonzero(np.diff(np.concatenate(([0], cells.astype(np.int8), [0]))))
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


@needs_helper
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (3, 5), (64, 33), (480, 270), (1920, 1080)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 0.97, 1.0])
def test_painting_equals_the_numpy_painter(shape, density):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1] + int(density * 100))
    total = shape[0] * shape[1]
    starts, stops = random_intervals(rng, total, density)
    base = int(rng.integers(0, 10**6))  # the canvas is a window of the stream from base
    expected = polygons._paint_numpy(starts + base, stops + base, base, shape)
    canvas = np.full(shape, 7, np.uint8)  # stale bytes must be overwritten
    polygons_native.paint_intervals(starts + base, stops + base, base, canvas)
    np.testing.assert_array_equal(canvas, expected)


@needs_helper
@pytest.mark.parametrize(
    "starts,stops,message",
    [
        ([0, 5], [3], "differ in length"),
        ([0], [11], "outside the canvas"),
        ([-1], [2], "outside the canvas"),
        ([4], [4], "empty"),
        ([5, 1], [6, 2], "out of order"),
        ([0, 2], [3, 4], "out of order"),  # overlapping
    ],
)
def test_painting_rejects_bad_intervals(starts, stops, message):
    canvas = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match=message):
        polygons_native.paint_intervals(np.array(starts), np.array(stops), 0, canvas)


@needs_helper
def test_painting_rejects_wrong_buffers():
    with pytest.raises(ValueError, match="canvas: expected a C-contiguous uint8"):
        polygons_native._polygons_native.paint_intervals(
            np.array([0]), np.array([1]), 0, np.zeros(4, np.int32)
        )
    with pytest.raises(ValueError, match="starts: expected a C-contiguous int64"):
        polygons_native._polygons_native.paint_intervals(
            np.array([0], np.int32), np.array([1]), 0, np.zeros(4, np.uint8)
        )
    with pytest.raises(ValueError, match="not C-contiguous"):
        polygons_native._polygons_native.paint_intervals(
            np.array([0]), np.array([1]), 0, np.zeros(4, np.uint8)[::2]
        )
    with pytest.raises((TypeError, ValueError), match="writable|read-only"):
        readonly = np.zeros(4, np.uint8)
        readonly.flags.writeable = False
        polygons_native._polygons_native.paint_intervals(np.array([0]), np.array([1]), 0, readonly)


def random_polygons(seed: int) -> list[np.ndarray]:
    """Polygons of many lengths (empty included) with small, large and extreme coordinates."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(40):
        length = int(rng.choice([0, 1, 2, 4, 17, 300, 5000]))
        top = int(rng.choice([1, 10, 1920, 8192, 2**24 - 1, 2**31 - 1]))
        out.append(rng.integers(0, top, (length, 2), endpoint=True).astype(np.int32))
    out.append(np.array([[0, 0], [9, 10], [99, 100], [2**24, 2**24 + 1], [2**31 - 1, 2**25 + 3]], np.int32))
    return out


def reference_json(polygon: np.ndarray) -> bytes:
    return json.dumps(response_module._points_numpy(polygon), separators=(",", ":"))[1:-1].encode()


@needs_helper
@pytest.mark.parametrize("seed", range(6))
def test_points_json_is_json_dumps_byte_for_byte(seed):
    polygons_list = random_polygons(seed)
    got = polygons_native.points_json(polygons_list)
    assert got == [reference_json(p) for p in polygons_list]
    assert got == response_module._points_json_numpy(polygons_list)


@needs_helper
def test_points_json_of_negative_and_extreme_values():
    # Not frame pixels, but the helper must still write what json.dumps writes.
    polygon = np.array([[-1, -(2**31)], [2**31 - 1, -(2**24) - 1], [-16777217, 0]], np.int32)
    assert polygons_native.points_json([polygon]) == [reference_json(polygon)]
    assert polygons_native.points_json([]) == []


@needs_helper
@pytest.mark.parametrize("seed", range(3))
def test_points_dicts_equal_the_reference_objects(seed):
    polygons_list = random_polygons(seed) + [np.array([[-5, -(2**31)]], np.int32)]
    got = polygons_native.points_dicts(polygons_list)
    expected = [response_module._points_numpy(p) for p in polygons_list]
    assert got == expected
    for points, want in zip(got, expected):
        for point, reference in zip(points, want):
            assert list(point) == ["x", "y"]
            assert type(point["x"]) is float and type(point["y"]) is float
            assert (point["x"], point["y"]) == (reference["x"], reference["y"])


@needs_helper
def test_points_reject_inconsistent_counts():
    points = np.zeros((3, 2), np.int32)
    with pytest.raises(ValueError, match="counts sum to 4 points"):
        polygons_native._polygons_native.points_json(points, np.array([1, 3]))
    with pytest.raises(ValueError, match="negative"):
        polygons_native._polygons_native.points_dicts(points, np.array([4, -1]))
    with pytest.raises(ValueError, match="points: expected a C-contiguous int32"):
        polygons_native._polygons_native.points_json(points.astype(np.int64), np.array([3]))


def test_switch_and_bad_value():
    assert polygons_native.native_reason({"INFERENCE_ACCEL_RESPONSE_NATIVE": "false"}) == (
        "INFERENCE_ACCEL_RESPONSE_NATIVE=false"
    )
    with pytest.raises(FlagValueError, match="INFERENCE_ACCEL_RESPONSE_NATIVE"):
        polygons_native.native_reason({"INFERENCE_ACCEL_RESPONSE_NATIVE": "maybe"})


def _detections(h: int, w: int, seed: int) -> sv.Detections:
    rng = np.random.default_rng(seed)
    dense = np.stack([rng.random((h, w)) < p for p in (0.3, 0.7, 0.95)] + [np.zeros((h, w), bool)])
    dense[1, : h // 2, : w // 3] = True  # a solid block inside the noise
    boxes = np.tile(np.array([[0, 0, w - 1, h - 1]]), (len(dense), 1))
    return sv.Detections(
        xyxy=boxes.astype(float),
        confidence=rng.random(len(dense)),
        class_id=np.arange(len(dense)),
        mask=sv.CompactMask.from_dense(dense, boxes, (h, w)),
    )


@pytest.mark.parametrize("h,w", [(1, 1), (5, 9), (61, 47), (240, 320)])
def test_payload_is_the_same_with_the_helper_off(monkeypatch, h, w):
    det = _detections(h, w, seed=h + w)

    def outputs() -> tuple[dict, bytes]:
        counter = iter(range(10**6))
        monkeypatch.setattr(response_module, "uuid4", lambda: uuid.UUID(int=next(counter)))
        payload = build_response(det)
        counter = iter(range(10**6))
        return payload, response_json(det)

    monkeypatch.delenv("INFERENCE_ACCEL_RESPONSE_NATIVE", raising=False)
    fast = outputs()
    monkeypatch.setenv("INFERENCE_ACCEL_RESPONSE_NATIVE", "false")
    assert polygons_native.native_reason() == "INFERENCE_ACCEL_RESPONSE_NATIVE=false"
    reference = outputs()
    assert fast[0] == reference[0]
    assert fast[1] == reference[1]
    assert json.loads(fast[1]) == fast[0]
