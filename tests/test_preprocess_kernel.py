"""The real Triton preprocessing kernel against the installed Pillow, byte for byte.

On the device of the run (``conftest.py``: ``--device cpu`` runs the kernel
under Triton's interpreter on CPU tensors, ``--device cuda`` on the GPU with
its tile shapes). The interpreter runs about a million elements per second, so
the unmarked tests stay small; exactness does not depend on size (the tables
do, and those are exercised at every ratio in ``test_preprocess.py``). The
``gpu``-marked tests take production frames (1080p, portrait, 4K, 8K) to every
model input size, fp32 and fp16, and CUDA-graph capture; their body also runs
here at a small size. Expected values come from the installed Pillow and
torchvision, compared as bytes. AOT compilation of every shipped variant is
tested in ``test_aot.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from inference_accel.flags import Flags
from inference_accel.preprocess import api, pillow_resize
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.reference import IMAGENET_MEAN, IMAGENET_STD
from inference_accel.preprocess.triton_launch import TritonPreprocessor, interpreter_active

pytestmark = pytest.mark.skipif(
    not interpreter_active() and not torch.cuda.is_available(),
    reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
)


def assert_bitwise(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bytes (so -0.0 != 0.0 and NaN == NaN); ``got`` may live on the GPU."""
    got = got.detach().cpu().contiguous()
    expected = expected.detach().cpu().contiguous()
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.dtype, expected.shape)
    same = got.reshape(-1).view(torch.uint8) == expected.reshape(-1).view(torch.uint8)
    if not bool(same.all()):
        bad = (~same).view(-1, got.element_size()).any(1).nonzero()[:5].flatten().tolist()
        raise AssertionError(f"{int((~same).sum())} byte(s) differ; first elements (flat): {bad}")


def pil_rgb_resized(frame_rgb: np.ndarray, out_hw: tuple[int, int], vertical_first: bool | None = None) -> np.ndarray:
    """Pillow's resize; with ``vertical_first`` given, its two passes forced into that order."""
    img = Image.fromarray(np.ascontiguousarray(frame_rgb))
    if vertical_first is None:
        return np.asarray(img.resize((out_hw[1], out_hw[0]), Image.BILINEAR))
    h, w = frame_rgb.shape[:2]
    mid = (w, out_hw[0]) if vertical_first else (out_hw[1], h)
    return np.asarray(img.resize(mid, Image.BILINEAR).resize((out_hw[1], out_hw[0]), Image.BILINEAR))


def expected_tensor(frame_rgb: np.ndarray, input_hw, mode="stretch", vertical_first=None) -> torch.Tensor:
    """PIL resize, canvas, torchvision to_tensor + normalize: (3, H, W) float32."""
    g = plan_geometry(frame_rgb.shape[:2], input_hw, mode)
    resized = pil_rgb_resized(frame_rgb, g.resized_hw, vertical_first)
    canvas = np.zeros(tuple(input_hw) + (3,), np.uint8)
    x0, y0, x1, y1 = g.content
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, input_hw[1]), min(y1, input_hw[0])
    canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return TF.normalize(TF.to_tensor(Image.fromarray(canvas)), IMAGENET_MEAN, IMAGENET_STD)


def run_kernel(frame, input_hw, mode="stretch", *, batch=1, index=0, dtype=torch.float32, bgr=True,
               vertical_first=None, device="cpu"):
    out = torch.full((batch, 3) + tuple(input_hw), 77.0, dtype=dtype, device=device)
    TritonPreprocessor()(frame, out, index, plan_geometry(frame.shape[:2], input_hw, mode), bgr=bgr, vertical_first=vertical_first)
    return out.cpu()


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 48), st.integers(1, 48), st.integers(1, 20), st.integers(1, 20), st.integers(0, 2**32 - 1)
)
def test_kernel_random_sizes_equal_pillow(kernel_device, in_h, in_w, out_h, out_w, seed):
    frame = np.random.default_rng(seed).integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
    out = run_kernel(frame, (out_h, out_w), device=kernel_device)
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], (out_h, out_w)))


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 16), st.integers(0, 6), st.integers(1, 12), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_kernel_portrait_reductions_equal_pillow(kernel_device, out_w, extra_w, out_h, extra_h, seed):
    """Mostly-vertical reductions: the vertical-first order on Pillow 13."""
    in_w = out_w + extra_w
    in_h = out_h + 2 * extra_w + extra_h
    frame = np.random.default_rng(seed).integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
    out = run_kernel(frame, (out_h, out_w), device=kernel_device)
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], (out_h, out_w)))


def structured(kind: str, hw) -> np.ndarray:
    h, w = hw
    y, x = np.mgrid[0:h, 0:w]
    if kind == "checker":
        base = ((y + x) % 2 * 255).astype(np.uint8)
        return np.stack([base, 255 - base, base], axis=2)
    if kind == "gradient":
        return np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], axis=2).astype(np.uint8)
    if kind == "extremes":  # all-255 with isolated zeros: exercises the clamp at 255
        frame = np.full((h, w, 3), 255, np.uint8)
        frame[::5, ::3] = 0
        return frame
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["checker", "gradient", "extremes"])
@pytest.mark.parametrize(
    "in_hw,out_hw",
    [
        ((24, 36), (10, 13)),  # downscale, horizontal first
        ((50, 12), (9, 11)),  # portrait reduction: vertical first on Pillow 13
        ((6, 5), (17, 23)),  # upscale
        ((1, 30), (4, 7)),  # one-pixel side
        ((30, 1), (7, 1)),  # one-pixel side, vertical only
    ],
)
def test_kernel_structured_inputs_equal_pillow(kind, in_hw, out_hw, kernel_device):
    frame = structured(kind, in_hw)
    out = run_kernel(frame, out_hw, device=kernel_device)
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], out_hw))


@pytest.mark.parametrize("vertical_first", [False, True])
def test_kernel_both_pass_orders_equal_pillow_in_that_order(vertical_first, kernel_device):
    frame = np.random.default_rng(5).integers(0, 256, (45, 17, 3), dtype=np.uint8)
    out_hw = (8, 12)
    h_first = expected_tensor(frame[:, :, ::-1], out_hw, vertical_first=False)
    v_first = expected_tensor(frame[:, :, ::-1], out_hw, vertical_first=True)
    assert not torch.equal(h_first, v_first), "case does not tell the orders apart"
    out = run_kernel(frame, out_hw, vertical_first=vertical_first, device=kernel_device)
    assert_bitwise(out[0], v_first if vertical_first else h_first)
    # Without an override the kernel follows the installed Pillow, whichever order that is.
    installed = expected_tensor(frame[:, :, ::-1], out_hw)
    default = run_kernel(frame, out_hw, device=kernel_device)
    assert_bitwise(default[0], installed)
    assert pillow_resize.vertical_first(frame.shape[:2], out_hw) == torch.equal(installed, v_first)


@pytest.mark.parametrize(
    "in_hw,out_hw,releases_disagree",
    [
        ((201, 2), (199, 1), True),  # 12.2/12.3: vertical first (201 > 100 * 2); 13: horizontal (2 <= 2 * 1)
        ((300, 3), (100, 4), True),  # 12.3: horizontal first (300 is not > 100 * 3); 13: vertical
        ((401, 4), (100, 9), False),  # a few pixels wide, upscaled across, reduced down: vertical on both
    ],
)
def test_kernel_tall_narrow_frames_follow_the_installed_pillow(in_hw, out_hw, releases_disagree, kernel_device):
    """Pass-order geometries of 12.3 and 13, against the installed Pillow's own bytes."""
    frame = np.random.default_rng(12).integers(0, 256, in_hw + (3,), dtype=np.uint8)
    rgb = frame[:, :, ::-1]
    h_first = expected_tensor(rgb, out_hw, vertical_first=False)
    v_first = expected_tensor(rgb, out_hw, vertical_first=True)
    assert not torch.equal(h_first, v_first), "case does not tell the orders apart"
    disagree = pillow_resize.vertical_first(in_hw, out_hw, "12.3.0") != pillow_resize.vertical_first(in_hw, out_hw, "13.0.0")
    assert disagree == releases_disagree
    installed = expected_tensor(rgb, out_hw)
    assert torch.equal(installed, v_first) == pillow_resize.vertical_first(in_hw, out_hw)
    assert_bitwise(run_kernel(frame, out_hw, device=kernel_device)[0], installed)


def test_kernel_fp16_batch_index_and_untouched_slots(kernel_device):
    frame = np.random.default_rng(6).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    out = run_kernel(frame, (12, 10), batch=3, index=2, dtype=torch.float16, device=kernel_device)
    assert out.dtype == torch.float16
    assert_bitwise(out[2], expected_tensor(frame[:, :, ::-1], (12, 10)).half())
    assert bool((out[:2] == 77.0).all())


def test_kernel_rgb_input_flag(kernel_device):
    rgb = np.random.default_rng(7).integers(0, 256, (19, 26, 3), dtype=np.uint8)
    out = run_kernel(rgb, (9, 9), bgr=False, device=kernel_device)
    assert_bitwise(out[0], expected_tensor(rgb, (9, 9)))
    swapped = run_kernel(rgb, (9, 9), bgr=True, device=kernel_device)
    assert not torch.equal(swapped[0], out[0])


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
def test_kernel_letterbox_and_center_crop(mode, kernel_device):
    frame = np.random.default_rng(8).integers(0, 256, (14, 35, 3), dtype=np.uint8)
    out = run_kernel(frame, (16, 12), mode, device=kernel_device)
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], (16, 12), mode))


def test_kernel_non_contiguous_frame_and_output(kernel_device):
    base = np.random.default_rng(9).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    frame = base[::2, ::-1]  # negative and doubled strides
    out = torch.full((3, 2, 11, 13), 5.0, device=kernel_device).permute(1, 0, 2, 3)  # (2, 3, 11, 13), strided
    TritonPreprocessor()(frame, out, 1, plan_geometry(frame.shape[:2], (11, 13)))
    assert_bitwise(out[1], expected_tensor(frame[:, :, ::-1], (11, 13)))
    assert bool((out[0] == 5.0).all().cpu())


def test_api_runs_the_kernel_when_cuda_is_claimed(monkeypatch, kernel_device):
    """The whole gate -> launcher -> kernel chain (on the CPU the interpreter stands in for a GPU)."""
    monkeypatch.setattr(api, "_cuda_available", lambda: True)
    frame = np.random.default_rng(10).integers(0, 256, (26, 18, 3), dtype=np.uint8)
    out = torch.zeros(2, 3, 10, 10, device=kernel_device)
    geometry, used = api.preprocess_into(frame, out, 1, flags=Flags())
    assert used == "triton" and geometry.input_hw == (10, 10)
    assert_bitwise(out[1], expected_tensor(frame[:, :, ::-1], (10, 10)))
    _, used = api.preprocess_into(frame, out, 0, flags=Flags(preproc_fast=False))
    assert used == "reference"


def test_launcher_caches_tables_per_size(kernel_device):
    pre = TritonPreprocessor()
    frame = np.zeros((9, 7, 3), np.uint8)
    out = torch.empty(1, 3, 4, 4, device=kernel_device)
    g = plan_geometry(frame.shape[:2], (4, 4))
    pre(frame, out, 0, g)
    first = pre.table(out.device, 7, 4)
    pre(frame, out, 0, g)
    assert pre.table(out.device, 7, 4) is first and len(pre._tables) == 2


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [
        ((2, 7680), (1, 312)),  # 8K-wide strip: the horizontal table of 7680 -> 312 (~50 taps)
        ((4320, 1), (432, 1)),  # 8K-tall strip: the vertical table of 4320 -> 432
        ((3, 3840), (2, 432)),
    ],
)
def test_kernel_8k_tables_on_thin_strips(in_hw, out_hw, kernel_device):
    """8K sources: thin strips keep the interpreter's work small, the tables are full size."""
    frame = np.random.default_rng(11).integers(0, 256, in_hw + (3,), dtype=np.uint8)
    out = run_kernel(frame, out_hw, device=kernel_device)
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], out_hw))


def test_warm_launch_allocates_nothing_and_never_syncs(kernel_device):
    """What CUDA-graph capture needs of the launcher, checked op by op.

    The frame is already a device tensor (the capturable case: a numpy frame
    goes through the pinned staging slot, whose reuse waits on an event).
    After one launch of a size, a second one with new pixels issues no torch
    op that allocates or syncs, and still equals Pillow.
    """
    from tests.helpers_graph_safety import TorchOpsRecorder

    rng = np.random.default_rng(3)
    pre = TritonPreprocessor()
    geometry = plan_geometry((50, 70), (16, 16), "letterbox")
    out = torch.empty(1, 3, 16, 16, device=kernel_device)
    pre(torch.from_numpy(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).to(kernel_device), out, 0, geometry)
    frame = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    device_frame = torch.from_numpy(frame).to(kernel_device)
    ids = lambda d: {k: id(v) for k, v in d.items()}  # noqa: E731
    tables, luts = ids(pre._tables), ids(pre._luts)  # noqa: SLF001
    with TorchOpsRecorder() as rec:
        pre(device_frame, out, 0, geometry)
    assert rec.ops == []  # the launcher issues no torch op at all: only the kernel
    assert ids(pre._tables) == tables and ids(pre._luts) == luts  # noqa: SLF001 - no re-upload, same tensors
    assert_bitwise(out[0], expected_tensor(frame[:, :, ::-1], (16, 16), "letterbox"))


# -- production frames (GPU) and the same body at a small size (any device) -------------
FRAMES = {"1080p": (1080, 1920), "portrait": (1920, 1080), "4k": (2160, 3840), "8k": (4320, 7680)}
MODEL_INPUTS = (312, 384, 432, 504, 624, 768)  # seg-nano .. seg-2xlarge
_frames: dict[tuple, np.ndarray] = {}


def production_frame(hw, seed=0) -> np.ndarray:
    """A random BGR frame, made once per size (an 8K frame is 100 MB)."""
    key = (tuple(hw), seed)
    if key not in _frames:
        _frames.clear()  # keep one at a time
        _frames[key] = np.random.default_rng(seed).integers(0, 256, tuple(hw) + (3,), dtype=np.uint8)
    return _frames[key]


def check_frame_against_pillow(frame, input_hw, mode, dtype, device, *, as_tensor=False, index=1):
    """The launcher writes ``out[index]`` byte-identical to the PIL reference chain, nothing else.

    ``as_tensor``: the frame is already on the device (what a whole-frame
    graph does); else a numpy frame goes through the pinned staging upload.
    """
    from inference_accel.preprocess.reference import preprocess_reference

    expected, geometry = preprocess_reference(frame, input_hw, mode)
    out = torch.full((index + 2, 3) + tuple(input_hw), 77.0, dtype=dtype, device=device)
    source = torch.from_numpy(frame).to(device) if as_tensor else frame
    TritonPreprocessor()(source, out, index, geometry)
    got = out.cpu()
    assert_bitwise(got[index], expected[0].to(dtype))
    assert bool((got[:index] == 77.0).all()) and bool((got[index + 1 :] == 77.0).all()), "other slots written"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("side", MODEL_INPUTS)
@pytest.mark.parametrize("frame", list(FRAMES))
def test_production_frames_equal_pillow(kernel_device, frame, side, dtype):
    check_frame_against_pillow(production_frame(FRAMES[frame]), (side, side), "stretch", dtype, kernel_device)


@pytest.mark.gpu
@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "device-tensor"])
@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
@pytest.mark.parametrize("frame", ["1080p", "portrait", "8k"])
def test_production_resize_modes_equal_pillow(kernel_device, frame, mode, as_tensor):
    check_frame_against_pillow(production_frame(FRAMES[frame], seed=1), (432, 432), mode, torch.float16,
                               kernel_device, as_tensor=as_tensor)
    check_frame_against_pillow(production_frame(FRAMES[frame], seed=1), (624, 624), mode, torch.float32,
                               kernel_device, as_tensor=as_tensor)


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "device-tensor"])
@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center-crop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_production_body_at_a_small_size(kernel_device, dtype, mode, as_tensor):
    """The GPU tests' body (reference chain, slots, upload paths), small enough for the interpreter."""
    check_frame_against_pillow(production_frame((27, 48), seed=2), (10, 12), mode, dtype, kernel_device,
                               as_tensor=as_tensor)


def capture_and_replay(kernel_device, frame_hw, input_hw, dtype, frames):
    """Launch once, capture the launch in a CUDA graph, replay it on each of ``frames`` (in place)."""
    geometry = plan_geometry(frame_hw, input_hw)
    pre = TritonPreprocessor()
    device_frame = torch.from_numpy(frames[0]).to(kernel_device)
    out = torch.empty((1, 3) + tuple(input_hw), dtype=dtype, device=kernel_device)
    pre(device_frame, out, 0, geometry)  # warm-up: compile, upload the tables
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        pre(device_frame, out, 0, geometry)
    results = []
    for frame in frames[1:]:
        device_frame.copy_(torch.from_numpy(frame))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        results.append(out[0].cpu())
    return results


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_launch_captured_in_a_cuda_graph_equals_pillow_on_new_frames(kernel_device, dtype):
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3)]
    for frame, got in zip(frames[1:], capture_and_replay(kernel_device, (1080, 1920), (312, 312), dtype, frames)):
        assert_bitwise(got, expected_tensor(frame[:, :, ::-1], (312, 312)).to(dtype))
