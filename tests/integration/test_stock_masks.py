"""The exact twin of inference-models' mask upsampling against torchvision itself.

``inference_accel.integrations.stock_masks`` reproduces
``torchvision.transforms.functional.resize(BILINEAR, antialias) > 0`` on CPU
float32 logits. Every case compares against the installed torchvision, bit
for bit: the dense float32 twin (values) and the sparse evaluation (signs),
on random, near-zero, exactly-zero, smooth and one-pixel logits, upsampling
and unchanged axes of several sizes; downsampling is reported unsupported.
These need only torch / torchvision, so they run in the main venv too.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.transforms import functional as TF

from inference_accel.integrations import stock_masks as sm

pytestmark = pytest.mark.runs_without_inference_models
DEFAULT_DIRECT_MAX_CELL = sm.DIRECT_MAX_CELL


def stock(logits: np.ndarray, out_hw) -> np.ndarray:
    """What inference-models computes: torchvision's resize of the (N, h, w) logits, float32."""
    out = TF.resize(torch.from_numpy(np.ascontiguousarray(logits)), list(out_hw), interpolation=TF.InterpolationMode.BILINEAR)
    return out.numpy()


def sparse(logits: np.ndarray, out_hw, column_major: bool = False) -> np.ndarray:
    return sm.paste_dense(sm.threshold_upsampled(logits, out_hw, column_major=column_major), out_hw)


def logits_of(kind: str, n: int, hw, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = hw
    if kind == "random":
        return rng.standard_normal((n, h, w)).astype(np.float32)
    if kind == "near_zero":  # values a few ulps around 0: the sign depends on the last rounding
        return (rng.standard_normal((n, h, w)) * 1e-7).astype(np.float32)
    if kind == "zeros":  # exact zeros mixed with signs
        values = rng.standard_normal((n, h, w)).astype(np.float32)
        values[rng.random((n, h, w)) < 0.6] = 0.0
        return values
    if kind == "tiny":  # subnormal magnitudes
        return (rng.standard_normal((n, h, w)) * 1e-40).astype(np.float32)
    if kind == "blobs":  # mask-like: discs with noisy borders
        yy, xx = np.mgrid[0:h, 0:w]
        out = np.empty((n, h, w), np.float32)
        for i in range(n):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.5, max(h, w) / 2 + 1)
            out[i] = (r - np.hypot(yy - cy, xx - cx)) * rng.uniform(0.1, 3) + rng.standard_normal((h, w)) * 0.2
        return out
    if kind == "constant_rows":  # a row equal to 0 along a whole cell: the all-unsure path
        values = rng.standard_normal((n, h, w)).astype(np.float32)
        values[:, h // 2, :] = 0.0
        values[:, :, w // 3] = np.float32(1e-30)
        return values
    raise ValueError(kind)


SIZES = [
    ((78, 78), (1080, 1920)),
    ((78, 78), (1920, 1080)),
    ((78, 78), (312, 556)),
    ((78, 78), (312, 312)),
    ((60, 78), (811, 1013)),
    ((78, 78), (78, 200)),  # unchanged height
    ((78, 78), (310, 78)),  # unchanged width
    ((78, 78), (78, 78)),  # unchanged: torchvision returns the input
    ((8, 8), (9, 8)),
    ((1, 1), (17, 5)),
    ((3, 7), (4, 8)),
]
KINDS = ["random", "near_zero", "zeros", "tiny", "blobs", "constant_rows"]


def test_kernel_arithmetic_is_recognised():
    sm.reset_kernel_check()
    mode, reason = sm.kernel_check()
    assert reason is None and mode in (sm.FMA, sm.PLAIN)


@pytest.fixture(params=["per-pixel", "per-row"])
def evaluator(request, monkeypatch):
    """Both boundary-cell evaluators, on every case."""
    monkeypatch.setattr(sm, "DIRECT_MAX_CELL", 10**9 if request.param == "per-pixel" else 0)
    return request.param


@pytest.mark.parametrize("in_hw,out_hw", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_sparse_signs_equal_torchvision(kind, in_hw, out_hw, evaluator):
    logits = logits_of(kind, 3, in_hw, seed=zlib.crc32(repr((kind, in_hw, out_hw)).encode()))
    expected = stock(logits, out_hw) > 0
    for column_major in (False, True):  # row-major crops (dense output) and transposed ones (RLE)
        got = sparse(logits, out_hw, column_major)
        assert got.shape == expected.shape
        assert int((got != expected).sum()) == 0, column_major


@pytest.mark.parametrize("in_hw,out_hw", SIZES[:7] + [((78, 78), (40, 1920)), ((78, 40), (1920, 33))])
@pytest.mark.parametrize("kind", ["random", "near_zero"])
def test_dense_twin_equals_torchvision_bits(kind, in_hw, out_hw):
    """The float32 values themselves (width downsampling included), not only their signs."""
    mode, _ = sm.kernel_check()
    logits = logits_of(kind, 2, in_hw, seed=7)
    expected = stock(logits, out_hw)
    got = sm.resize_reference(logits, out_hw, mode)
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))


def test_near_zero_pixels_take_the_exact_chain(evaluator):
    """Logits built so that many outputs land within the float32 error bound of 0."""
    logits = logits_of("near_zero", 4, (78, 78), seed=11)
    logits[:, :, ::2] *= -1
    expected = stock(logits, (555, 777)) > 0
    assert np.array_equal(sparse(logits, (555, 777)), expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    dy=st.integers(0, 90),
    dx=st.integers(0, 90),
    scale=st.sampled_from([1.0, 1e-3, 1e-6, 1e-38]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sparse_signs_property(h, w, dy, dx, scale, seed):
    if w == 1 and dx == 0 and dy:  # torch's width-1 quirk: unsupported (tested below)
        return
    sm.DIRECT_MAX_CELL = 10**9 if seed % 2 else 0  # both evaluators (restored below)
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((2, h, w)) * scale).astype(np.float32)
    logits[rng.random((2, h, w)) < 0.2] = 0.0
    out_hw = (h + dy, w + dx)
    expected = stock(logits, out_hw) > 0
    try:
        assert np.array_equal(sparse(logits, out_hw), expected)
        assert np.array_equal(sparse(logits, out_hw, column_major=True), expected)
    finally:
        sm.DIRECT_MAX_CELL = DEFAULT_DIRECT_MAX_CELL


def test_downsampling_is_reported_not_guessed():
    assert sm.unsupported_reason((78, 78), (40, 100)) is not None
    assert sm.unsupported_reason((78, 78), (100, 77)) is not None
    assert sm.unsupported_reason((78, 78), (78, 78)) is None
    with pytest.raises(ValueError, match="downsampled"):
        sm.threshold_upsampled(np.zeros((1, 78, 78), np.float32), (40, 40))


def test_width_one_height_resize_is_reported_unsupported():
    """torch resizes a width-1 tensor in height to copies of its first row (not the separable
    result); that case is left to the stock code."""
    x = np.array([[[0.5], [-0.5]]], np.float32)
    assert not np.array_equal(stock(x, (3, 1)), sm.resize_reference(x, (3, 1)))
    assert "width 1" in sm.unsupported_reason((2, 1), (3, 1))
    assert sm.unsupported_reason((2, 1), (3, 2)) is None and sm.unsupported_reason((1, 1), (1, 1)) is None


def test_empty_and_full_masks():
    logits = np.stack([np.full((6, 6), -1.0), np.full((6, 6), 2.0), np.zeros((6, 6))]).astype(np.float32)
    crops = sm.threshold_upsampled(logits, (20, 30))
    assert crops[0] is None and crops[2] is None
    assert crops[1].mask.all() and crops[1].mask.shape == (20, 30)
    assert sm.threshold_upsampled(np.zeros((0, 6, 6), np.float32), (20, 30)) == []


@pytest.mark.parametrize("canvas,offset", [((1080, 1920), (0, 0)), ((1200, 2000), (37, 41)), ((1080, 1920), (0, 1500))])
def test_coco_counts_equal_pycocotools(canvas, offset):
    """The counts handed to pycocotools equal those of the stock encoder on the dense canvas."""
    from pycocotools import mask as mask_utils

    logits = logits_of("blobs", 6, (78, 78), seed=5)
    logits[4] = -1.0  # empty
    out_hw = (1080, 1920) if offset[1] < 1500 else (1080, 420)
    crops = sm.threshold_upsampled(logits, out_hw)
    dense = sm.paste_dense(crops, out_hw, offset, canvas)
    transposed = sm.threshold_upsampled(logits, out_hw, column_major=True)
    for crop, mask in zip(crops + transposed, np.concatenate([dense, dense])):
        counts = sm.coco_counts(crop, canvas, offset)
        mine = mask_utils.frPyObjects({"counts": counts, "size": list(canvas)}, *canvas)
        theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert mine["counts"] == theirs["counts"]
        assert sum(counts) == canvas[0] * canvas[1]


def test_paste_dense_places_crops():
    crop = sm.Crop(1, 2, np.array([[True, False], [True, True]]))
    dense = sm.paste_dense([crop, None], (4, 5), offset=(1, 0), canvas_hw=(6, 5))
    assert dense.shape == (2, 6, 5) and not dense[1].any()
    assert dense[0].sum() == 3 and dense[0, 2, 2] and dense[0, 3, 3] and not dense[0, 2, 3]
