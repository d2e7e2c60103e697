"""Package image steps, each against an independent implementation, on extreme sizes; fast == reference after them."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv
import torch

from inference_accel.errors import InvalidFrameError
from inference_accel.flags import Flags
from inference_accel.preprocess.api import preprocess_into
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.package_steps import (
    PackageGeometry,
    PackageSteps,
    apply_contrast,
    apply_exif_orientation,
    center_crop_first_step,
    grayscale_bgr,
    letterbox_first_step,
    prepared_boxes,
    static_crop_window,
)
from inference_accel.preprocess.reference import preprocess_reference

SIZES = [(1, 1), (1, 7), (9, 1), (2, 3), (17, 31), (31, 17), (200, 3), (3, 200), (64, 48)]


def _frame(hw, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


@pytest.mark.parametrize("hw", SIZES)
def test_grayscale_is_opencvs_mix_on_three_channels(hw):
    """Stock defines the step as OpenCV's BGR2GRAY: bytes equal to it, within 1 of the 14-bit formula
    (OpenCV's vector code rounds a few pixels the other way), each of the three channels the same."""
    import cv2

    frame = _frame(hw)
    b, g, r = (frame[..., i].astype(np.int64) for i in range(3))
    formula = (b * 1868 + g * 9617 + r * 4899 + (1 << 13)) >> 14  # ITU-R 601 weights, 14-bit fixed point
    got = grayscale_bgr(frame)
    assert got.shape == frame.shape and got.dtype == np.uint8
    assert np.abs(got[..., 0].astype(np.int64) - formula).max() <= 1
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("hw", [(1, 1), (7, 3), (100, 100), (1080, 1920), (3, 1000)])
@pytest.mark.parametrize("percent", [(0, 100, 0, 100), (10, 60, 25, 75), (33, 34, 0, 1), (99, 100, 99, 100)])
def test_static_crop_window_and_view(hw, percent):
    x_min, x_max, y_min, y_max = percent
    pairs = ((x_min, hw[1]), (y_min, hw[0]), (x_max, hw[1]), (y_max, hw[0]))
    expected = tuple(int(np.floor(p / 100 * size)) for p, size in pairs)
    window = static_crop_window(hw, percent)
    assert window == expected
    frame = _frame(hw)
    x0, y0, x1, y1 = window
    if x1 <= x0 or y1 <= y0:
        with pytest.raises(InvalidFrameError, match="keeps no pixel"):
            PackageSteps(static_crop=percent).apply(frame)
        return
    prepared, geometry = PackageSteps(static_crop=percent).apply(frame)
    assert np.shares_memory(prepared, frame)  # a view, no copy
    np.testing.assert_array_equal(prepared, frame[y0:y1, x0:x1])
    assert geometry.crop == (x0, y0, x1 - x0, y1 - y0) and geometry.is_offset_only


@pytest.mark.parametrize("hw", [(1, 1), (16, 16), (23, 41), (90, 7)])
def test_contrast_stretching_matches_a_numpy_rescale(hw):
    frame = _frame(hw, seed=hw[0])
    low, high = np.percentile(frame, 2), np.percentile(frame, 98)
    if high == low:
        pytest.skip("flat frame: no range to stretch")  # noqa: the sizes above are not flat
    expected = np.clip((frame.astype(np.float64) - low) / (high - low), 0, 1) * 255
    got = apply_contrast(frame, "Contrast Stretching")
    assert got.dtype == np.uint8
    assert np.abs(got.astype(np.float64) - expected).max() <= 1.0  # skimage rounds its float result to uint8


@pytest.mark.parametrize("kind", ["Adaptive Equalization", "Histogram Equalization"])
@pytest.mark.parametrize("hw", [(16, 16), (23, 41), (64, 9)])
def test_equalizations_are_scikit_images(kind, hw):
    from skimage import exposure

    frame = _frame(hw, seed=5)
    scaled = frame.astype(np.float32) / 255
    if kind.startswith("Adaptive"):
        result = exposure.equalize_adapthist(scaled, clip_limit=0.03)
    else:
        result = exposure.equalize_hist(scaled)
    np.testing.assert_array_equal(apply_contrast(frame, kind), (result * 255).astype(np.uint8))


def test_histogram_equalization_flattens_the_histogram():
    """Independent of scikit-image: a skewed ramp comes out spread over the whole range."""
    ramp = (np.linspace(0, 1, 64 * 64) ** 4 * 255).astype(np.uint8).reshape(64, 64)
    frame = np.stack([ramp] * 3, axis=2)
    out = apply_contrast(frame, "Histogram Equalization")
    assert np.median(out) > 100 > np.median(frame)


def test_missing_scikit_image_names_the_extra(monkeypatch):
    import builtins

    from inference_accel.errors import MissingDependencyError

    real_import = builtins.__import__

    def no_skimage(name, *args, **kwargs):
        if name.startswith("skimage"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_skimage)
    monkeypatch.setattr("importlib.import_module", lambda name: no_skimage(name))
    with pytest.raises(MissingDependencyError, match=r"inference-accel\[demo\]"):
        apply_contrast(_frame((8, 8)), "Histogram Equalization")


def _letterbox_by_hand(image, size_hw, value):
    """Written from stock's arithmetic, placing pixel by pixel."""
    import cv2

    h, w = image.shape[:2]
    th, tw = size_hw
    scale = min(tw / w, th / h)
    nw, nh = int(w * scale), int(h * scale)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.full((th, tw, 3), value, np.uint8)
    top, left = int((th - nh) / 2), int((tw - nw) / 2)
    for y in range(nh):
        out[top + y, left : left + nw] = resized[y]
    return out, (left, top), scale


@pytest.mark.parametrize("hw", [(1, 7), (9, 1), (17, 31), (31, 17), (200, 3), (24, 40)])
@pytest.mark.parametrize("size_hw", [(24, 40), (40, 24), (7, 7)])
def test_letterbox_first_step(hw, size_hw):
    frame = _frame(hw, seed=2)
    h, w = hw
    scale = min(size_hw[1] / w, size_hw[0] / h)
    if int(w * scale) < 1 or int(h * scale) < 1:
        with pytest.raises(InvalidFrameError, match="nothing left"):
            letterbox_first_step(frame, size_hw, 0)
        return
    step = letterbox_first_step(frame, size_hw, 127)
    expected, pad, expected_scale = _letterbox_by_hand(frame, size_hw, 127)
    np.testing.assert_array_equal(step.canvas, expected)
    assert step.pad == pad and step.scale == (expected_scale, expected_scale)


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (17, 31), (31, 17), (200, 3), (24, 40), (25, 41)])
@pytest.mark.parametrize("size_hw", [(24, 40), (40, 24), (1, 1)])
def test_center_crop_first_step(hw, size_hw):
    frame = _frame(hw, seed=4)
    step = center_crop_first_step(frame, size_hw)
    th, tw = size_hw
    h, w = hw
    expected = np.zeros((th, tw, 3), np.uint8)
    off_y, off_x = (th - h) // 2 if th > h else -((h - th) // 2), (tw - w) // 2 if tw > w else -((w - tw) // 2)
    for y in range(th):  # canvas pixel (y, x) shows frame pixel (y - off_y, x - off_x) where that exists
        for x in range(tw):
            fy, fx = y - off_y, x - off_x
            if 0 <= fy < h and 0 <= fx < w:
                expected[y, x] = frame[fy, fx]
    np.testing.assert_array_equal(step.canvas, expected)
    assert step.pad == (off_x, off_y) and step.scale == (1.0, 1.0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    from PIL import Image, ImageOps

    frame = _frame((5, 8), seed=orientation)
    image = Image.fromarray(frame)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(apply_exif_orientation(frame, orientation), expected)


# -- geometry back to the frame -------------------------------------------------------------
def test_offset_only_geometry_moves_boxes_and_masks_exactly():
    rng = np.random.default_rng(1)
    dense = rng.random((3, 20, 15)) > 0.6
    xyxy = np.array([[0, 0, 15, 20], [2, 3, 9, 10], [14, 19, 15, 20]], np.float32)
    whole = np.array([[0, 0, 15, 20]] * 3, np.float32)  # crops as large as the image: every mask pixel kept
    detections = sv.Detections(xyxy=xyxy.copy(), mask=sv.CompactMask.from_dense(dense, whole, image_shape=(20, 15)))
    geometry = PackageGeometry(frame_hw=(50, 40), crop=(7, 11, 15, 20))
    out = geometry.detections_to_frame(detections)
    expected = np.zeros((3, 50, 40), bool)
    expected[:, 11:31, 7:22] = dense
    np.testing.assert_array_equal(out.mask.to_dense(), expected)
    np.testing.assert_array_equal(out.xyxy, xyxy + np.array([7, 11, 7, 11], np.float32))


def test_first_step_geometry_maps_boxes_and_unclamped_boxes():
    geometry = PackageGeometry(
        frame_hw=(100, 200), crop=(20, 10, 80, 40), pad=(0, 5), scale=(0.5, 0.5), prepared_hw=(30, 40)
    )
    # prepared (x, y) -> ((x - 0) / 0.5 + 20, (y - 5) / 0.5 + 10)
    got = geometry.boxes_to_frame(np.array([[0.0, 5.0, 40.0, 25.0], [-10.0, -50.0, 500.0, 25.0]]))
    np.testing.assert_array_equal(got, [[20.0, 10.0, 100.0, 50.0], [0.0, 0.0, 200.0, 50.0]])
    boxes = prepared_boxes(torch.tensor([[0.5, 0.5, 2.0, 0.2]]), (30, 40))
    np.testing.assert_allclose(boxes, [[-20.0, 12.0, 60.0, 18.0]], rtol=0, atol=1e-5)


def test_first_step_masks_without_logits_are_refused_not_approximated():
    """Finished masks cannot be brought back through two resizes exactly: the logits are required."""
    steps_geometry = PackageGeometry((60, 90), (10, 5, 40, 20), pad=(0, 5), scale=(1.0, 1.0), prepared_hw=(30, 40))
    dense = np.zeros((1, 30, 40), bool)
    dense[0, 5:25, :] = True
    xyxy = np.array([[0, 5, 40, 25]], np.float32)
    detections = sv.Detections(xyxy=xyxy, mask=sv.CompactMask.from_dense(dense, xyxy, image_shape=(30, 40)))
    with pytest.raises(ValueError, match="rebuilt from their logits"):
        steps_geometry.detections_to_frame(detections)


# -- the whole chain: fast path == reference on prepared images (views included) ---------------
@pytest.mark.parametrize("hw", [(1, 1), (2, 9), (17, 31), (120, 7), (7, 120), (64, 48)])
@pytest.mark.parametrize(
    "steps",
    [
        PackageSteps(static_crop=(10, 90, 20, 100)),
        PackageSteps(grayscale=True),
        PackageSteps(
            static_crop=(0, 50, 50, 100), grayscale=True, first_step="letterbox", dataset_hw=(24, 40), padding_value=255
        ),
        PackageSteps(first_step="center-crop", dataset_hw=(40, 24)),
        PackageSteps(first_step="letterbox-reflect-edges", dataset_hw=(7, 30), padding_value=9),
    ],
    ids=["crop", "gray", "crop-gray-letterbox", "center-crop", "reflect"],
)
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_fast_path_equals_reference_after_the_steps(hw, steps, order):
    frame = _frame(hw, seed=hw[0] * 7 + hw[1])
    try:
        prepared, _ = steps.apply(frame)
    except InvalidFrameError as error:  # a thin frame can crop or letterbox to nothing: said clearly
        assert "keeps no pixel" in str(error) or "nothing left" in str(error)
        return
    normalization = Normalization((0.5, 0.25, 0.125), (0.5, 0.5, 2.0), 255.0, order)
    reference, _ = preprocess_reference(prepared, (16, 20), "stretch", normalization)
    out = torch.empty(1, 3, 16, 20)
    _, used = preprocess_into(prepared, out, 0, flags=Flags(), normalization=normalization)
    assert used != "reference"
    assert torch.equal(reference.view(torch.int32), out.view(torch.int32))


# -- the pipeline: package steps on the fast paths == on the reference paths -----------------------
@pytest.mark.parametrize(
    "network_input,image_pre_processing",
    [
        ({}, {"static-crop": {"enabled": True, "x_min": 10, "x_max": 85, "y_min": 20, "y_max": 95}}),
        ({"resize_mode": "letterbox", "dataset_version_resize_dimensions": {"height": 24, "width": 40},
          "padding_value": 127}, {"grayscale": {"enabled": True}}),
        ({"resize_mode": "center-crop", "dataset_version_resize_dimensions": {"height": 40, "width": 24},
          "color_mode": "bgr"}, {"static-crop": {"enabled": True, "x_min": 0, "x_max": 60, "y_min": 30, "y_max": 100}}),
    ],
    ids=["crop", "letterbox-gray", "crop-center-crop-bgr"],
)
def test_pipeline_fast_paths_equal_reference_with_package_steps(tmp_path, network_input, image_pre_processing):
    import json

    from inference_accel.pipeline import SegmentationPipeline
    from tests.helpers_onnx import write_tiny_seg_model

    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("a\nb\nc\nd\n")
    config = {
        "image_pre_processing": image_pre_processing,
        "network_input": {
            "training_input_size": {"height": 32, "width": 32}, "dynamic_spatial_size_supported": False,
            "color_mode": "rgb", "resize_mode": "stretch", "input_channels": 3,
            "normalization": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]], **network_input,
        },
        "class_names_operations": [{"type": "class_name_removal", "class_name": "b"}],
    }
    (tmp_path / "inference_config.json").write_text(json.dumps(config))
    fast = SegmentationPipeline(str(tmp_path), threshold=0.0, flags=Flags(), build_response=False)
    slow = SegmentationPipeline(
        str(tmp_path), threshold=0.0, flags=Flags(preproc_fast=False, postproc_fast=False), build_response=False
    )
    assert "image steps" in fast.frame_graph_reason or "torch.cuda" in fast.frame_graph_reason
    for hw in [(37, 53), (64, 48), (31, 90)]:
        frame = _frame(hw, seed=sum(hw))
        a, b = next(fast.run([frame])), next(slow.run([frame]))
        assert a.implementations["preprocess"] != "reference" and b.implementations["preprocess"] == "reference"
        assert len(a.detections) == len(b.detections) > 0
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)
        np.testing.assert_array_equal(a.detections.class_id, b.detections.class_id)
        assert set(a.detections.class_id.tolist()) <= {0, 1, 2}  # 4 model classes, "b" removed
        assert a.detections.mask.shape == (len(a.detections), *hw)
        np.testing.assert_array_equal(a.detections.mask.to_dense(), b.detections.mask.to_dense())


def test_contrast_package_says_once_that_it_runs_on_the_reference_path(tmp_path, caplog):
    import json
    import logging

    from inference_accel.pipeline import SegmentationPipeline
    from tests.helpers_onnx import write_tiny_seg_model

    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("a\nb\nc\nd\n")
    config = {"image_pre_processing": {"contrast": {"enabled": True, "type": "Contrast Stretching"}}}
    (tmp_path / "inference_config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        pipelines = [SegmentationPipeline(str(tmp_path), flags=Flags(), build_response=False) for _ in range(2)]
    said = [r.getMessage() for r in caplog.records if "Contrast Stretching" in r.getMessage()]
    assert len(said) == 1 and "reference path" in said[0] and "fast paths" in said[0], said
    result = next(pipelines[0].run([_frame((30, 40))]))
    assert result.implementations["package_steps"].startswith("reference (contrast")
    assert result.implementations["preprocess"] != "reference"
