"""Sparse CPU postprocessing against the dense reference (and rfdetr's PostProcess).

Expected values always come from ``postprocess_reference`` (dense
``F.interpolate`` on the CPU), from rfdetr's ``PostProcess`` or from
supervision's own RLE encoder, never from the code under test. Masks are
compared crop by crop: the CompactMask crop must equal the reference inside
it, hold every reference pixel (same area) and be tight, and its runs must be
exactly what supervision's encoder writes for that crop.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import supervision as sv
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from supervision.detection.utils.converters import _mask_to_rle_counts

from inference_accel import dispatch
from inference_accel.flags import POSTPROC_NATIVE_FLAG as NATIVE_ENV
from inference_accel.flags import Flags
from inference_accel.postprocess import api
from inference_accel.postprocess.mask_geometry import mask_placement
from inference_accel.postprocess.reference import postprocess_reference, upsample_masks_dense
from inference_accel.postprocess import sparse_cpu
from inference_accel.postprocess.sparse_cpu import (
    FMA,
    PLAIN,
    axis_table,
    fma32,
    postprocess_sparse_cpu,
    sparse_masks,
    torch_cpu_arith,
    upsample_values,
)
from inference_accel.preprocess.geometry import plan_geometry


# -- both executors of the CPU path ---------------------------------------------------
@pytest.fixture(autouse=True, params=["native", "numpy"])
def executor(request, monkeypatch):
    """Every test runs with the compiled executor and with the numpy one."""
    monkeypatch.setenv(NATIVE_ENV, "true" if request.param == "native" else "false")
    if request.param == "native":
        assert sparse_cpu.native_reason() is None, sparse_cpu.native_reason()
    return request.param


def test_compiled_helper_is_built():
    """CI builds the helper; a missing one would silently test numpy twice."""
    assert sparse_cpu._sparse_native is not None, sparse_cpu._NATIVE_IMPORT_ERROR  # noqa: SLF001


def test_native_switch(monkeypatch, executor):
    assert (sparse_cpu.native_reason() is None) == (executor == "native")
    monkeypatch.setenv(NATIVE_ENV, "maybe")
    with pytest.raises(Exception, match=NATIVE_ENV):
        sparse_cpu.native_reason()


def test_executors_agree_on_many_random_windows():
    """Both executors on random windows with values at every scale, mixed bands everywhere."""
    rng = np.random.default_rng(21)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        frame_hw = (int(rng.integers(40, 700)), int(rng.integers(40, 700)))
        if trial % 4 == 1:  # identity axes (in == out): taps (i, i), weights (1, 0)
            frame_hw = (h, frame_hw[1]) if trial % 8 == 1 else (frame_hw[0], w)
        windows = rng.standard_normal((3, h, w)).astype(np.float32)
        windows *= np.float32(10.0) ** rng.integers(-40, 3, (3, h, w)).astype(np.float32)
        if trial % 3 == 2:  # a few infinities and NaNs
            spots = rng.random((3, h, w)) < 0.05
            windows[spots] = rng.choice(np.array([np.inf, -np.inf, np.nan], np.float32), int(spots.sum()))
        placement = mask_placement(None, (h, w), frame_hw)
        dense = upsample_masks_dense(torch.from_numpy(windows), placement, frame_hw).numpy()
        for native in (True, False):
            got = sparse_masks(windows, placement, frame_hw, torch_cpu_arith(), threads=1, native=native)
            assert_masks_match(got, dense)


# -- inputs ------------------------------------------------------------------------
def polygon_fill(rng, frame_hw, fill, vertices, touch_border=False):
    """A random star-shaped polygon covering about ``fill`` of the frame (uint8 0/1)."""
    fh, fw = frame_hw
    ang = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    rad = rng.uniform(0.55, 1.0, vertices)
    dang = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
    unit = 0.5 * np.sum(rad * np.roll(rad, -1) * np.sin(dang))
    r = np.sqrt(fill * fh * fw / max(unit, 1e-3))
    cx, cy = rng.uniform(0.3, 0.7) * fw, rng.uniform(0.3, 0.7) * fh
    pts = np.stack([cx + r * rad * np.cos(ang), cy + r * rad * np.sin(ang)], 1)
    if touch_border:
        pts[0] = (0, cy)
        pts[len(pts) // 2] = (fw - 1, fh - 1)
    out = np.zeros(frame_hw, np.uint8)
    cv2.fillPoly(out, [np.round(pts).astype(np.int32)], 1)
    return out


def polygon_logits(rng, n, mask_hw, frame_hw, fills=(0.05, 0.2, 0.5), vertices=(8, 600)):
    """Logits made from polygons drawn at frame size and area-downsampled."""
    out = np.empty((n, *mask_hw), np.float32)
    for i in range(n):
        fill = fills[i % len(fills)]
        v = int(rng.integers(vertices[0], vertices[1] + 1))
        poly = polygon_fill(rng, frame_hw, fill, v, touch_border=i % 4 == 3)
        frac = cv2.resize(poly.astype(np.float32), (mask_hw[1], mask_hw[0]), interpolation=cv2.INTER_AREA)
        out[i] = (frac - 0.5) * rng.uniform(4, 20) + rng.normal(0, 0.02, mask_hw)
    return out


def confident_logits(q, c, rng, classes_per_query=1):
    logits = np.full((q, c), -9.0, np.float32)
    for i in range(q):
        logits[i, rng.choice(c, classes_per_query, replace=False)] = rng.uniform(0.5, 6)
    return torch.from_numpy(logits)


def random_boxes(q, rng):
    return torch.from_numpy(np.clip(rng.random((q, 4)), 0.05, 0.95).astype(np.float32))


# -- comparison --------------------------------------------------------------------
def assert_masks_match(compact, dense):
    assert isinstance(compact, sv.CompactMask)
    assert len(compact) == len(dense)
    for i in range(len(dense)):
        crop = compact.crop(i)
        x1, y1 = (int(v) for v in compact.offsets[i])
        h, w = crop.shape
        area = int(dense[i].sum())
        if area == 0:
            assert not crop.any()
            continue
        np.testing.assert_array_equal(crop, dense[i][y1 : y1 + h, x1 : x1 + w])
        assert int(crop.sum()) == area
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
        np.testing.assert_array_equal(compact._rles[i], _mask_to_rle_counts(crop))  # noqa: SLF001


def assert_same_detections(got, ref):
    np.testing.assert_array_equal(got.xyxy, ref.xyxy)
    np.testing.assert_array_equal(got.confidence, ref.confidence)
    np.testing.assert_array_equal(got.class_id, ref.class_id)
    assert_masks_match(got.mask, ref.mask)


def run_both(logits, boxes, masks, frame_hw=None, geometry=None, **kw):
    ref = postprocess_reference(logits, boxes, masks, frame_hw, geometry=geometry, **kw)
    got = postprocess_sparse_cpu(logits, boxes, masks, frame_hw, geometry=geometry, **kw)
    assert_same_detections(got, ref)
    return got, ref


# -- the arithmetic ------------------------------------------------------------------
def test_fma32_is_correctly_rounded():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(20000).astype(np.float32)
    b = rng.standard_normal(20000).astype(np.float32)
    # c close to -a*b: heavy cancellation, where a double rounding would show.
    c = (-(a.astype(np.float64) * b) * (1 + rng.normal(0, 1e-7, 20000))).astype(np.float32)
    from fractions import Fraction

    got = fma32(a, b, c)
    for i in range(0, 20000, 37):  # exact rational arithmetic on a sample
        value = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        lo = np.float32(float(value))
        # the float32 nearest to value (ties to even) by exact comparison
        cands = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - value), int(np.array(v).view(np.int32)) & 1))
        assert got[i] == best or (got[i] == 0 and best == 0)


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [((78, 78), (1080, 1920)), ((78, 78), (1920, 1080)), ((13, 17), (100, 37)), ((192, 192), (100, 100)),
     ((44, 78), (1081, 1919)), ((7, 9), (8, 9)), ((78, 78), (40, 80)), ((5, 5), (3, 200))],
)
def test_values_bitwise_equal_torch_cpu(in_hw, out_hw):
    rng = np.random.default_rng(sum(in_hw) + sum(out_hw))
    window = rng.standard_normal(in_hw).astype(np.float32)
    window[rng.random(in_hw) < 0.5] *= np.float32(1e-5)  # values near zero
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(window)[None, None], size=out_hw, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    got = upsample_values(window, out_hw, torch_cpu_arith())
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


def test_the_two_orders_really_differ():
    """Tests can fail: the other order gives different bits (so the probe discriminates)."""
    rng = np.random.default_rng(3)
    window = rng.standard_normal((13, 17)).astype(np.float32)
    a, b = upsample_values(window, (100, 37), FMA), upsample_values(window, (100, 37), PLAIN)
    assert not np.array_equal(a, b)
    assert not np.array_equal(axis_table(17, 37, FMA).w1, axis_table(17, 37, PLAIN).w1)


# -- parity on many inputs --------------------------------------------------------------
@pytest.mark.parametrize(
    "frame_hw", [(312, 312), (1080, 1920), (1920, 1080), (333, 201), (720, 1281), (100, 100), (61, 77)]
)
def test_random_logits(frame_hw):
    rng = np.random.default_rng(frame_hw[0] * 7 + frame_hw[1])
    q = 12
    logits = torch.from_numpy(rng.standard_normal((q, 7)).astype(np.float32) * 3)
    masks = torch.from_numpy((rng.standard_normal((q, 24, 24)) - 0.7).astype(np.float32))
    got, ref = run_both(logits, random_boxes(q, rng), masks, frame_hw)
    assert len(ref) > 0


@pytest.mark.parametrize("frame_hw,mask_hw", [((1080, 1920), (78, 78)), ((1079, 1917), (78, 78)), ((1920, 1080), (96, 96)), ((100, 100), (192, 192))])
def test_structured_polygons(frame_hw, mask_hw):
    rng = np.random.default_rng(frame_hw[0] + mask_hw[0])
    q = 12
    masks = torch.from_numpy(polygon_logits(rng, q, mask_hw, frame_hw))
    got, ref = run_both(confident_logits(q, 5, rng), random_boxes(q, rng), masks, frame_hw)
    areas = ref.mask.reshape(q, -1).mean(1)
    assert areas.max() > 0.3 and areas.min() < 0.1  # the fills really vary


def test_one_pixel_objects_and_empty_masks():
    rng = np.random.default_rng(5)
    q = 6
    masks = np.full((q, 78, 78), -10.0, np.float32)
    masks[0, 40, 40] = 1.0  # positive only where the cell weighs > 0.9: a few pixels
    masks[0, 39:42, 39:42][masks[0, 39:42, 39:42] < 0] = -9.0
    masks[1, 0, 0] = 0.5  # corner cell
    masks[2, 77, 77] = 1e-30  # positive but tiny: products underflow
    masks[3, 10, 70] = 20.0
    # masks[4]: empty; masks[5]: exactly zero everywhere (0 > 0 is false)
    masks[5] = 0.0
    logits = torch.full((q, 3), -9.0)
    logits[:, 0] = torch.linspace(6, 1, q)  # detection i is query i
    got, ref = run_both(logits, random_boxes(q, rng), torch.from_numpy(masks), (1080, 1920))
    areas = ref.mask.reshape(q, -1).sum(1)
    assert areas[4] == areas[5] == 0 and 0 < areas[0] < 200 and areas[3] > 0
    assert tuple(got.mask.crop(4).shape) == (1, 1)


def test_nan_and_inf_logits():
    rng = np.random.default_rng(6)
    masks = rng.standard_normal((4, 20, 20)).astype(np.float32)
    masks[0, 5, 5] = np.nan
    masks[1, 6, 6] = np.inf
    masks[2, 7, 7] = -np.inf
    run_both(confident_logits(4, 3, rng), random_boxes(4, rng), torch.from_numpy(masks), (150, 170))


def test_seg_nano_shaped_outputs():
    rng = np.random.default_rng(7)
    q, c = 100, 91
    logits = torch.from_numpy(rng.standard_normal((q, c)).astype(np.float32) - 4)
    logits[:60, 1] = 3.0
    masks = torch.from_numpy(polygon_logits(rng, q, (78, 78), (312, 312)))
    for frame_hw in ((1080, 1920), (480, 640)):
        got, ref = run_both(logits, random_boxes(q, rng), masks, frame_hw)
        assert len(ref) >= 60


def test_8k_frame_crop_wise():
    """A few masks at 8K, compared one mask at a time (the dense reference is large)."""
    rng = np.random.default_rng(8)
    frame_hw = (4320, 7680)
    masks = torch.from_numpy(polygon_logits(rng, 2, (156, 156), (540, 960), fills=(0.02, 0.1)))
    logits = confident_logits(2, 3, rng)
    boxes = random_boxes(2, rng)
    got = postprocess_sparse_cpu(logits, boxes, masks, frame_hw)
    placement = mask_placement(None, (156, 156), frame_hw)
    for i in range(len(got)):
        q = int(torch.argsort(logits.sigmoid().reshape(-1), descending=True, stable=True)[i]) // 3
        dense = upsample_masks_dense(masks[q : q + 1], placement, frame_hw).numpy()
        assert_masks_match(got.mask[[i]], dense)


# -- selection semantics --------------------------------------------------------------
def test_query_with_several_classes_remap_drop_and_max_detections():
    rng = np.random.default_rng(9)
    q, c = 10, 6
    logits = confident_logits(q, c, rng, classes_per_query=2)
    masks = torch.from_numpy(polygon_logits(rng, q, (26, 26), (200, 300)))
    boxes = random_boxes(q, rng)
    got, ref = run_both(logits, boxes, masks, (200, 300))
    assert len({tuple(b) for b in ref.xyxy.tolist()}) < len(ref)  # a query appears with two classes
    mapping = np.array([3, -1, 0, 1, 4, 2])
    got, ref = run_both(logits, boxes, masks, (200, 300), class_mapping=mapping, max_detections=5)
    assert len(ref) == 5 and set(ref.class_id.tolist()) <= {0, 1, 2, 3, 4}
    run_both(logits, boxes, masks, (200, 300), num_classes=3, class_names=["a", "b", "c"])


def test_threshold_is_strict():
    logits = torch.full((3, 2), -9.0)
    logits[0, 0] = 0.0  # sigmoid(0) == 0.5 exactly
    logits[1, 1] = 1.0
    masks = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    boxes = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    got, ref = run_both(logits, boxes, masks, (40, 50), threshold=0.5)
    assert ref.class_id.tolist() == [1]


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
@pytest.mark.parametrize("frame_hw", [(1080, 1920), (1920, 1080), (333, 201)])
def test_letterbox_and_center_crop(mode, frame_hw):
    rng = np.random.default_rng(frame_hw[0] + len(mode))
    q = 8
    geometry = plan_geometry(frame_hw, (312, 312), mode)
    masks = torch.from_numpy(polygon_logits(rng, q, (78, 78), (312, 312)))
    run_both(confident_logits(q, 4, rng), random_boxes(q, rng), masks, geometry=geometry)


# -- against rfdetr ------------------------------------------------------------------
@pytest.mark.parametrize("frame_hw", [(1080, 1920), (331, 517)])
def test_sparse_equals_rfdetr_postprocess(frame_hw):
    from rfdetr.models.postprocess import PostProcess

    rng = np.random.default_rng(frame_hw[1])
    q, c = 30, 91
    logits = torch.from_numpy(rng.standard_normal((q, c)).astype(np.float32) - 3)
    logits[:, 5] += 5.0
    boxes = random_boxes(q, rng)
    masks = torch.from_numpy(polygon_logits(rng, q, (78, 78), frame_hw))
    outputs = {"pred_logits": logits[None], "pred_boxes": boxes[None], "pred_masks": masks[None]}
    theirs = PostProcess(num_select=q)(outputs, torch.tensor([frame_hw]), score_threshold=0.4)[0]
    ref = postprocess_reference(logits, boxes, masks, frame_hw)
    ours = postprocess_sparse_cpu(logits, boxes, masks, frame_hw)
    assert len(ours) == len(theirs["scores"]) == len(ref) > 0
    for det in (ref, ours):
        np.testing.assert_array_equal(det.confidence, theirs["scores"].numpy())
        np.testing.assert_array_equal(det.class_id, theirs["labels"].numpy())
        np.testing.assert_array_equal(det.xyxy, theirs["boxes"].numpy())
    np.testing.assert_array_equal(ref.mask, theirs["masks"][:, 0].numpy())
    assert_masks_match(ours.mask, theirs["masks"][:, 0].numpy())


# -- gate, flags, fallback -----------------------------------------------------------
def _tiny():
    rng = np.random.default_rng(11)
    q = 5
    return confident_logits(q, 3, rng), random_boxes(q, rng), torch.from_numpy(polygon_logits(rng, q, (20, 20), (90, 120)))


def test_api_uses_cpu_and_matches_reference():
    logits, boxes, masks = _tiny()
    geometry = plan_geometry((90, 120), (80, 80))
    det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags())
    assert used == "cpu"
    assert_same_detections(det, postprocess_reference(logits, boxes, masks, geometry=geometry))


def test_flag_forces_reference_with_the_same_output_type():
    logits, boxes, masks = _tiny()
    geometry = plan_geometry((90, 120), (80, 80))
    det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags(postproc_fast=False))
    assert used == "reference" and isinstance(det.mask, sv.CompactMask)
    assert_same_detections(det, postprocess_reference(logits, boxes, masks, geometry=geometry))
    reasons = {v.implementation.name: v.reason for v in api.describe(Flags(postproc_fast=False))}
    assert "INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED=false" in reasons["cpu"]
    assert reasons["reference"] is None


def test_env_flag_forces_reference(monkeypatch):
    monkeypatch.setenv("INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED", "false")
    logits, boxes, masks = _tiny()
    assert api.postprocess(logits, boxes, masks, plan_geometry((90, 120), (80, 80)))[1] == "reference"


def test_cpu_failure_disables_the_path_and_falls_back(monkeypatch, caplog):
    logits, boxes, masks = _tiny()
    geometry = plan_geometry((90, 120), (80, 80))

    def boom(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setitem(api.RUNNERS, "cpu", boom)
    det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags())
    assert used == "reference"
    reasons = {v.implementation.name: v.reason for v in api.describe(Flags())}
    assert "broken" in reasons["cpu"]
    assert_same_detections(det, postprocess_reference(logits, boxes, masks, geometry=geometry))


def test_unknown_arithmetic_gates_the_cpu_path(monkeypatch):
    from inference_accel.postprocess import sparse_cpu

    monkeypatch.setattr(sparse_cpu, "torch_cpu_arith", lambda: None)
    reasons = {v.implementation.name: v.reason for v in api.describe(Flags())}
    assert "matches neither" in reasons["cpu"]


def test_cpu_path_rejects_cuda_tensors_with_a_reason():
    logits, boxes, masks = _tiny()
    reason = api.INPUT_PRECONDITIONS["cpu"](logits, boxes, masks.to("meta"), plan_geometry((90, 120), (80, 80)))
    assert reason and "meta" in reason


def test_threads_give_the_same_result():
    rng = np.random.default_rng(12)
    masks = polygon_logits(rng, 16, (40, 40), (300, 500))
    placement = mask_placement(None, (40, 40), (300, 500))
    one = sparse_masks(masks, placement, (300, 500), torch_cpu_arith(), threads=1)
    two = sparse_masks(masks, placement, (300, 500), torch_cpu_arith(), threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one._rles, two._rles))  # noqa: SLF001
    assert dispatch.REFERENCE == "reference"


@pytest.mark.parametrize("below", [np.inf, -np.inf, np.nan])
def test_identity_axis_ignores_the_next_row(below):
    """in == out along y: torch's taps are (i, i) with weights (1, 0), so row i+1 never counts.

    Deriving the second tap as i + 1 would give ``A * 1 + B * 0`` = NaN when
    row i+1 holds inf or NaN (the compiled executor once did).
    """
    window = np.full((1, 100, 10), -1.0, np.float32)
    window[0, 50, 3] = 2.0
    window[0, 51, 3] = below
    window[0, 20:23, 5] = 0.5
    window[0, 23, 5] = below
    frame_hw = (100, 200)
    placement = mask_placement(None, (100, 10), frame_hw)
    dense = upsample_masks_dense(torch.from_numpy(window), placement, frame_hw).numpy()
    assert dense[0, 50].any()
    got = sparse_masks(window, placement, frame_hw, torch_cpu_arith(), threads=1)
    assert_masks_match(got, dense)


@settings(max_examples=60, deadline=None)
@given(
    mask_hw=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    frame_hw=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    mode=st.sampled_from(["stretch", "letterbox", "center-crop"]),
    scale_exp=st.integers(-42, 3),
    nonfinite=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_both_executors_equal_dense(mask_hw, frame_hw, mode, scale_exp, nonfinite, seed):
    """Any window size, frame size, resize mode and value scale: every pixel equals the dense reference."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((2, *mask_hw)) * 10.0**scale_exp).astype(np.float32)
    if nonfinite:
        spots = rng.random(logits.shape) < 0.1
        logits[spots] = rng.choice(np.array([np.inf, -np.inf, np.nan], np.float32), int(spots.sum()))
    geometry = plan_geometry(frame_hw, (mask_hw[0] * 4, mask_hw[1] * 4), mode)
    placement = mask_placement(geometry, mask_hw, frame_hw)
    dense = upsample_masks_dense(torch.from_numpy(logits), placement, frame_hw).numpy()
    (r0, r1), (c0, c1) = placement.rows, placement.cols
    windows = np.ascontiguousarray(logits[:, r0:r1, c0:c1])
    for native in (True, False):
        got = sparse_masks(windows, placement, frame_hw, torch_cpu_arith(), threads=1, native=native)
        assert_masks_match(got, dense)
