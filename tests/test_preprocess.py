"""Preprocessing: every implementation against the reference (PIL + torchvision).

Expected values always come from the installed Pillow and torchvision, never
from the code under test. The Triton kernel has its own module
(``test_preprocess_kernel.py``) because the interpreter is slow.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torchvision.transforms.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inference_accel import dispatch
from inference_accel.errors import InvalidFrameError
from inference_accel.flags import PREPROC_FLAG, Flags
from inference_accel.preprocess import api, native, pillow_resize
from inference_accel.preprocess.cpu import preprocess_cpu, resize_frame
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.reference import IMAGENET_MEAN, IMAGENET_STD, preprocess_reference

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The best CPU implementation: the compiled helper when it is built, else Pillow in bands.
BEST_CPU = api.NATIVE if native.native_reason() is None else api.CPU


# -- expected values from PIL and torchvision -----------------------------------
def pil_resize(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The installed Pillow's BILINEAR resize of a uint8 (H, W, 3) array."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((out_hw[1], out_hw[0]), Image.BILINEAR))


def pil_two_step(image: np.ndarray, out_hw: tuple[int, int], vertical_first: bool) -> np.ndarray:
    """Pillow's two passes in a forced order: two single-axis Pillow resizes."""
    h, w = image.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(image))
    mid = (w, out_hw[0]) if vertical_first else (out_hw[1], h)
    return np.asarray(img.resize(mid, Image.BILINEAR).resize((out_hw[1], out_hw[0]), Image.BILINEAR))


def torchvision_chain(frame_bgr: np.ndarray, input_hw: tuple[int, int], mode: str = "stretch") -> torch.Tensor:
    """BGR -> RGB -> PIL resize -> canvas -> torchvision to_tensor + normalize; (3, H, W)."""
    g = plan_geometry(frame_bgr.shape[:2], input_hw, mode)
    resized = pil_resize(frame_bgr[:, :, ::-1], g.resized_hw)
    canvas = np.zeros(input_hw + (3,), np.uint8)
    x0, y0, x1, y1 = g.content
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, input_hw[1]), min(y1, input_hw[0])
    canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return TF.normalize(TF.to_tensor(Image.fromarray(canvas)), IMAGENET_MEAN, IMAGENET_STD)


def photo(hw: tuple[int, int]) -> np.ndarray:
    """A real photograph (BGR) resized with OpenCV to ``hw``."""
    return np.ascontiguousarray(cv2.resize(skimage.data.astronaut()[:, :, ::-1], (hw[1], hw[0])))


# -- strategies -------------------------------------------------------------------
side = st.one_of(st.integers(1, 3), st.integers(1, 120), st.integers(120, 700))
out_side = st.one_of(st.integers(1, 3), st.integers(1, 160), st.integers(160, 400))


@st.composite
def resize_case(draw):
    """(image, out_hw) covering up/downscale, 1-pixel sides, landscape, portrait, both orders."""
    kind = draw(st.sampled_from(["any", "any", "portrait-reduce", "landscape", "tall-narrow"]))
    if kind == "tall-narrow":  # around Pillow 12.2/12.3's split at in_h > 100 * in_w
        in_w = draw(st.integers(1, 4))
        in_h = draw(st.integers(100 * in_w - 2, 100 * in_w + 40))
        out_h, out_w = draw(out_side), draw(out_side)
    elif kind == "portrait-reduce":  # Pillow 13 goes vertical first here
        out_w = draw(st.integers(1, 150))
        in_w = draw(st.integers(max(1, out_w - 20), out_w + 40))
        out_h = draw(st.integers(1, 150))
        in_h = draw(st.integers(out_h + 2 * max(0, in_w - out_w) + 1, out_h + 2 * max(0, in_w - out_w) + 600))
    elif kind == "landscape":
        in_h, in_w = draw(st.integers(1, 200)), draw(st.integers(200, 700))
        out_h, out_w = draw(out_side), draw(out_side)
    else:
        in_h, in_w, out_h, out_w = draw(side), draw(side), draw(out_side), draw(out_side)
    seed = draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
    return image, (out_h, out_w)


# -- the reference chain itself ---------------------------------------------------
@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center-crop"])
@pytest.mark.parametrize("hw,target", [((37, 53), (24, 24)), ((120, 40), (31, 17)), ((5, 7), (40, 40))])
def test_reference_chain_equals_torchvision(hw, target, mode):
    frame = np.random.default_rng(3).integers(0, 256, hw + (3,), dtype=np.uint8)
    x, _ = preprocess_reference(frame, target, mode)
    assert torch.equal(x[0], torchvision_chain(frame, target, mode))


# -- pillow_resize: tables, pass order, numpy reference -----------------------------
@FAST
@given(resize_case())
def test_numpy_reference_is_byte_exact_with_pillow(case):
    image, out_hw = case
    np.testing.assert_array_equal(pillow_resize.resize_reference(image, out_hw), pil_resize(image, out_hw))


def test_pass_order_rule_matches_installed_pillow():
    """Where the two orders give different bytes, Pillow's bytes pick the order we predict."""
    rng = np.random.default_rng(7)
    seen = {True: 0, False: 0}
    for in_hw, out_hw in [
        ((1920, 1080), (312, 312)),  # portrait 1080x1920 frame: vertical first on Pillow 13
        ((200, 50), (20, 45)),
        ((97, 30), (31, 29)),
        ((62, 20), (30, 4)),  # (in_h - out_h) == 32 == 2 * 16: horizontal first
        ((63, 20), (30, 4)),  # 33 > 32: vertical first
        ((300, 40), (100, 10)),
        ((40, 300), (10, 100)),
        ((50, 60), (20, 20)),
        ((1000, 3), (312, 312)),  # a few pixels wide: vertical first on 12.2/12.3 and 13
        ((201, 2), (199, 1)),  # vertical first on 12.2/12.3 only
        ((300, 3), (100, 4)),  # 300 is not > 100 * 3: vertical first on 13 only
    ]:
        image = rng.integers(0, 256, in_hw + (3,), dtype=np.uint8)
        h_first = pil_two_step(image, out_hw, vertical_first=False)
        v_first = pil_two_step(image, out_hw, vertical_first=True)
        assert not np.array_equal(h_first, v_first), "case does not tell the orders apart"
        expected = v_first if pillow_resize.vertical_first(in_hw, out_hw) else h_first
        np.testing.assert_array_equal(pil_resize(image, out_hw), expected)
        seen[pillow_resize.vertical_first(in_hw, out_hw)] += 1
    if pillow_resize.pillow_version() >= (12, 2):  # both orders occur from 12.2 on
        assert seen[True] >= 2 and seen[False] >= 2


def test_pass_order_by_version():
    """The table's rules on explicit releases (``test_pillow_pass_order.py`` has the full set)."""
    assert pillow_resize.vertical_first((1920, 1080), (312, 312), "13.0.0")
    assert not pillow_resize.vertical_first((1920, 1080), (312, 312), "12.3.0")
    assert not pillow_resize.vertical_first((1920, 1080), (312, 312), "12.1.0")
    assert not pillow_resize.vertical_first((1080, 1920), (312, 312), "13.0.0")
    assert pillow_resize.vertical_first((1000, 3), (312, 312), "12.3.0")
    assert not pillow_resize.vertical_first((1000, 3), (312, 312), "12.1.1")
    assert pillow_resize.vertical_first((201, 2), (199, 1), "12.3.0")
    assert not pillow_resize.vertical_first((201, 2), (199, 1), "13.0.0")
    assert pillow_resize.pass_sizes((10, 10), (10, 10)) == ()
    assert pillow_resize.pass_sizes((10, 20), (10, 5)) == ("h",)


def test_coefficient_tables_shape_and_sum():
    t = pillow_resize.coefficients(1920, 312)
    assert t.coef.dtype == np.int32 and t.coef.shape == (312, t.ksize)
    assert t.xmin[0] == 0 and t.xmin[-1] + t.xsize[-1] == 1920
    sums = t.coef.astype(np.int64).sum(axis=1)
    assert np.all(np.abs(sums - (1 << 22)) <= t.ksize)  # normalised, rounding per tap
    assert pillow_resize.coefficients(1920, 312) is t  # cached


# -- CPU fast path ----------------------------------------------------------------
@FAST
@given(resize_case())
def test_cpu_resize_is_byte_exact_with_pillow(case):
    image, out_hw = case
    np.testing.assert_array_equal(resize_frame(image, out_hw), pil_resize(image, out_hw))


@settings(max_examples=60, deadline=None)
@given(resize_case(), st.sampled_from(["stretch", "letterbox", "center-crop"]), st.integers(0, 2))
def test_cpu_preprocess_equals_reference(case, mode, index):
    frame, out_hw = case
    out = torch.full((3, 3) + out_hw, 123.0)
    preprocess_cpu(frame, out, index, plan_geometry(frame.shape[:2], out_hw, mode))
    expected = torchvision_chain(frame, out_hw, mode)
    torch.testing.assert_close(out[index], expected, rtol=0, atol=5e-7)
    assert torch.equal(out[index], expected)  # in fact bit-identical
    others = [i for i in range(3) if i != index]
    assert bool((out[others] == 123.0).all()), "other batch slots were touched"


@settings(max_examples=15, deadline=None)
@given(resize_case(), st.sampled_from(["stretch", "letterbox"]))
def test_cpu_fp16_equals_reference_rounded(case, mode):
    frame, out_hw = case
    out = torch.zeros((1, 3) + out_hw, dtype=torch.float16)
    preprocess_cpu(frame, out, 0, plan_geometry(frame.shape[:2], out_hw, mode))
    assert torch.equal(out[0], torchvision_chain(frame, out_hw, mode).half())


@pytest.mark.parametrize(
    "frame_hw,target",
    [
        ((1080, 1920), (312, 312)),  # landscape 1080p: horizontal first
        ((1920, 1080), (312, 312)),  # portrait: vertical first on Pillow 13
        ((2160, 3840), (432, 432)),
        ((4320, 7680), (312, 312)),  # 8K
        ((4320, 7680), (768, 768)),
        ((7680, 4320), (432, 432)),  # 8K portrait
        ((240, 320), (768, 1024)),  # upscale
    ],
)
def test_cpu_large_photographs_are_exact(frame_hw, target):
    frame = photo(frame_hw)
    frame[::97, ::89] = 255  # sprinkle extremes so clamping is exercised
    frame[5::101, 3::83] = 0
    resized = resize_frame(frame, target)
    np.testing.assert_array_equal(resized, pil_resize(frame, target))
    out = torch.empty((1, 3) + target)
    preprocess_cpu(frame, out, 0, plan_geometry(frame_hw, target))
    expected = TF.normalize(TF.to_tensor(Image.fromarray(pil_resize(frame[:, :, ::-1], target))), IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(out[0], expected)


def test_cpu_random_8k_frame_is_exact():
    frame = np.random.default_rng(8).integers(0, 256, (4320, 7680, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_frame(frame, (432, 432)), pil_resize(frame, (432, 432)))


def test_cpu_takes_non_contiguous_frames():
    base = np.random.default_rng(9).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for frame in (base[:, ::-1], base[10:250, 30:390], base[::2, ::3], base.transpose(1, 0, 2)):
        out = torch.empty(1, 3, 64, 48)
        preprocess_cpu(frame, out, 0, plan_geometry(frame.shape[:2], (64, 48)))
        assert torch.equal(out[0], torchvision_chain(frame, (64, 48)))


def test_cpu_single_thread_equals_two_threads():
    frame = photo((720, 1280))
    a, b = torch.empty(1, 3, 312, 312), torch.empty(1, 3, 312, 312)
    g = plan_geometry(frame.shape[:2], (312, 312))
    preprocess_cpu(frame, a, 0, g, threads=1)
    preprocess_cpu(frame, b, 0, g, threads=2)
    assert torch.equal(a, b)


# -- gate and fallback --------------------------------------------------------------
def test_default_choice_without_gpu_is_native_and_triton_says_why():
    verdicts = {v.implementation.name: v for v in api.describe(Flags())}
    assert [v.implementation.name for v in api.describe(Flags())] == ["triton", "native", "cpu", "reference"]
    assert verdicts["triton"].reason == "torch.cuda is not available"
    assert verdicts["native"].reason == native.native_reason()
    assert verdicts["cpu"].available and verdicts["reference"].available
    frame = photo((90, 160))
    out = torch.empty(2, 3, 32, 32)
    geometry, used = api.preprocess_into(frame, out, 1, flags=Flags())
    assert used == BEST_CPU and geometry.resized_hw == (32, 32)
    assert torch.equal(out[1], torchvision_chain(frame, (32, 32)))


def test_flag_false_forces_reference(monkeypatch):
    monkeypatch.setenv(PREPROC_FLAG, "false")
    verdicts = {v.implementation.name: v.reason for v in api.describe(None)}
    assert verdicts["triton"] == verdicts["native"] == verdicts["cpu"] == f"{PREPROC_FLAG}=false"
    frame = photo((50, 70))
    out = torch.empty(1, 3, 20, 20)
    _, used = api.preprocess_into(frame, out)  # flags=None reads the environment
    assert used == "reference"
    assert torch.equal(out[0], torchvision_chain(frame, (20, 20)))


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
def test_modes_through_the_api(mode):
    frame = photo((100, 260))
    out = torch.empty(1, 3, 48, 64)
    geometry, used = api.preprocess_into(frame, out, 0, mode=mode, flags=Flags())
    assert used == BEST_CPU and geometry.mode == mode
    assert torch.equal(out[0], torchvision_chain(frame, (48, 64), mode))


def test_unsupported_out_dtype_falls_back_with_one_warning(caplog):
    frame = photo((40, 60))
    out = torch.empty(1, 3, 16, 16, dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        for _ in range(3):
            _, used = api.preprocess_into(frame, out, flags=Flags())
            assert used == "reference"
    for path in (BEST_CPU, api.CPU):
        warnings = [r for r in caplog.records if f"{path} path cannot take this input" in r.getMessage()]
        assert len(warnings) == 1 and "float64" in warnings[0].getMessage()
    assert torch.equal(out[0], torchvision_chain(frame, (16, 16)).double())


def test_out_on_another_device_skips_cpu_path(caplog):
    out = torch.empty(1, 3, 8, 8, device="meta")
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        _, used = api.preprocess_into(photo((20, 30)), out, flags=Flags())
    assert used == "reference"
    assert any("out is on meta" in r.getMessage() for r in caplog.records)


def test_triton_failure_disables_it_once_and_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(api, "_cuda_available", lambda: True)
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("launch failed: out of resources")

    monkeypatch.setitem(api.RUNNERS, "triton", broken)
    monkeypatch.setitem(api.INPUT_PRECONDITIONS, "triton", lambda *a: None)
    frame = photo((60, 80))
    out = torch.empty(1, 3, 24, 24)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        for _ in range(3):
            _, used = api.preprocess_into(frame, out, flags=Flags())
            assert used == BEST_CPU
    assert len(calls) == 1, "a failed Triton path must stay off for the process"
    disabled = [r for r in caplog.records if "fast path disabled" in r.getMessage()]
    assert len(disabled) == 1 and "out of resources" in disabled[0].getMessage()
    reason = {v.implementation.name: v.reason for v in api.describe(Flags())}["triton"]
    assert reason.startswith("disabled after a failure") and "out of resources" in reason
    assert torch.equal(out[0], torchvision_chain(frame, (24, 24)))


def test_cpu_check_failure_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(api, "_cuda_available", lambda: (_ for _ in ()).throw(OSError("driver")))
    reason = {v.implementation.name: v.reason for v in api.describe(Flags())}["triton"]
    assert "capability check failed" in reason and "driver" in reason


# -- bad input ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame,message",
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10), np.uint8), "shape"),
        (np.zeros((10, 10, 4), np.uint8), "3 channels"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_frames_raise(frame, message):
    with pytest.raises(InvalidFrameError, match=message):
        api.preprocess_into(frame, torch.empty(1, 3, 8, 8), flags=Flags())


@pytest.mark.parametrize(
    "out,index,message",
    [
        (torch.empty(1, 3, 8), 0, "shape"),
        (torch.empty(1, 4, 8, 8), 0, "shape"),
        (torch.empty(2, 3, 8, 8), 2, "out of range"),
        (torch.empty(2, 3, 8, 8), -1, "out of range"),
        (torch.empty(1, 3, 8, 8, dtype=torch.uint8), 0, "floating-point"),
        (np.zeros((1, 3, 8, 8), np.float32), 0, "torch.Tensor"),
        (torch.empty(1, 3, 0, 8), 0, "empty"),
    ],
)
def test_bad_outputs_raise(out, index, message):
    with pytest.raises(ValueError, match=message):
        api.preprocess_into(np.zeros((10, 10, 3), np.uint8), out, index, flags=Flags())


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown resize mode"):
        api.preprocess_into(np.zeros((10, 10, 3), np.uint8), torch.empty(1, 3, 8, 8), mode="squash", flags=Flags())



def test_numpy_reference_tables_at_8k():
    """The tables the Triton kernel uses, at 8K -> model sizes, against Pillow's bytes."""
    frame = photo((4320, 7680))
    for target in ((312, 312), (768, 768)):
        np.testing.assert_array_equal(pillow_resize.resize_reference(frame, target), pil_resize(frame, target))
