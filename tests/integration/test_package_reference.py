"""Every package option: our reference input tensor equals inference-models' ``pre_process``, bit for bit.

For each image step alone and combined (static crop, grayscale, the three
contrast types), in each resize mode with and without
``dataset_version_resize_dimensions`` (plus padding value, colour mode and
scaling without normalisation), on frames of several sizes:

- ours: ``PackageSteps.apply`` then ``preprocess_reference`` (Pillow
  stretch, the package's normalisation), and our fast path (flags on), which
  must equal our reference;
- stock: the package loaded by ``AutoModel.from_pretrained``, ``pre_process(frame)``.

Then whole pipelines: boxes, scores and classes of our pipeline against
stock's ``model(frame)``, mapped back through static crops and the two-step
resize. Stock rounds boxes to int (its masks are on the image grid here), so
our float boxes must equal stock's after rounding; scores and class ids must
be equal. Masks are compared by the share of frame pixels on which they
disagree (bounds at ``PIPELINE_CASES``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.integration.conftest import load, random_frame

STEPS = {
    "none": None,
    "crop": {"static-crop": {"enabled": True, "x_min": 10, "x_max": 85, "y_min": 20, "y_max": 95}},
    "crop-disabled": {"static-crop": {"enabled": False, "x_min": 10, "x_max": 85, "y_min": 20, "y_max": 95}},
    "grayscale": {"grayscale": {"enabled": True}},
    "adaptive": {"contrast": {"enabled": True, "type": "Adaptive Equalization"}},
    "stretching": {"contrast": {"enabled": True, "type": "Contrast Stretching"}},
    "histogram": {"contrast": {"enabled": True, "type": "Histogram Equalization"}},
    "all": {
        "static-crop": {"enabled": True, "x_min": 5, "x_max": 70, "y_min": 0, "y_max": 60},
        "grayscale": {"enabled": True},
        "contrast": {"enabled": True, "type": "Histogram Equalization"},
        "auto-orient": {"enabled": True},
    },
}
MODES = ("stretch", "letterbox", "center-crop", "letterbox-reflect-edges", "fit-longer-edge")
DIMS = (None, (24, 40), (40, 24))
SIZES = ((37, 53), (64, 48), (120, 17), (16, 150), (33, 33))


def _frames(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = [random_frame(rng, hw) for hw in SIZES]
    ramp = np.linspace(0, 255, 50 * 70).reshape(50, 70).astype(np.uint8)  # smooth: contrast steps matter
    frames.append(np.stack([ramp, ramp[::-1], ramp.T[:50, :50].repeat(2, 1)[:, :70]], axis=2).copy())
    return frames


def _ours(package, frame, fast: bool):
    from inference_accel.flags import Flags
    from inference_accel.models.source import resolve_model
    from inference_accel.preprocess.api import preprocess_into
    from inference_accel.preprocess.reference import preprocess_reference

    source = resolve_model(package)
    prepared, _ = source.package_steps.apply(frame)
    if not fast:
        tensor, _ = preprocess_reference(prepared, source.input_hw, "stretch", source.normalization)
        return tensor
    out = torch.empty(1, 3, *source.input_hw)
    _, used = preprocess_into(prepared, out, 0, flags=Flags(), normalization=source.normalization)
    assert used != "reference", "the fast path declined a package frame"
    return out


def _assert_bits_equal(stock: torch.Tensor, ours: torch.Tensor, what: str) -> None:
    assert stock.dtype == ours.dtype == torch.float32 and stock.shape == ours.shape, (stock.shape, ours.shape)
    differ = int((stock.view(torch.int32) != ours.view(torch.int32)).sum())
    assert differ == 0, f"{what}: {differ} of {stock.numel()} floats differ"


def _check_package(package, frames) -> None:
    model = load(package)
    for frame in frames:
        stock, _ = model.pre_process(frame)
        reference = _ours(package, frame, fast=False)
        _assert_bits_equal(stock, reference, f"reference vs stock, frame {frame.shape}")
        _assert_bits_equal(reference, _ours(package, frame, fast=True), f"fast vs reference, frame {frame.shape}")


@pytest.mark.parametrize("dims", DIMS, ids=["no-dims", "dims-24x40", "dims-40x24"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", list(STEPS))
def test_reference_input_equals_stock(tiny_package_factory, steps, mode, dims):
    package = tiny_package_factory(
        f"{steps}-{mode}-{dims}", resize_mode=mode, dataset_hw=dims, image_pre_processing=STEPS[steps]
    )
    _check_package(package, _frames(seed=len(steps) + len(mode)))


@pytest.mark.parametrize("dims", (None, (24, 40)), ids=["no-dims", "dims"])
@pytest.mark.parametrize(
    "options",
    [
        {"padding_value": 127, "resize_mode": "letterbox"},
        {"padding_value": 255, "resize_mode": "letterbox-reflect-edges"},
        {"color_mode": "bgr", "resize_mode": "letterbox"},
        {"color_mode": "bgr", "resize_mode": "center-crop"},
        {"normalization": None, "scaling_factor": 255},
        {"normalization": None, "scaling_factor": 1},
        {"normalization": None, "scaling_factor": None},
        {"normalization": [[0.5, 0.25, 0.125], [0.5, 0.5, 2.0]], "scaling_factor": 1, "color_mode": "bgr"},
    ],
    ids=["pad127", "reflect-pad255", "bgr-letterbox", "bgr-center-crop", "scale255", "scale1", "no-scale",
         "custom-norm-bgr"],
)
def test_network_input_options_equal_stock(tiny_package_factory, options, dims):
    name = "opt-" + "-".join(f"{k}{v}" for k, v in options.items()).replace(" ", "")[:80] + f"-{dims}"
    options = {"resize_mode": "letterbox", **options}
    package = tiny_package_factory(name, dataset_hw=dims, **options)
    _check_package(package, _frames(seed=7))


def test_letterbox_reflect_edges_pads_like_letterbox_as_stock(tiny_package_factory):
    """Stock's numpy handler table maps letterbox-reflect-edges to the letterbox handler: no reflection."""
    frame = _frames(seed=3)[0]
    reflect = load(tiny_package_factory("r", resize_mode="letterbox-reflect-edges", dataset_hw=(24, 40)))
    plain = load(tiny_package_factory("l", resize_mode="letterbox", dataset_hw=(24, 40)))
    assert torch.equal(reflect.pre_process(frame)[0], plain.pre_process(frame)[0])


# -- whole pipelines: boxes and masks back on the frame ------------------------------------------
# Mask bound: the largest share of frame pixels on which one mask may disagree with stock's. Measured
# here: 0 in every case but one centre-crop frame (0.03: a 33x33 frame whose logits are padded with
# zeros; stock upsamples with torchvision's antialiased resize, we with F.interpolate, and this tiny
# model's logits sit near 0). Offset-only cases (no first step) must be pixel-identical.
PIPELINE_CASES = {
    "crop": ({"image_pre_processing": STEPS["crop"]}, 0.0),
    "crop-grayscale": ({"image_pre_processing": {**STEPS["crop"], **STEPS["grayscale"]}}, 0.0),
    "letterbox-two-step": ({"resize_mode": "letterbox", "dataset_hw": (24, 40)}, 0.05),
    "crop-letterbox-two-step": (
        {"resize_mode": "letterbox", "dataset_hw": (40, 24), "image_pre_processing": STEPS["crop"]}, 0.05),
    "center-crop-two-step": ({"resize_mode": "center-crop", "dataset_hw": (24, 40)}, 0.05),
    "class-removal": ({"class_names_operations": [{"type": "class_name_removal", "class_name": "b"}]}, 0.0),
}


@pytest.mark.parametrize("case", list(PIPELINE_CASES))
def test_pipeline_results_on_the_frame_match_stock(tiny_package_factory, case):
    from inference_accel.flags import Flags
    from inference_accel.pipeline import SegmentationPipeline

    options, mask_bound = PIPELINE_CASES[case]
    package = tiny_package_factory(f"pipe-{case}", **options)
    model = load(package)
    ours = SegmentationPipeline(str(package), threshold=0.0, flags=Flags(), build_response=False)
    compared = 0
    for frame in [f for f in _frames(seed=11) if min(f.shape[:2]) >= 30]:  # stock fails on thinner ones
        stock = model(frame, confidence=0.0)[0]
        mine = ours.predict(frame)
        assert len(stock.xyxy) == len(mine) > 0, case
        np.testing.assert_array_equal(stock.confidence.numpy(), mine.confidence)
        np.testing.assert_array_equal(stock.class_id.numpy(), mine.class_id)
        assert list(mine.data["class_name"]) == [model.class_names[i] for i in stock.class_id.tolist()]
        stock_boxes = stock.xyxy.numpy().astype(np.float64)
        np.testing.assert_array_equal(np.round(mine.xyxy), stock_boxes)  # stock rounds half to even, as np.round
        stock_masks = stock.mask.numpy().astype(bool)
        assert stock_masks.shape[1:] == frame.shape[:2] == mine.mask.shape[1:]
        disagree = (stock_masks != mine.mask.to_dense()).mean(axis=(1, 2))
        assert disagree.max() <= mask_bound, (case, disagree)
        compared += len(mine)
    assert compared > 0
