"""Package normalisation (scale, mean/std, colour order) on every preprocessing path, bit for bit.

Expected values: an independent formula written here with torchvision's own
ops in the order inference-models' RF-DETR chain applies them (PIL resize of
the frame in the model's channel order, ``to_tensor``, ``* (255 / scale)``
unless the scale is 255, ``normalize``), never the code under test. Then each
fast path (cpu, native for every instruction set this CPU runs, Triton under
the interpreter) equals the reference byte for byte, fp32 and fp16.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from inference_accel.errors import InvalidArgumentError
from inference_accel.flags import Flags
from inference_accel.preprocess import api, native
from inference_accel.preprocess.cpu import normalization_lut, preprocess_cpu
from inference_accel.preprocess.geometry import RESIZE_MODES, plan_geometry
from inference_accel.preprocess.normalization import Normalization, from_stock_config
from inference_accel.preprocess.reference import preprocess_reference
from inference_accel.triton_common import interpreter_active

NORMALIZATIONS = {
    "imagenet": Normalization.imagenet(),
    "imagenet-bgr": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), channel_order="bgr"),
    "half": Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "odd": Normalization((0.1234567, -3.25, 250.0), (0.0123, -2.0, 7.0e-3), channel_order="bgr"),
    "raw-scale-1": Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scale=1.0, channel_order="bgr"),
    "scale-127.5": Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scale=127.5),
    "scale-3-and-stats": Normalization((0.3, 0.2, 0.1), (0.9, 1.1, 0.7), scale=3.0),
    # fp16 overflows to +-inf here: every path must do it the same way.
    "tiny-std": Normalization((0.5, 0.0, 1.0), (1e-5, 3e-6, -1e-5)),
}
SIZES = [((1, 1), (16, 16)), ((7, 5), (16, 16)), ((37, 53), (13, 29)), ((120, 90), (24, 20))]
DTYPES = (torch.float32, torch.float16)


def assert_bitwise(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bytes (-0.0 != 0.0)."""
    got, expected = got.detach().cpu().contiguous(), expected.detach().cpu().contiguous()
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.dtype, expected.shape)
    same = got.reshape(-1).view(torch.uint8) == expected.reshape(-1).view(torch.uint8)
    assert bool(same.all()), f"{int((~same).sum())} byte(s) differ"


def frame_of(hw: tuple[int, int], seed: int) -> np.ndarray:
    frame = np.random.default_rng(seed).integers(0, 256, tuple(hw) + (3,), dtype=np.uint8)
    frame[0, 0] = (0, 255, 128)  # the extremes always appear
    return frame


def stock_formula(frame_bgr: np.ndarray, input_hw, mode: str, n: Normalization) -> torch.Tensor:
    """(3, H, W) float32 by torchvision's ops, as inference-models does them (independent of our code)."""
    g = plan_geometry(frame_bgr.shape[:2], input_hw, mode)
    ordered = frame_bgr[:, :, ::-1] if n.channel_order == "rgb" else frame_bgr
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(ordered)).resize(g.resized_hw[::-1], Image.BILINEAR))
    canvas = np.zeros(tuple(input_hw) + (3,), np.uint8)
    x0, y0, x1, y1 = g.content
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, input_hw[1]), min(y1, input_hw[0])
    canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    tensor = TF.to_tensor(canvas)
    if n.scale != 255:
        tensor = tensor * (255.0 / n.scale)
    return TF.normalize(tensor, list(n.mean), list(n.std))


def reference(frame: np.ndarray, input_hw, mode: str, n: Normalization, dtype=torch.float32) -> torch.Tensor:
    return preprocess_reference(frame, input_hw, mode, normalization=n)[0][0].to(dtype)


# -- the reference against the independent formula ---------------------------------------------
@pytest.mark.parametrize("name", NORMALIZATIONS)
@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_reference_equals_the_stock_formula(name, mode):
    n = NORMALIZATIONS[name]
    for k, (frame_hw, input_hw) in enumerate(SIZES):
        frame = frame_of(frame_hw, k)
        assert_bitwise(reference(frame, input_hw, mode, n), stock_formula(frame, input_hw, mode, n))


def test_default_is_imagenet_and_the_channel_order_is_honoured():
    frame = frame_of((30, 40), 5)
    default = preprocess_reference(frame, (16, 16))[0]
    assert_bitwise(default, preprocess_reference(frame, (16, 16), normalization=Normalization.imagenet())[0])
    swapped = preprocess_reference(frame, (16, 16), normalization=NORMALIZATIONS["imagenet-bgr"])[0]
    assert not torch.equal(default, swapped)


def test_lut_entries_equal_the_formula_on_every_byte():
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, 2)  # (1, 256, 3)
    for n in NORMALIZATIONS.values():
        expected = TF.to_tensor(ramp)
        if n.scale != 255:
            expected = expected * (255.0 / n.scale)
        expected = TF.normalize(expected, list(n.mean), list(n.std))[:, 0, :]
        assert_bitwise(torch.from_numpy(normalization_lut(torch.float32, n).copy()), expected)
        assert_bitwise(torch.from_numpy(normalization_lut(torch.float16, n).copy()), expected.half())


# -- fast paths against the reference ----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_cpu_path_equals_reference(name, mode, dtype):
    n = NORMALIZATIONS[name]
    for k, (frame_hw, input_hw) in enumerate(SIZES):
        frame = frame_of(frame_hw, 10 + k)
        out = torch.full((2, 3) + input_hw, 9.0, dtype=dtype)
        preprocess_cpu(frame, out, 1, plan_geometry(frame_hw, input_hw, mode), normalization=n)
        assert_bitwise(out[1], reference(frame, input_hw, mode, n, dtype))
        assert bool((out[0] == 9.0).all()), "another batch index was written"


def test_cpu_path_with_an_rgb_frame_reverses_only_for_bgr_models():
    frame = frame_of((33, 47), 3)
    g = plan_geometry(frame.shape[:2], (16, 16), "stretch")
    for n in NORMALIZATIONS.values():
        out = torch.empty(1, 3, 16, 16)
        preprocess_cpu(np.ascontiguousarray(frame[:, :, ::-1]), out, 0, g, bgr=False, normalization=n)
        assert_bitwise(out[0], reference(frame, (16, 16), "stretch", n))


needs_native = pytest.mark.skipif(native.native_reason() is not None, reason=f"helper unavailable: {native.native_reason()}")


@needs_native
@pytest.mark.parametrize("isa", native.available_isas() or ("portable",))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_native_path_equals_reference_for_every_isa(monkeypatch, isa, name, dtype):
    """Through the API, the instruction set chosen by INFERENCE_ACCEL_PREPROC_ISA."""
    monkeypatch.setenv(native.ISA_FLAG, isa)
    n = NORMALIZATIONS[name]
    for mode in RESIZE_MODES:
        for k, (frame_hw, input_hw) in enumerate(SIZES):
            frame = frame_of(frame_hw, 20 + k)
            out = torch.full((1, 3) + input_hw, 9.0, dtype=dtype)
            _, used = api.preprocess_into(frame, out, 0, mode, flags=Flags(), normalization=n)
            assert used == api.NATIVE
            assert_bitwise(out[0], reference(frame, input_hw, mode, n, dtype))


@needs_native
def test_native_path_with_an_rgb_frame(monkeypatch):
    frame = frame_of((41, 29), 4)
    g = plan_geometry(frame.shape[:2], (16, 16), "letterbox")
    for n in NORMALIZATIONS.values():
        out = torch.empty(1, 3, 16, 16)
        native.preprocess_native(np.ascontiguousarray(frame[:, :, ::-1]), out, 0, g, bgr=False, normalization=n)
        assert_bitwise(out[0], reference(frame, (16, 16), "letterbox", n))


@pytest.mark.skipif(
    not interpreter_active() and not torch.cuda.is_available(),
    reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # tiny-std in fp16: inf, as expected
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_triton_kernel_equals_reference(kernel_device, name, dtype):
    """On the run's device: the interpreter on CPU tensors, or the GPU with ``--device cuda``."""
    from inference_accel.preprocess.triton_launch import TritonPreprocessor

    n = NORMALIZATIONS[name]
    pre = TritonPreprocessor()
    for mode in RESIZE_MODES:
        for k, (frame_hw, input_hw) in enumerate(SIZES[:3]):  # the interpreter is slow; the tables do not vary with n
            frame = frame_of(frame_hw, 30 + k)
            out = torch.full((2, 3) + input_hw, 9.0, dtype=dtype, device=kernel_device)
            pre(frame, out, 1, plan_geometry(frame_hw, input_hw, mode), normalization=n)
            assert_bitwise(out[1], reference(frame, input_hw, mode, n, dtype))
            assert bool((out[0] == 9.0).all()), "another batch index was written"


def test_triton_tables_are_cached_per_normalization():
    from inference_accel.preprocess.triton_launch import TritonPreprocessor

    pre = TritonPreprocessor()
    a = pre.lut(torch.device("cpu"), NORMALIZATIONS["half"])
    assert pre.lut(torch.device("cpu"), Normalization((0.5,) * 3, (0.5,) * 3)) is a
    assert pre.lut(torch.device("cpu"), NORMALIZATIONS["odd"]) is not a
    assert_bitwise(pre.lut(torch.device("cpu")), pre.lut(torch.device("cpu"), Normalization.imagenet()))


@pytest.mark.parametrize("name", ["odd", "raw-scale-1"])
def test_reference_path_through_the_api(name):
    n = NORMALIZATIONS[name]
    frame = frame_of((50, 70), 6)
    out = torch.empty(1, 3, 20, 24, dtype=torch.float16)
    _, used = api.preprocess_into(frame, out, 0, "center-crop", flags=Flags(preproc_fast=False), normalization=n)
    assert used == api.REFERENCE
    assert_bitwise(out[0], stock_formula(frame, (20, 24), "center-crop", n).half())


# -- bad values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mean": (0.5, 0.5), "std": (1, 1, 1)}, "Normalization.mean must have 3 values, got 2"),
        ({"mean": (0.5, 0.5, 0.5, 0.5), "std": (1, 1, 1)}, "Normalization.mean must have 3 values, got 4"),
        ({"mean": "abc", "std": (1, 1, 1)}, "Normalization.mean must be three numbers"),
        ({"mean": 0.5, "std": (1, 1, 1)}, "Normalization.mean must be three numbers, got float"),
        ({"mean": (0.5, None, 0.5), "std": (1, 1, 1)}, "Normalization.mean[1] must be a number, got None"),
        ({"mean": (0.5, True, 0.5), "std": (1, 1, 1)}, "Normalization.mean[1] must be a number, got a bool"),
        ({"mean": (0.5, 0.5, 0.5), "std": (1, "1", 1)}, "Normalization.std[1] must be a number, got '1'"),
        ({"mean": (0.5, 0.5, math.nan), "std": (1, 1, 1)}, "Normalization.mean[2] must be finite, got nan"),
        ({"mean": (0, 0, 0), "std": (1, math.inf, 1)}, "Normalization.std[1] must be finite, got inf"),
        ({"mean": (0, 0, 0), "std": (1, 1, 0.0)}, "Normalization.std[2] must be non-zero, got 0.0"),
        ({"mean": (0, 0, 0), "std": (1, 1, -0.0)}, "Normalization.std[2] must be non-zero"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": 0}, "Normalization.scale must be finite and > 0, got 0.0"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": -255}, "Normalization.scale must be finite and > 0, got -255.0"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": math.inf}, "Normalization.scale must be finite and > 0, got inf"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": "255"}, "Normalization.scale must be a number, got '255'"),
        ({"mean": (0, 1e39, 0), "std": (1, 1, 1)}, "Normalization.mean[1] overflows float32: 1e+39"),
        ({"mean": (0, 0, 0), "std": (1e-50, 1, 1)}, "Normalization.std[0] is 0 in float32: 1e-50"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": 1e-40}, "Normalization.scale 1e-40 makes 255 / scale leave"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "scale": 1e300}, "Normalization.scale 1e+300 makes 255 / scale leave"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "channel_order": "rbg"}, "Normalization.channel_order must be one of"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "channel_order": None}, "Normalization.channel_order must be one of"),
    ],
)
def test_bad_values_raise_an_error_naming_the_field(kwargs, message):
    with pytest.raises(InvalidArgumentError) as info:
        Normalization(**kwargs)
    assert message in str(info.value)


def test_values_are_normalised_to_floats_and_the_order_to_lower_case():
    n = Normalization([1, 2, 3], np.array([4.0, 5.0, 6.0]), scale=np.float32(2.0), channel_order="BGR")
    assert n == Normalization((1.0, 2.0, 3.0), (4.0, 5.0, 6.0), 2.0, "bgr")
    assert type(n.mean[0]) is float and type(n.scale) is float and hash(n) == hash(Normalization((1, 2, 3), (4, 5, 6), 2, "bgr"))
    with pytest.raises(AttributeError):
        n.scale = 1.0  # frozen


def test_preprocess_into_rejects_a_non_normalization():
    with pytest.raises(InvalidArgumentError, match="normalization must be a Normalization or None, got tuple"):
        api.preprocess_into(np.zeros((8, 8, 3), np.uint8), torch.empty(1, 3, 4, 4), normalization=((0, 0, 0), (1, 1, 1)))


# -- the stock config rules ------------------------------------------------------------------
@pytest.mark.parametrize(
    "scaling, stats, color, given, expected",
    [
        (255, [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]], "rgb", None, Normalization.imagenet()),
        (255, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "rgb", "rgb", Normalization((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 255, "bgr")),
        (127.5, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "rgb", None, Normalization((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 255, "rgb")),
        (1, None, "rgb", "bgr", Normalization((0, 0, 0), (1, 1, 1), 1.0, "rgb")),
        (None, None, "bgr", "bgr", Normalization((0, 0, 0), (1, 1, 1), 255.0, "bgr")),
        (255, None, "bgr", None, Normalization((0, 0, 0), (1, 1, 1), 255.0, "rgb")),  # stock swaps: None != bgr
        (255, None, "bgr", "rgb", Normalization((0, 0, 0), (1, 1, 1), 255.0, "rgb")),
    ],
)
def test_from_stock_config(scaling, stats, color, given, expected):
    assert from_stock_config(scaling, stats, color, given) == expected


def test_from_stock_config_rejects_bad_values():
    with pytest.raises(InvalidArgumentError, match="Normalization.scale must be finite and > 0, got 0.0"):
        from_stock_config(0, None, "rgb")
    with pytest.raises(InvalidArgumentError, match="colour mode must be one of"):
        from_stock_config(255, None, "grey")
    with pytest.raises(InvalidArgumentError, match="normalization must be \\[mean list, std list\\]"):
        from_stock_config(255, [[0.5, 0.5, 0.5]], "rgb")
