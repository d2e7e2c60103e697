"""The compiled stock-mask executor against torchvision itself (and pycocotools' encoder).

``inference_accel.integrations.stock_masks_native`` writes
``torchvision.transforms.functional.resize(BILINEAR, antialias) > 0`` of each
mask straight into a dense canvas or COCO RLE strings. Every case compares
with the installed torchvision (dense: every byte of the canvas; RLE: the
bytes pycocotools' encoder gives for that canvas), in both builds of the
helper (avx2+fma and portable, where the CPU has both), one and two threads,
on random, near-zero, zero, subnormal, huge, constant, one-pixel and
checkerboard logits, upsampling and unchanged axes of many sizes (8K included),
and canvases with offsets. The unfused chain (``"plain"``, what a torch built without FMA
computes) is checked against the dense float32 twin ``resize_reference``.
The last tests run the accelerated inference-models class with the compiled
executor switched off, and with non-finite logits.
"""

from __future__ import annotations

import copy
import logging
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from inference_accel.integrations import stock_masks as sm
from inference_accel.integrations import stock_masks_native as nat
from tests.integration.test_stock_masks import KINDS, SIZES, logits_of, stock

standalone = pytest.mark.runs_without_inference_models  # needs torchvision and pycocotools only

EXTRA_KINDS = ["min_subnormal", "huge", "constant_positive", "constant_zero", "constant_floor", "one_pixel", "checker", "sign_flip_rows"]


def extra_logits(kind: str, n: int, hw, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = hw
    if kind == "min_subnormal":  # products of the smallest subnormals round to 0 (or not): the floors matter
        tiny = np.float32(1.4e-45)
        return (rng.choice([-1, 0, 1, 1, 2, 3], (n, h, w)) * tiny).astype(np.float32)
    if kind == "huge":  # near float32's range: products and sums far from 1
        return (rng.choice([-1.0, 1.0], (n, h, w)) * rng.uniform(1e37, 1.5e38, (n, h, w))).astype(np.float32)
    if kind == "constant_positive":
        return np.full((n, h, w), 0.75, np.float32)
    if kind == "constant_zero":  # 0 is not > 0 anywhere
        return np.zeros((n, h, w), np.float32)
    if kind == "constant_floor":  # at the classification floors: every pixel through the exact chain
        values = np.full((n, h, w), 1e-30, np.float32)
        values[:, ::2] = np.float32(1e-28)
        return values
    if kind == "one_pixel":  # one positive logit in a negative field (and the mirror image)
        values = np.full((n, h, w), -1.0, np.float32)
        for i in range(n):
            y, x = rng.integers(0, h), rng.integers(0, w)
            values[i, y, x] = rng.choice([1e-3, 1.0, 50.0])
        values[n // 2 :] *= -1
        return values
    if kind == "checker":
        yy, xx = np.mgrid[0:h, 0:w]
        return np.broadcast_to(np.where((yy + xx) % 2 == 0, 1.0, -1.0).astype(np.float32), (n, h, w)) * np.float32(
            rng.uniform(1e-6, 1.0)
        )
    if kind == "sign_flip_rows":  # opposite signs on adjacent rows: bisection in every cell of a column
        values = np.abs(rng.standard_normal((n, h, w))).astype(np.float32) + np.float32(0.01)
        values[:, 1::2] *= -1
        return values
    raise ValueError(kind)


def make(kind: str, n: int, hw, seed: int) -> np.ndarray:
    return extra_logits(kind, n, hw, seed) if kind in EXTRA_KINDS else logits_of(kind, n, hw, seed)


@pytest.fixture(params=["avx2+fma", "portable"])
def build(request):
    """Each compiled build the machine can run (the CPU must have avx2+fma for the first)."""
    helper = nat._stock_masks_native
    assert helper is not None, nat.native_reason()  # setup.py builds it; a missing helper fails here
    if request.param == "avx2+fma" and helper.force_portable(False) != "avx2+fma":
        pytest.skip("this CPU has no avx2+fma: the portable build is the one that runs")
    assert helper.force_portable(request.param == "portable") == request.param
    yield request.param
    helper.force_portable(False)


def expected_canvas(logits, out_hw, canvas_hw, offset):
    masks = stock(logits, out_hw) > 0
    canvas = np.zeros((logits.shape[0], *canvas_hw), bool)
    oy, ox = offset
    canvas[:, oy : oy + out_hw[0], ox : ox + out_hw[1]] = masks
    return canvas


def coco(canvas: np.ndarray) -> list[bytes]:
    return [mask_utils.encode(np.asfortranarray(c.astype(np.uint8)))["counts"] for c in canvas]


def check(logits, out_hw, mode, canvas_hw=None, offset=(0, 0), threads=None, expected=None):
    canvas_hw = tuple(out_hw) if canvas_hw is None else canvas_hw
    if expected is None:
        expected = expected_canvas(logits, out_hw, canvas_hw, offset)
    dense = nat.threshold_dense(logits, out_hw, mode, canvas_hw, offset, threads=threads)
    assert dense.dtype == bool and dense.shape == expected.shape
    assert int((dense != expected).sum()) == 0
    assert nat.threshold_rle(logits, out_hw, mode, canvas_hw, offset, threads=threads) == coco(expected)


@standalone
@pytest.mark.parametrize("in_hw,out_hw", SIZES)
@pytest.mark.parametrize("kind", KINDS + EXTRA_KINDS)
def test_dense_and_rle_equal_torchvision(build, kind, in_hw, out_hw):
    mode, _ = sm.kernel_check()
    logits = make(kind, 3, in_hw, seed=zlib.crc32(repr((kind, in_hw, out_hw)).encode()))
    check(logits, out_hw, mode)


@standalone
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    "out_hw,canvas_hw,offset",
    [((1080, 1920), (1080, 1920), (0, 0)), ((300, 500), (420, 640), (37, 41)), ((300, 120), (300, 700), (0, 580)),
     ((90, 100), (200, 100), (110, 0))],
)
def test_canvases_offsets_and_threads(build, out_hw, canvas_hw, offset, threads):
    mode, _ = sm.kernel_check()
    logits = logits_of("blobs", 9, (78, 78), seed=3)
    logits[2] = -1.0  # an empty mask
    logits[5] = 1.0  # a full one
    check(logits, out_hw, mode, canvas_hw, offset, threads)


@standalone
@pytest.mark.parametrize("in_hw,out_hw", SIZES[:6] + [((5, 9), (5, 40)), ((9, 5), (40, 5))])
@pytest.mark.parametrize("kind", ["random", "near_zero", "tiny", "constant_floor"])
def test_unfused_chain_equals_its_float_twin(build, kind, in_hw, out_hw):
    """``"plain"`` (two rounded products and a rounded sum): against the float32 twin of that chain."""
    logits = make(kind, 3, in_hw, seed=19)
    expected = sm.resize_reference(logits, out_hw, sm.PLAIN) > 0
    check(logits, out_hw, sm.PLAIN, expected=expected)


@standalone
def test_8k_frame(build):
    """Wide cells (55 x 98 pixels) and long columns: the bisection and the merged runs at scale."""
    mode, _ = sm.kernel_check()
    logits = logits_of("blobs", 2, (78, 78), seed=23)
    logits[1] = logits_of("near_zero", 1, (78, 78), seed=24)[0]
    check(logits, (4320, 7680), mode, threads=2)


@standalone
def test_near_zero_values_take_the_exact_chain(build):
    """Outputs a few ulps from 0, the fused rounding deciding the sign."""
    mode, _ = sm.kernel_check()
    logits = logits_of("near_zero", 4, (78, 78), seed=11)
    logits[:, :, ::2] *= -1
    check(logits, (555, 777), mode)


@standalone
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    dy=st.integers(0, 70),
    dx=st.integers(0, 70),
    pad=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    scale=st.sampled_from([1.0, 1e-3, 1e-7, 1e-38, 1e30]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_against_torchvision(h, w, dy, dx, pad, scale, seed):
    if w == 1 and dx == 0 and dy:  # torch's width-1 quirk: unsupported (tested below)
        return
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((3, h, w)) * scale).astype(np.float32)
    logits[rng.random((3, h, w)) < 0.2] = 0.0
    out_hw = (h + dy, w + dx)
    top, left, bottom, right = pad
    mode, _ = sm.kernel_check()
    check(logits, out_hw, mode, (top + out_hw[0] + bottom, left + out_hw[1] + right), (top, left), threads=1 + seed % 2)


@standalone
def test_bad_inputs_get_clear_errors():
    mode, _ = sm.kernel_check()
    good = np.zeros((2, 6, 6), np.float32)
    with pytest.raises(ValueError, match="downsampled"):
        nat.threshold_dense(good, (5, 40), mode)
    with pytest.raises(ValueError, match="width 1"):
        nat.threshold_rle(np.zeros((1, 4, 1), np.float32), (9, 1), mode)
    for bad in (np.inf, -np.inf, np.nan):
        values = good.copy()
        values[1, 2, 3] = bad
        with pytest.raises(ValueError, match="finite"):
            nat.threshold_dense(values, (20, 20), mode)
    with pytest.raises(ValueError, match="does not fit"):
        nat.threshold_dense(good, (20, 20), mode, canvas_hw=(20, 30), offset=(1, 0))
    with pytest.raises(ValueError, match="mode"):
        nat.threshold_rle(good, (20, 20), "fused")
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        nat.threshold_dense(good[0], (20, 20), mode)
    with pytest.raises(ValueError, match="out must be"):
        nat.threshold_dense(good, (20, 20), mode, out=np.empty((2, 20, 21), bool))
    assert nat.threshold_dense(np.zeros((0, 6, 6), np.float32), (20, 20), mode).shape == (0, 20, 20)
    assert nat.threshold_rle(np.zeros((0, 6, 6), np.float32), (20, 20), mode) == []


@standalone
def test_the_helper_checks_its_tables():
    """Tables that do not describe an axis are refused by the helper itself, not read out of bounds."""
    helper = nat._stock_masks_native
    values = np.zeros((1, 4, 4), np.float32)
    first, length, taps, weights, *_ = nat._axis(4, 8)
    bad_taps = taps.copy()
    bad_taps[-1, -1] = 4
    for axis, message in [
        ((first, length, bad_taps, weights, 4, 8, 2), "tap outside"),
        ((first, length + 1, taps, weights, 4, 8, 2), "not consecutive|cover"),
        ((first, length, taps, weights[:, :-1].copy(), 4, 8, 2), "weights"),
    ]:
        with pytest.raises(ValueError, match=message):
            helper.threshold_rle(values, 1, 4, 4, axis, nat._axis(4, 8), (8, 8), (0, 0), 0, 1, True, None)
    with pytest.raises(ValueError, match="mask range"):
        helper.threshold_rle(values, 1, 4, 4, nat._axis(4, 8), nat._axis(4, 8), (8, 8), (0, 0), 0, 2, True, None)


@standalone
def test_flag_and_reason():
    assert nat.native_reason({"INFERENCE_ACCEL_POSTPROC_NATIVE": "false"}) == "INFERENCE_ACCEL_POSTPROC_NATIVE=false"
    assert nat.native_reason({}) is None
    assert nat.instruction_set() in ("avx2+fma", "portable")


# -- inside the accelerated inference-models class -----------------------------------------------
@pytest.fixture(scope="module")
def stretch_models(tiny_package_factory):
    from inference_accel.integrations.inference_models import accelerate
    from tests.integration.conftest import load

    stock = load(tiny_package_factory("native-stretch"))
    return stock, accelerate(copy.copy(stock))


@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_numpy_executor_when_switched_off(stretch_models, mask_format, monkeypatch, caplog):
    """INFERENCE_ACCEL_POSTPROC_NATIVE=false: the numpy executor runs, says so once, same output."""
    from inference_accel import dispatch
    from tests.integration.conftest import assert_same_detections, random_frame

    stock, accelerated = stretch_models
    monkeypatch.setenv("INFERENCE_ACCEL_POSTPROC_NATIVE", "false")
    dispatch.reset_runtime_state()
    # 300x500: under NUMPY_DENSE_MIN_AREA (dense: the stock resize itself); 600x800: the numpy executor
    frames = [random_frame(np.random.default_rng(seed), hw) for seed, hw in ((1, (300, 500)), (2, (600, 800)))]
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        for frame in frames:
            assert_same_detections(
                stock(frame, confidence=0.05, mask_format=mask_format),
                accelerated(frame, confidence=0.05, mask_format=mask_format),
            )
    assert accelerated.acceleration["post_process"] == ("inference_accel", None)
    said = [r for r in caplog.records if "numpy executor" in r.getMessage()]
    assert len(said) == 1 and "INFERENCE_ACCEL_POSTPROC_NATIVE=false" in said[0].getMessage()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mask_format", ["dense", "rle"])
def test_non_finite_logits_run_the_stock_masks(stretch_models, bad, mask_format):
    import torch

    from tests.integration.conftest import assert_same_detections, random_frame

    stock, accelerated = stretch_models
    frame = random_frame(np.random.default_rng(4), (240, 320))
    x, meta = stock.pre_process(frame)
    boxes, logits, masks = stock.forward(x)
    masks = masks.clone()
    masks[:, :, 3, 4] = torch.tensor(float(bad))
    raw = (boxes, logits, masks)
    expected = stock.post_process(raw, meta, confidence=0.05, mask_format=mask_format)
    got = accelerated.post_process(raw, meta, confidence=0.05, mask_format=mask_format)
    assert len(expected[0]) > 0
    assert_same_detections(expected, got)
    assert accelerated.acceleration["post_process"] == ("stock", "non-finite mask logits")
