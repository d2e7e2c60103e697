"""Accelerated equals stock on every package option, with a tiny model (fast).

The tiny ONNX model (tests/helpers_onnx.py: 32x32 input, 5 queries, 4
classes, 8x8 mask logits that follow the image) is wrapped as a Roboflow
package; the stock class and the accelerated class run the same frames and
every output field is compared (boxes, scores, classes, every mask pixel or
RLE byte, sizes) in dense and RLE formats, plus the preprocessing tensors and
metadata bit for bit. Each case also says which implementation ran, so a
silent fallback cannot pass as acceleration.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.integration.conftest import assert_same_detections, assert_same_inputs, load, random_frame

PACKAGES = {
    "stretch": {},
    "letterbox": {"resize_mode": "letterbox", "dataset_hw": (24, 40)},
    "center-crop": {"resize_mode": "center-crop", "dataset_hw": (24, 40)},
    "letterbox-reflect": {"resize_mode": "letterbox-reflect-edges", "dataset_hw": (40, 24)},
    "stretch-with-dims": {"resize_mode": "stretch", "dataset_hw": (24, 40)},
    "static-crop": {"image_pre_processing": {"static-crop": {"enabled": True, "x_min": 10, "y_min": 20, "x_max": 85, "y_max": 90}}},
    "grayscale": {"image_pre_processing": {"grayscale": {"enabled": True}}},
    "contrast": {"image_pre_processing": {"contrast": {"enabled": True, "type": "Contrast Stretching"}}},
    "class-removal": {"class_names_operations": [{"type": "class_name_removal", "class_name": "b"}]},
    "bgr-network": {"color_mode": "bgr"},
    "other-normalisation": {"normalization": [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]},
}
# stock preprocessing on purpose (ours would not be exact or does not apply)
STOCK_PREPROCESS = {"letterbox", "center-crop", "letterbox-reflect"}
SIZES = [(1080, 1920), (1920, 1080), (312, 556), (33, 47)]


@pytest.fixture(scope="module")
def models(tiny_package_factory):
    from inference_accel.integrations.inference_models import accelerate

    out = {}
    for name, options in PACKAGES.items():
        stock = load(tiny_package_factory(name, **options))
        out[name] = (stock, accelerate(copy.copy(stock)))
    return out


def run_both(stock, accelerated, frame, **kwargs):
    stock_input = stock.pre_process(frame, **{k: v for k, v in kwargs.items() if k == "input_color_format"})
    accel_input = accelerated.pre_process(frame, **{k: v for k, v in kwargs.items() if k == "input_color_format"})
    assert_same_inputs(stock_input, accel_input)
    raw = stock.forward(stock_input[0])
    post = {k: v for k, v in kwargs.items() if k != "input_color_format"}
    return stock.post_process(raw, stock_input[1], **post), accelerated.post_process(raw, accel_input[1], **post)


@pytest.mark.parametrize("package", sorted(PACKAGES))
@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_accelerated_equals_stock(models, package, mask_format):
    stock, accelerated = models[package]
    rng = np.random.default_rng(0)
    for hw in SIZES[:3]:
        frame = random_frame(rng, hw)
        ours, theirs = None, None
        stock_out, accel_out = run_both(stock, accelerated, frame, mask_format=mask_format, confidence=0.05)
        assert_same_detections(stock_out, accel_out)
        assert len(stock_out[0]) > 0, "the case must have detections to prove anything"
        pre, post = accelerated.acceleration["pre_process"], accelerated.acceleration["post_process"]
        assert (pre[0] == "stock") == (package in STOCK_PREPROCESS), pre
        assert post == ("inference_accel", None), post


# One package per mask geometry the stock alignment has (the others differ only before the network).
GEOMETRY_PACKAGES = ("stretch", "letterbox", "center-crop", "static-crop", "class-removal")


@pytest.mark.parametrize("package", GEOMETRY_PACKAGES)
@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_run_kernels_equal_stock_in_cuda_arithmetic(models, package, mask_format, cuda_order_masks):
    """The masks a CUDA model gets (the run kernels' stock mode: windows, canvases, static-crop offsets),
    against stock computing in torch CUDA's order, both on the CPU (``cuda_order_masks``)."""
    stock, accelerated = models[package]
    rng = np.random.default_rng(1)
    for hw in ((180, 320),):  # a small frame: the interpreter pays per pixel of the masks' bounds
        frame = random_frame(rng, hw)
        for factor in (1.0, 0.5):
            stock_out, accel_out = run_both(
                stock, accelerated, frame, mask_format=mask_format, confidence=0.05, masks_resolution_factor=factor
            )
            assert_same_detections(stock_out, accel_out)
            assert len(stock_out[0]) > 0
            assert accelerated.acceleration["post_process"] == ("inference_accel", None)
    assert cuda_order_masks


@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_frames_smaller_than_the_mask_grid_fall_back_with_a_reason(models, mask_format):
    stock, accelerated = models["stretch"]
    frame = random_frame(np.random.default_rng(1), (5, 6))
    stock_out, accel_out = run_both(stock, accelerated, frame, mask_format=mask_format, confidence=0.05)
    assert_same_detections(stock_out, accel_out)
    implementation, reason = accelerated.acceleration["post_process"]
    assert implementation == "stock" and "downsampled" in reason


@pytest.mark.parametrize("factor", [0.0, 0.37, 0.5])
@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_masks_resolution_factor(models, factor, mask_format):
    for package in ("stretch", "static-crop", "letterbox"):
        stock, accelerated = models[package]
        frame = random_frame(np.random.default_rng(2), (700, 1000))
        stock_out, accel_out = run_both(
            stock, accelerated, frame, mask_format=mask_format, confidence=0.05, masks_resolution_factor=factor
        )
        assert_same_detections(stock_out, accel_out)


@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_thresholds_caps_and_colour_orders(models, mask_format):
    from inference_models.weights_providers.entities import RecommendedParameters

    stock, accelerated = models["class-removal"]
    frame = random_frame(np.random.default_rng(3), (480, 640))
    for kwargs in (
        {"confidence": 0.5},
        {"confidence": "default"},
        {"confidence": 0.01, "max_detections": 2},
        {"confidence": 0.01, "max_detections": None},
        {"confidence": 0.999},  # nothing passes
        {"confidence": 0.05, "input_color_format": "rgb"},
    ):
        assert_same_detections(*run_both(stock, accelerated, frame, mask_format=mask_format, **kwargs))
    params = RecommendedParameters(confidence=0.3, per_class_confidence={"a": 0.05, "c": 0.9})
    stock.recommended_parameters = accelerated.recommended_parameters = params
    try:
        assert_same_detections(*run_both(stock, accelerated, frame, mask_format=mask_format, confidence="best"))
    finally:
        stock.recommended_parameters = accelerated.recommended_parameters = None


@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_infer_call_and_batches(models, mask_format):
    stock, accelerated = models["static-crop"]
    rng = np.random.default_rng(4)
    batch = [random_frame(rng, hw) for hw in SIZES]
    kwargs = dict(mask_format=mask_format, confidence=0.05)
    assert_same_detections(stock.infer(batch, **kwargs), accelerated.infer(batch, **kwargs))
    assert_same_detections(stock(batch[0], **kwargs), accelerated(batch[0], **kwargs))
    stacked = np.stack([random_frame(rng, (100, 120)) for _ in range(2)])
    assert_same_detections(stock(stacked, **kwargs), accelerated(stacked, **kwargs))
    ran = accelerated.acceleration
    assert (ran["pre_process"], ran["post_process"]) == (("inference_accel", None), ("inference_accel", None))
    assert ran["pre_process_path"][0] in ("native", "cpu")  # a CPU model: the compiled helper or numpy


def test_tensor_inputs_run_the_stock_preprocessing(models):
    import torch

    stock, accelerated = models["stretch"]
    image = torch.from_numpy(random_frame(np.random.default_rng(5), (64, 80))).permute(2, 0, 1).float() / 255
    assert_same_inputs(stock.pre_process(image), accelerated.pre_process(image))
    implementation, reason = accelerated.acceleration["pre_process"]
    assert implementation == "stock" and "not uint8" in reason


def test_flags_force_the_stock_paths(models, monkeypatch):
    stock, accelerated = models["stretch"]
    monkeypatch.setenv("INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED", "false")
    monkeypatch.setenv("INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED", "false")
    frame = random_frame(np.random.default_rng(6), (200, 300))
    assert_same_detections(stock(frame, confidence=0.05), accelerated(frame, confidence=0.05))
    assert accelerated.acceleration["pre_process"][0] == "stock"
    assert accelerated.acceleration["post_process"] == ("stock", "INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED=false")


def test_unknown_mask_format_raises_the_stock_error(models):
    from inference_models.errors import ModelInputError

    stock, accelerated = models["stretch"]
    frame = random_frame(np.random.default_rng(7), (50, 60))
    with pytest.raises(ModelInputError):
        accelerated(frame, mask_format="polygon")


@pytest.mark.parametrize("package", ["stretch", "bgr-network", "other-normalisation"])
@pytest.mark.parametrize("input_color_format", [None, "rgb", "bgr"])
def test_every_colour_order_and_normalisation_runs_ours_and_equals_stock(models, package, input_color_format):
    """With and without stock's channel swap, ImageNet or not: our preprocessing, identical inputs and outputs."""
    stock, accelerated = models[package]
    frame = random_frame(np.random.default_rng(5), (240, 320))
    kwargs = {"mask_format": "rle", "confidence": 0.05}
    if input_color_format is not None:
        kwargs["input_color_format"] = input_color_format
    assert_same_detections(*run_both(stock, accelerated, frame, **kwargs))
    assert accelerated.acceleration["pre_process"] == ("inference_accel", None)
