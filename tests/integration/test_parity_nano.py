"""Accelerated equals stock on the real seg-nano graph and the sample media.

The cached seg-nano ONNX export (``inference-accel export``, 312x312 input,
100 queries, 91 class ids, 78x78 mask logits) wrapped as a Roboflow package
and loaded by ``AutoModel.from_pretrained``; frames of the bundled sample
media at 312p, 1080p and portrait 1080x1920. Every field of every detection
is compared, dense and RLE, and the preprocessed input tensors bit for bit.
The model has random weights (no network here): its masks are noisy and
large, which is the hard case for the sparse path, not the easy one.
"""

from __future__ import annotations

import copy

import pytest

from tests.integration.conftest import assert_same_detections, assert_same_inputs, load


@pytest.fixture(scope="module")
def nano(nano_package):
    from inference_accel.integrations.inference_models import accelerate

    stock = load(nano_package)
    return stock, accelerate(copy.copy(stock))


@pytest.mark.parametrize("size", ["312p", "1080p", "portrait"])
def test_preprocessing_is_bit_exact(nano, frames, size):
    stock, accelerated = nano
    for frame in frames[size]:
        assert_same_inputs(stock.pre_process(frame), accelerated.pre_process(frame))
        assert accelerated.acceleration["pre_process"] == ("inference_accel", None)


@pytest.mark.parametrize("size", ["312p", "1080p", "portrait"])
@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_postprocessing_is_exact(nano, frames, size, mask_format):
    stock, accelerated = nano
    frame = frames[size][0]
    x, meta = stock.pre_process(frame)
    raw = stock.forward(x)
    stock_out = stock.post_process(raw, meta, mask_format=mask_format)
    accel_out = accelerated.post_process(raw, meta, mask_format=mask_format)
    assert len(stock_out[0]) > 0
    assert_same_detections(stock_out, accel_out)
    assert accelerated.acceleration["post_process"] == ("inference_accel", None)


def test_end_to_end_call(nano, frames):
    """``model(frame)`` as the server calls it: every stage of the accelerated class."""
    stock, accelerated = nano
    frame = frames["1080p"][1]
    assert_same_detections(stock(frame, mask_format="rle"), accelerated(frame, mask_format="rle"))
    from inference_accel.preprocess.native import native_reason

    cpu_path = "native" if native_reason() is None else "cpu"  # the compiled helper, else numpy
    assert accelerated.acceleration == {
        "pre_process": ("inference_accel", None),
        "pre_process_path": (cpu_path, None),
        "post_process": ("inference_accel", None),
    }


def test_preprocessing_through_the_triton_kernel_is_bit_exact(nano, frames):
    """What a CUDA model runs (the kernel writes the batch on the device), here under Triton's interpreter.

    The Triton gate is forced on, as on a GPU; the interpreter takes CPU tensors.
    """
    import os

    from inference_accel import dispatch
    from inference_accel.preprocess import api as pre_api

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the Triton interpreter is off (--device cuda): on a GPU the CUDA model's own test runs it")
    stock, accelerated = nano
    dispatch.register(dispatch.Implementation(pre_api.OP, pre_api.TRITON, 20, lambda flags: None))
    try:
        for size in ("312p", "portrait"):
            frame = frames[size][0]
            assert_same_inputs(stock.pre_process(frame), accelerated.pre_process(frame))
            assert accelerated.acceleration["pre_process_path"] == ("triton", None)
    finally:
        dispatch.register(dispatch.Implementation(pre_api.OP, pre_api.TRITON, 20, pre_api._check_triton))  # noqa: SLF001


@pytest.mark.parametrize("triton_reason,expected", [(None, "cuda:0"), ("torch.cuda is not available", "cpu")])
def test_a_cuda_model_preprocesses_on_its_device_when_the_kernel_can(monkeypatch, triton_reason, expected):
    """The device choice alone (no GPU needed): the model's CUDA device when the Triton path is available."""
    import types

    import torch

    from inference_accel import dispatch
    from inference_accel.integrations.inference_models import AcceleratedRFDetrSegMixin
    from inference_accel.preprocess import api as pre_api

    dispatch.register(dispatch.Implementation(pre_api.OP, pre_api.TRITON, 20, lambda flags: triton_reason))
    try:
        model = types.SimpleNamespace(_device=torch.device("cuda:0"))
        assert str(AcceleratedRFDetrSegMixin._accel_preprocess_device(model)) == expected  # noqa: SLF001
        model = types.SimpleNamespace(_device=torch.device("cpu"))
        assert str(AcceleratedRFDetrSegMixin._accel_preprocess_device(model)) == "cpu"  # noqa: SLF001
    finally:
        dispatch.register(dispatch.Implementation(pre_api.OP, pre_api.TRITON, 20, pre_api._check_triton))  # noqa: SLF001



@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_postprocessing_through_the_run_kernels_equals_stock_in_cuda_arithmetic(nano, frames, cuda_order_masks, mask_format):
    """What a CUDA model's masks run (the run kernels' stock mode), here under Triton's interpreter.

    The stock side's resize is swapped for the model of torch CUDA's order
    (what stock computes on a GPU); ours takes the Triton run kernels with
    that order's FMAs emulated (``cuda_order_masks``). Boxes, scores,
    classes and every mask pixel (dense) or every RLE string must be equal.
    """
    stock, accelerated = nano
    frame = frames["312p"][0]
    x, meta = stock.pre_process(frame)
    raw = stock.forward(x)
    # 3 detections keep the interpreter's work to seconds (the masks of a random-weight model cover the frame)
    stock_out = stock.post_process(raw, meta, mask_format=mask_format, max_detections=3)
    accel_out = accelerated.post_process(raw, meta, mask_format=mask_format, max_detections=3)
    assert cuda_order_masks and len(stock_out[0]) == 3, accelerated.acceleration
    assert_same_detections(stock_out, accel_out)
    assert accelerated.acceleration["post_process"] == ("inference_accel", None)
