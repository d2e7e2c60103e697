"""Our reference with a package's Normalization equals inference-models' stock input tensor, bit for bit.

Packages (the tiny model, ``tiny_package_factory``) vary ``scaling_factor``,
``normalization`` and ``color_mode``; calls vary ``input_color_format``. The
Normalization comes from the config as the stock model parsed it
(``from_stock_config`` of its ``network_input``), then our reference chain
(``preprocess_reference``) runs on the same frame; the stock
``pre_process`` tensor is the expected value. The fast paths equal the
reference bit for bit for any Normalization (``tests/test_preprocess_normalization.py``,
main venv); here the reference path of ``preprocess_into`` is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_accel.flags import Flags
from inference_accel.preprocess.api import preprocess_into
from inference_accel.preprocess.normalization import Normalization, from_stock_config
from inference_accel.preprocess.reference import preprocess_reference
from tests.integration.conftest import IMAGENET, load, random_frame

ODD = [[0.1234567, -3.25, 250.0], [0.0123, -2.0, 7.0e-3]]
PACKAGES = {
    "imagenet": {},
    "half": {"normalization": [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]},
    "odd": {"normalization": ODD},
    "odd-bgr": {"normalization": ODD, "color_mode": "bgr"},
    "none-255": {"normalization": None},
    "none-scale-1": {"normalization": None, "scaling_factor": 1},
    "none-scale-127.5": {"normalization": None, "scaling_factor": 127.5},
    "none-scale-3": {"normalization": None, "scaling_factor": 3},
    "none-scale-3-bgr": {"normalization": None, "scaling_factor": 3, "color_mode": "bgr"},
    "imagenet-with-scale-127.5": {"normalization": IMAGENET, "scaling_factor": 127.5},  # stock ignores the scale
    "imagenet-bgr": {"color_mode": "bgr"},
}
INPUT_FORMATS = (None, "bgr", "rgb")
SIZES = [(33, 47), (120, 90), (312, 556)]


@pytest.fixture(scope="module")
def stock_models(tiny_package_factory):
    return {name: load(tiny_package_factory(f"norm-{name}", **options)) for name, options in PACKAGES.items()}


def stock_normalization(model, input_color_format) -> Normalization:
    ni = model._inference_config.network_input
    return from_stock_config(ni.scaling_factor, ni.normalization, ni.color_mode, input_color_format)


def assert_bitwise(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == expected.dtype == torch.float32 and got.shape == expected.shape, (got.shape, expected.shape)
    differ = int((got.contiguous().view(torch.int32) != expected.contiguous().view(torch.int32)).sum())
    assert differ == 0, f"{differ} element(s) differ"


@pytest.mark.parametrize("input_format", INPUT_FORMATS)
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_reference_equals_stock_pre_process(stock_models, package, input_format):
    model = stock_models[package]
    normalization = stock_normalization(model, input_format)
    rng = np.random.default_rng(7)
    for hw in SIZES:
        frame = random_frame(rng, hw)
        stock, _ = model.pre_process(frame, input_color_format=input_format)
        ours, _ = preprocess_reference(frame, (32, 32), "stretch", normalization=normalization)
        assert_bitwise(ours, stock.cpu())
        out = torch.empty(1, 3, 32, 32)
        assert preprocess_into(frame, out, 0, flags=Flags(preproc_fast=False), normalization=normalization)[1] == "reference"
        assert_bitwise(out, stock.cpu())


def test_the_cases_differ_so_the_comparison_can_fail(stock_models):
    """Each package's stock tensor is distinct from ImageNet's: no case passes by accident."""
    frame = random_frame(np.random.default_rng(1), (40, 40))
    imagenet = stock_models["imagenet"].pre_process(frame)[0]
    for name, model in stock_models.items():
        if name in ("imagenet", "imagenet-with-scale-127.5"):
            continue
        assert not torch.equal(model.pre_process(frame, input_color_format="bgr")[0], imagenet), name
    # stock ignores scaling_factor when a normalization is given
    assert torch.equal(stock_models["imagenet-with-scale-127.5"].pre_process(frame)[0], imagenet)
    # stock swaps whenever no input format is given, even for a bgr package (None != "bgr")
    assert torch.equal(stock_models["imagenet-bgr"].pre_process(frame)[0], imagenet)
