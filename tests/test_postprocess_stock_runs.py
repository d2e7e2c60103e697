"""Stock-mode masks from the sparse run kernels: fixed buffers, every pixel equal to the stock resize.

``TritonPostprocessor.launch_masks_batch(..., mask_mode="stock")`` turns the
masks of detections chosen elsewhere into column runs with the bounds and
run kernels of ``kernels/postprocess.py`` (``MODE_STOCK``): inference-models'
``resize(BILINEAR, antialias=True) > 0`` in torch CUDA's order, on the logit
window and canvas the stock alignment uses. That is the capturable form of
the stock mask path (nothing allocated or read back until the one packet
copy), beside the dense-crop kernel of ``kernels/stock_masks.py``.

The reference is the numpy model of torch CUDA's order
(``stock_cuda_model.stock_resize_cuda``) thresholded densely, placed on the
canvas; under the interpreter the kernel's FMAs are emulated exactly. On a
GPU (``--device cuda``) the same tests run the hardware variant, and one
also compares with torchvision's own CUDA resize.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from inference_accel.integrations.stock_masks import paste_dense
from inference_accel.postprocess.crop_rle import build_compact_mask
from inference_accel.postprocess.mask_geometry import MaskPlacement
from inference_accel.postprocess.stock_cuda_model import stock_resize_cuda
from inference_accel.postprocess.stock_triton import threshold_upsampled_triton
from inference_accel.postprocess.triton_launch import RunsOverflow, TritonPostprocessor
from tests.helpers_graph_safety import TorchOpsRecorder
from tests.test_stock_masks_triton import CASES, SIZES, logits_case, unfused_model

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available(),
        reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
    ),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


def reference_canvas(logits: np.ndarray, placement: MaskPlacement, canvas_hw) -> np.ndarray:
    """(N, CH, CW) bool: the stock resize of each mask's window > 0, placed on the canvas, cut at its edges."""
    (r0, r1), (c0, c1) = placement.rows, placement.cols
    with np.errstate(all="ignore"):
        resized = stock_resize_cuda(logits[:, r0:r1, c0:c1], placement.out_hw) > 0
    out = np.zeros((logits.shape[0], *canvas_hw), bool)
    top, left = placement.top_left
    oh, ow = placement.out_hw
    ys, xs = slice(max(0, top), min(canvas_hw[0], top + oh)), slice(max(0, left), min(canvas_hw[1], left + ow))
    out[:, ys, xs] = resized[:, ys.start - top : ys.stop - top, xs.start - left : xs.stop - left]
    return out


def stock_runs(pp, logits_bqhw, queries, counts, placement, canvas_hw, device):
    """Launch and finish; per image, the (count, CH, CW) dense masks the runs describe."""
    pending = pp.launch_masks_batch(
        logits_bqhw.to(device),
        torch.as_tensor(queries, dtype=torch.int32).to(device),
        torch.as_tensor(counts, dtype=torch.int32).to(device),
        placement,
        canvas_hw,
    )
    return [build_compact_mask(crops, canvas_hw).to_dense() for crops in pp.finish_masks(pending)]


def whole(logits_shape, out_hw) -> MaskPlacement:
    return MaskPlacement((0, logits_shape[-2]), (0, logits_shape[-1]), tuple(out_hw), (0, 0))


# The dense kernel's sizes that differ in kind: a 3-tap window with an unchanged width, an unchanged
# width alone, one source pixel, and the size where the cancelling logits tell the orders apart.
RUN_SIZES = [SIZES[1], SIZES[2], SIZES[3], SIZES[5]]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("in_hw,out_hw", RUN_SIZES)
def test_every_pixel_equals_the_stock_cuda_model(case, in_hw, out_hw, kernel_device):
    logits = logits_case(case, (8, *in_hw), seed=1)
    placement = whole(logits.shape, out_hw)
    (dense,) = stock_runs(
        TritonPostprocessor(capacity=1 << 16), torch.from_numpy(logits)[None], [list(range(8))], [8], placement, out_hw,
        kernel_device,
    )
    expected = reference_canvas(logits, placement, out_hw)
    assert np.array_equal(dense, expected), f"{int((dense != expected).sum())} pixels differ"


def test_the_cases_would_catch_an_unfused_order():
    """The cancelling logits of the test above decide signs by the FMA: an unfused chain differs somewhere."""
    logits = logits_case("cancelling", (8, 12, 12), seed=1)
    with np.errstate(all="ignore"):
        assert ((stock_resize_cuda(logits, (97, 131)) > 0) != (unfused_model(logits, (97, 131)) > 0)).any()


def test_equals_the_dense_stock_kernel_on_the_same_logits(kernel_device):
    """Two kernels of one arithmetic (runs here, dense crops in kernels/stock_masks.py) agree pixel for pixel."""
    logits = logits_case("cancelling", (6, 12, 12), seed=4)
    out_hw = (97, 131)
    (dense,) = stock_runs(
        TritonPostprocessor(capacity=1 << 16), torch.from_numpy(logits)[None], [list(range(6))], [6],
        whole(logits.shape, out_hw), out_hw, kernel_device,
    )
    crops = threshold_upsampled_triton(torch.from_numpy(logits).to(kernel_device), out_hw)
    assert np.array_equal(dense, paste_dense(crops, out_hw))


def test_stock_window_canvas_offset_and_cut(kernel_device):
    """A letterbox window of the logits, resized and placed at a static-crop offset on a bigger canvas;
    a second placement runs past the canvas and is cut."""
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((5, 20, 20)) - 0.4).astype(np.float32)
    queries = [[4, 0, 2, 2, 9]]  # any order, repeats allowed; slot 4 is past the count and not read
    picked = logits[[4, 0, 2, 2]]
    for placement, canvas_hw in (
        (MaskPlacement((3, 17), (0, 20), (90, 130), (11, 7)), (120, 150)),
        (MaskPlacement((0, 20), (2, 18), (64, 80), (30, 40)), (70, 100)),
    ):
        (dense,) = stock_runs(
            TritonPostprocessor(capacity=1 << 15), torch.from_numpy(logits)[None], queries, [4], placement, canvas_hw,
            kernel_device,
        )
        assert dense.shape == (4, *canvas_hw)
        assert np.array_equal(dense, reference_canvas(picked, placement, canvas_hw))
        assert dense.any()


def test_unchanged_window_is_the_comparison_itself(kernel_device):
    """torchvision returns the input when the size is unchanged: an inf next to a cell does not make NaN."""
    logits = logits_case("nonfinite", (3, 16, 24), seed=5)
    placement = whole(logits.shape, (16, 24))
    (dense,) = stock_runs(
        TritonPostprocessor(capacity=1 << 14), torch.from_numpy(logits)[None], [[0, 1, 2]], [3], placement, (16, 24),
        kernel_device,
    )
    with np.errstate(invalid="ignore"):
        assert np.array_equal(dense, logits > 0)


def test_a_batch_shares_the_run_room_and_each_image_is_its_own(kernel_device):
    rng = np.random.default_rng(6)
    logits = (rng.standard_normal((3, 7, 10, 10)) - 0.2).astype(np.float32)
    queries = [[6, 1, 0], [2, 0, 0], [5, 3, 3]]
    counts = [3, 0, 2]
    placement, canvas_hw = whole(logits.shape, (41, 57)), (41, 57)
    got = stock_runs(
        TritonPostprocessor(capacity=1 << 12), torch.from_numpy(logits), queries, counts, placement, canvas_hw,
        kernel_device,
    )
    for image in range(3):
        picked = logits[image][queries[image][: counts[image]]]
        assert got[image].shape == (counts[image], *canvas_hw)
        assert np.array_equal(got[image], reference_canvas(picked, placement, canvas_hw))


def test_8k_canvas_sparse_blobs(kernel_device):
    """An 8K canvas: a few positive blobs, everything else negative (only the bounds are evaluated)."""
    logits = np.full((3, 78, 78), -4.0, np.float32)
    logits[0, 10:14, 20:25] = 3.0
    logits[1, 70:78, 0:3] = 0.5
    logits[2] = 0.0  # zero is not > 0: only the tap windows of the one tiny positive cell are
    logits[2, 40, 40] = 1e-30
    out_hw = (4320, 7680)
    placement = whole(logits.shape, out_hw)
    (dense,) = stock_runs(
        TritonPostprocessor(capacity=1 << 16), torch.from_numpy(logits)[None], [[0, 1, 2]], [3], placement, out_hw,
        kernel_device,
    )
    for i, (r0, r1, c0, c1) in enumerate(((500, 800, 1800, 2600), (3800, 4320, 0, 400), (2100, 2400, 3800, 4100))):
        with np.errstate(all="ignore"):
            window = stock_resize_cuda(logits[i : i + 1], out_hw, (r0, r1, c0, c1))[0] > 0
        assert window.any()
        assert np.array_equal(dense[i, r0:r1, c0:c1], window)
        assert dense[i].sum() == window.sum()  # nothing outside the window


def test_overflow_is_reported_not_truncated(kernel_device):
    logits = np.ones((1, 2, 8, 8), np.float32)
    logits[0, :, ::2, :] = -1.0  # stripes: many runs per column
    placement = whole(logits.shape, (64, 64))
    pp = TritonPostprocessor(capacity=8)
    pending = pp.launch_masks_batch(
        torch.from_numpy(logits).to(kernel_device), torch.tensor([[0, 1]], dtype=torch.int32).to(kernel_device),
        torch.tensor([2], dtype=torch.int32).to(kernel_device), placement, (64, 64),
    )
    with pytest.raises(RunsOverflow):
        pp.finish_masks(pending)


def test_warm_mask_launch_allocates_nothing_and_never_syncs(kernel_device):
    """What a CUDA graph of the stock mask stage needs: fixed buffers, no read-back."""
    rng = np.random.default_rng(7)
    logits = torch.from_numpy((rng.standard_normal((1, 6, 12, 12)) - 0.3).astype(np.float32)).to(kernel_device)
    queries = torch.tensor([[5, 2, 0]], dtype=torch.int32).to(kernel_device)
    counts = torch.tensor([3], dtype=torch.int32).to(kernel_device)
    placement, canvas_hw = whole(logits.shape, (50, 70)), (50, 70)
    pp = TritonPostprocessor(capacity=1 << 12)
    pp.finish_masks(pp.launch_masks_batch(logits, queries, counts, placement, canvas_hw))
    pointers = {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()}  # noqa: SLF001
    with TorchOpsRecorder() as rec:
        pending = pp.launch_masks_batch(logits, queries, counts, placement, canvas_hw)
    assert rec.ops and rec.allocating == [] and rec.syncing == []
    assert {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()} == pointers  # noqa: SLF001
    dense = build_compact_mask(pp.finish_masks(pending)[0], canvas_hw).to_dense()
    assert np.array_equal(dense, reference_canvas(logits.cpu().numpy()[0][[5, 2, 0]], placement, canvas_hw))


def test_bad_arguments_name_the_problem(kernel_device):
    from inference_accel.kernels import postprocess as k

    pp = TritonPostprocessor(capacity=64)
    logits = torch.zeros((1, 2, 8, 8)).to(kernel_device)
    q = torch.zeros((1, 2), dtype=torch.int32).to(kernel_device)
    c = torch.ones(1, dtype=torch.int32).to(kernel_device)
    placement = whole(logits.shape, (16, 16))
    with pytest.raises(ValueError, match="mask_mode must be one of"):
        pp.launch_masks_batch(logits, q, c, placement, (16, 16), mask_mode="nearest")
    with pytest.raises(ValueError, match="ARITH_CUDA or ARITH_CPU_FMA"):
        pp.launch_masks_batch(logits, q, c, placement, (16, 16), arith=k.ARITH_CPU_PLAIN)
    with pytest.raises(ValueError, match="downsampled"):
        pp.launch_masks_batch(logits, q, c, whole(logits.shape, (4, 16)), (16, 16))
    with pytest.raises(ValueError, match="do not match"):
        pp.launch_masks_batch(logits, torch.zeros((2, 2), dtype=torch.int32).to(kernel_device), c, placement, (16, 16))


@pytest.mark.gpu
def test_gpu_equals_torchvision_cuda(kernel_device):
    """On a GPU: the runs equal torchvision's own CUDA resize > 0 (the model is only read from SASS)."""
    from torchvision.transforms import functional as TF

    if kernel_device.type != "cuda":
        pytest.skip("needs --device cuda")
    logits = logits_case("cancelling", (8, 12, 12), seed=1)
    out_hw = (97, 131)
    (dense,) = stock_runs(
        TritonPostprocessor(capacity=1 << 16), torch.from_numpy(logits)[None], [list(range(8))], [8],
        whole(logits.shape, out_hw), out_hw, kernel_device,
    )
    stock = TF.resize(torch.from_numpy(logits).cuda(), list(out_hw), interpolation=TF.InterpolationMode.BILINEAR) > 0
    assert np.array_equal(dense, stock.cpu().numpy())
