"""The stock (torch CUDA antialiased bilinear) mask kernel against the CPU model of the CUDA order.

What is proven here, without a GPU: ``kernels/stock_masks.py`` (under
Triton's interpreter, FMAs emulated exactly) equals
``postprocess/stock_cuda_model.py`` bit for bit (every pixel of every crop,
and nothing outside the crops), and the inputs used tell that order apart from
an unfused chain and from torch CPU's order. That the model equals torch
CUDA was read from torch's source and SASS; the ``gpu``-marked test checks
it where a GPU runs (``pytest --device cuda``), and there the kernel tests
run the GPU variant (hardware FMA) against the same model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from inference_accel.errors import InvalidArgumentError, InvalidMaskError
from inference_accel.integrations import stock_masks
from inference_accel.integrations.stock_masks import paste_dense
from inference_accel.postprocess.stock_cuda_model import axis_weights, stock_resize_cuda, tap_table
from inference_accel.postprocess.stock_triton import device_self_check, threshold_upsampled_triton, unsupported_reason

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available(),
        reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
    ),
    # inf/NaN logits: numpy (the model, the interpreter) warns on 0 * inf and inf - inf, as intended
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

f32 = np.float32


# -- inputs ---------------------------------------------------------------------------
def logits_case(case: str, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(N, h, w) float32 logits of one kind."""
    rng = np.random.default_rng(seed)
    n, h, w = shape
    if case == "random":
        return rng.standard_normal(shape).astype(f32)
    if case == "near_zero":  # products and sums in the subnormal range
        return (rng.standard_normal(shape) * 1e-38).astype(f32)
    if case == "cancelling":  # +-1 with a few ulps: exact zeros and one-ulp results decide signs
        sign = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
        return (sign * (1.0 + rng.integers(0, 4, shape) * 2.0**-22)).astype(f32)
    if case == "huge":  # sums overflow to inf
        return (np.where(rng.random(shape) < 0.5, 1.0, -1.0) * rng.uniform(1e38, 3.4e38, shape)).astype(f32)
    if case == "nonfinite":
        values = rng.standard_normal(shape).astype(f32)
        pick = rng.random(shape)
        values[pick < 0.05] = np.inf
        values[(pick >= 0.05) & (pick < 0.1)] = -np.inf
        values[(pick >= 0.1) & (pick < 0.15)] = np.nan
        return values
    if case == "constant":
        return np.full(shape, f32(0.3), f32) * np.arange(1, n + 1, dtype=f32)[:, None, None] - f32(0.3)
    raise ValueError(case)


CASES = ("random", "near_zero", "cancelling", "huge", "nonfinite", "constant")
SIZES = [
    ((5, 4), (23, 17)),  # both axes upsampled
    ((5, 27), (27, 27)),  # a 3-tap window (5 -> 27); width unchanged (taps (i, i + 1), weights (1, 0))
    ((12, 12), (40, 12)),  # width unchanged
    ((1, 1), (7, 5)),  # one source pixel
    ((1, 6), (3, 17)),  # one source row
    ((12, 12), (97, 131)),
    ((3, 3), (312, 10)),  # CPU and CUDA weights differ here
]


def kernel_dense(logits: np.ndarray, out_hw, device, threshold=0.0, **kw) -> np.ndarray:
    crops = threshold_upsampled_triton(torch.from_numpy(logits).to(device), out_hw, threshold, **kw)
    assert len(crops) == logits.shape[0]
    for crop in crops:
        if crop is not None:
            assert crop.mask.dtype == bool and crop.mask.any()
    return paste_dense(crops, out_hw)


def model_dense(logits: np.ndarray, out_hw, threshold=0.0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return stock_resize_cuda(logits, out_hw) > f32(threshold)


def unfused_model(logits: np.ndarray, out_hw) -> np.ndarray:
    """The CUDA weights and taps, but every multiply-add rounded twice (what a missing FMA gives)."""
    _, h, w = logits.shape
    ax, ay = axis_weights(w, out_hw[1]), axis_weights(h, out_hw[0])

    def chain(v, wt, count):
        acc = (v[..., 0] * wt[..., 0]).astype(f32)
        for j in range(1, v.shape[-1]):
            acc = np.where(j < count, (acc + (v[..., j] * wt[..., j]).astype(f32)).astype(f32), acc)
        return acc

    with np.errstate(all="ignore"):
        cols = np.minimum(ax.xmin[:, None] + np.arange(ax.weights.shape[1]), w - 1)
        rows = np.minimum(ay.xmin[:, None] + np.arange(ay.weights.shape[1]), h - 1)
        across = chain(logits[:, :, cols], ax.weights, ax.xsize)
        gathered = np.moveaxis(across[:, rows, :], 2, 3)
        return chain(gathered, np.broadcast_to(ay.weights[:, None, :], gathered.shape[1:]), ay.xsize[:, None])


# -- the model is not another order ---------------------------------------------------------
def test_the_inputs_tell_the_cuda_order_from_an_unfused_chain_and_from_torch_cpu():
    """If the kernel fused nothing, or used torch CPU's weights, these inputs would catch it."""
    from torchvision.transforms import functional as TF

    logits = logits_case("cancelling", (8, 12, 12), seed=1)
    out_hw = (97, 131)
    model = stock_resize_cuda(logits, out_hw)
    assert ((model > 0) != (unfused_model(logits, out_hw) > 0)).sum() > 0
    cpu = TF.resize(torch.from_numpy(logits), list(out_hw), interpolation=TF.InterpolationMode.BILINEAR).numpy()
    assert ((model > 0) != (cpu > 0)).sum() > 0
    # torch CPU's weight table (stock_masks.aa_weights, checked against torch at run time) differs too
    xmin, _, cpu_weights = stock_masks.aa_weights(3, 312)
    cuda = axis_weights(3, 312)
    assert (cpu_weights[:, :2].view(np.int32) != cuda.weights[:, :2].view(np.int32)).any()
    assert (xmin == cuda.xmin).all()


def test_three_tap_windows_exist_and_the_kernel_table_keeps_them():
    table = tap_table(5, 27)
    assert table.count.max() == 3 and table.count.min() == 1
    row = int(np.flatnonzero(table.count == 3)[0])
    assert table.weights[row, 2] == 0 and table.weights[row, :2].sum() > 0
    # an unchanged axis: two taps (i, i + 1) with weights (1, 0), the last one a single tap
    same = tap_table(12, 12)
    assert same.count.tolist() == [2] * 11 + [1]
    assert same.weights[:, 0].tolist() == [1.0] * 12 and not same.weights[:, 1:].any()


# -- kernel == model -------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("in_hw,out_hw", SIZES, ids=[f"{a[0]}x{a[1]}-{b[0]}x{b[1]}" for a, b in SIZES])
def test_kernel_equals_the_model_of_the_cuda_order(case, in_hw, out_hw, kernel_device):
    logits = logits_case(case, (3, *in_hw), seed=CASES.index(case) * 31 + in_hw[0] * 7 + in_hw[1])
    got = kernel_dense(logits, out_hw, kernel_device)
    want = model_dense(logits, out_hw)
    assert np.array_equal(got, want), f"{int((got != want).sum())} pixels differ"


def test_kernel_equals_the_model_where_the_order_decides(kernel_device):
    logits = logits_case("cancelling", (8, 12, 12), seed=1)
    got = kernel_dense(logits, (97, 131), kernel_device)
    want = model_dense(logits, (97, 131))
    assert np.array_equal(got, want)
    assert (got != (unfused_model(logits, (97, 131)) > 0)).any()  # a fusion-free kernel would fail here


def test_thresholds_at_exact_model_values_and_float32_rounding(kernel_device):
    logits = logits_case("random", (2, 6, 5), seed=3)
    out_hw = (29, 31)
    values = stock_resize_cuda(logits, out_hw)
    rng = np.random.default_rng(4)
    picks = [float(values.reshape(-1)[i]) for i in rng.integers(0, values.size, 3)]
    for threshold in picks + [float(np.nextafter(f32(picks[0]), f32(-np.inf))), -0.25, 0.1]:
        got = kernel_dense(logits, out_hw, kernel_device, threshold)
        assert np.array_equal(got, values > f32(threshold)), threshold
    # 0.1 is compared in float32 (as torch does): a value of float32(0.1) is not above it
    flat = np.full((1, 2, 2), f32(0.1), f32)
    assert not kernel_dense(flat, (5, 5), kernel_device, 0.1).any()
    assert kernel_dense(flat, (5, 5), kernel_device, 0.09).all()
    nan_crops = threshold_upsampled_triton(torch.from_numpy(logits).to(kernel_device), out_hw, float("nan"))
    assert nan_crops == [None, None]
    assert not kernel_dense(logits, out_hw, kernel_device, float("inf")).any()


def test_a_strided_view_of_padded_logits_reads_the_right_elements(kernel_device):
    """The integration passes the unpadded window of (Q, h, w) logits: a non-contiguous view."""
    padded = logits_case("random", (4, 14, 13), seed=12)
    view = torch.from_numpy(padded).to(kernel_device)[1:4, 2:12, 1:10]
    assert not view.is_contiguous()
    crops = threshold_upsampled_triton(view, (33, 47))
    want = model_dense(np.ascontiguousarray(padded[1:4, 2:12, 1:10]), (33, 47))
    assert np.array_equal(paste_dense(crops, (33, 47)), want)


def test_crops_hold_every_positive_pixel_and_stay_small(kernel_device):
    logits = np.full((3, 20, 20), f32(-2.0), f32)
    logits[0, 4:6, 7:9] = logits_case("cancelling", (1, 2, 2), seed=5)[0]
    logits[1, 19, 0] = 1.0  # a corner
    # logits[2]: nothing positive -> None, no launch work
    out_hw = (123, 77)
    crops = threshold_upsampled_triton(torch.from_numpy(logits).to(kernel_device), out_hw)
    assert crops[2] is None
    assert crops[0].rows.shape[0] < 30 and crops[0].rows.shape[1] < 20
    assert np.array_equal(paste_dense(crops, out_hw), model_dense(logits, out_hw))


def _windows_touching(table_axis, lo: int, hi: int) -> tuple[int, int]:
    """Brute force: the outputs whose CUDA tap window meets source indices lo..hi."""
    first, last = table_axis.xmin, table_axis.xmin + table_axis.xsize - 1
    hit = np.flatnonzero((last >= lo) & (first <= hi))
    return int(hit[0]), int(hit[-1]) + 1


@pytest.mark.parametrize("out_hw", [(4320, 7680), (8192, 8192)], ids=["8K-UHD", "8192"])
def test_8k_targets_crop_limited(out_hw, kernel_device):
    """8K outputs of a 78x78 grid: a small blob, so the crops (and the model's window) stay small."""
    n, side = 2, 78
    logits = np.full((n, side, side), f32(-3.0), f32)
    logits[0, 40:43, 60:63] = logits_case("cancelling", (1, 3, 3), seed=6)[0]
    logits[1, 0:2, 76:78] = logits_case("random", (1, 2, 2), seed=7)[0] + f32(0.5)
    crops = threshold_upsampled_triton(torch.from_numpy(logits).to(kernel_device), out_hw)
    ay, ax = axis_weights(side, out_hw[0]), axis_weights(side, out_hw[1])
    for m, crop in enumerate(crops):
        rows, cols = np.nonzero((logits[m] > 0))
        y0, y1 = _windows_touching(ay, rows.min(), rows.max())
        x0, x1 = _windows_touching(ax, cols.min(), cols.max())
        # outside [y0, y1) x [x0, x1) every tap is <= 0: the stock value is never > 0 there
        want = stock_resize_cuda(logits[m : m + 1], out_hw, window=(y0, y1, x0, x1))[0] > 0
        assert want.any() and crop is not None
        got = np.zeros_like(want)
        h, w = crop.rows.shape
        assert y0 <= crop.y0 and crop.y0 + h <= y1 and x0 <= crop.x0 and crop.x0 + w <= x1
        got[crop.y0 - y0 : crop.y0 - y0 + h, crop.x0 - x0 : crop.x0 - x0 + w] = crop.rows
        assert np.array_equal(got, want), f"mask {m}: {int((got != want).sum())} pixels differ"


@pytest.mark.interpreter
def test_the_gpu_variant_indexes_the_same_pixels_under_the_interpreter():
    """The GPU's tiles (8 x 64) and ``tl.fma`` (unfused by the interpreter) on inputs where fusion
    does not change a sign: the tile arithmetic of the variant a GPU compiles is right."""
    logits = logits_case("random", (3, 9, 7), seed=8)
    out_hw = (37, 130)  # 5 x 3 tiles of 8 x 64 per mask, the last ones partial
    assert np.array_equal(model_dense(logits, out_hw), unfused_model(logits, out_hw) > 0)  # precondition
    got = kernel_dense(logits, out_hw, torch.device("cpu"), gpu_variant=True)
    assert np.array_equal(got, model_dense(logits, out_hw))


# -- what the path refuses or short-cuts ---------------------------------------------------------
def test_equal_sizes_are_the_comparison_itself(kernel_device):
    logits = logits_case("nonfinite", (2, 9, 11), seed=9)
    got = kernel_dense(logits, (9, 11), kernel_device)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(got, logits > 0)


def test_downsampling_and_bad_inputs_are_refused_with_reasons(kernel_device):
    assert "downsampled" in unsupported_reason((78, 78), (1080, 40))
    assert unsupported_reason((78, 78), (1080, 1920)) is None
    ok = torch.zeros((1, 4, 4), dtype=torch.float32, device=kernel_device)
    with pytest.raises(ValueError, match="downsampled"):
        threshold_upsampled_triton(ok, (3, 8))
    with pytest.raises(InvalidMaskError, match="float32"):
        threshold_upsampled_triton(ok.double(), (8, 8))
    with pytest.raises(InvalidMaskError, match=r"\(N, h, w\)"):
        threshold_upsampled_triton(ok[0], (8, 8))
    with pytest.raises(InvalidArgumentError, match="positive"):
        threshold_upsampled_triton(ok, (0, 8))
    with pytest.raises(InvalidArgumentError, match="threshold"):
        threshold_upsampled_triton(ok, (8, 8), threshold="0")
    assert threshold_upsampled_triton(ok[:0], (8, 8)) == []


# -- ahead of time: the GPU variant's binary ------------------------------------------------------
_PTX_SCRIPT = r"""
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from inference_accel import aot
from inference_accel.kernels import stock_masks as k
rows = []
for arch in (87, 89, 90):
    (variant,) = k.STOCK_THRESHOLD.variants()
    report = aot.compile_for(variant, arch)
    source = ASTSource(fn=variant.fn, signature=dict(variant.signature), constexprs=dict(variant.constexprs))
    ptx = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(variant.options)).asm["ptx"]
    body = [line.strip() for line in ptx.splitlines()]
    rows.append(dict(arch=arch, local=report.local_bytes, stack=report.stack_bytes, regs=report.registers,
                     fusion=report.fp_fusion, fma=sum(l.startswith("fma.rn.f32") for l in body),
                     ftz=sum(".ftz" in l for l in body), f64=sum(".f64" in l for l in body),
                     unrounded=sum(l.startswith(("mul.f32", "add.f32", "fma.f32")) for l in body)))
json.dump(rows, sys.stdout)
"""


@pytest.mark.interpreter
def test_the_gpu_variant_compiles_for_sm87_89_90_without_spills_and_with_hardware_fma():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert [r["arch"] for r in rows] == [87, 89, 90]
    for r in rows:
        assert r["local"] == 0 and r["stack"] == 0, r  # no spills
        assert r["fusion"] is False, r
        # 3 x 2 horizontal + 2 vertical FMAs per pixel, each a rounded fma.rn.f32; nothing flushes
        # subnormals; the float64 emulation is not in the GPU variant; every mul/add is rounded alone
        assert r["fma"] >= 8 and r["ftz"] == 0 and r["f64"] == 0 and r["unrounded"] == 0, r


# -- on a GPU: the model against torch CUDA itself ---------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_model_and_kernel_equal_torch_cuda(case, kernel_device):
    """Only a GPU proves this: torchvision's resize of a CUDA tensor, bit for bit and thresholded."""
    from torchvision.transforms import functional as TF

    for in_hw, out_hw in SIZES + [((78, 78), (1080, 1920)), ((108, 108), (2160, 3840))]:
        logits = logits_case(case, (4, *in_hw), seed=11)
        cuda = TF.resize(
            torch.from_numpy(logits).to(kernel_device), list(out_hw), interpolation=TF.InterpolationMode.BILINEAR
        ).cpu().numpy()
        model = stock_resize_cuda(logits, out_hw)
        # bit for bit, every NaN payload counted as one NaN
        assert np.array_equal(np.isnan(cuda), np.isnan(model)), f"{case} {in_hw}->{out_hw}"
        finite_bits = [np.where(np.isnan(a), f32(0), a).view(np.int32) for a in (cuda, model)]
        assert np.array_equal(*finite_bits), f"{case} {in_hw}->{out_hw}"
        with np.errstate(invalid="ignore"):
            assert np.array_equal(kernel_dense(logits, out_hw, kernel_device), cuda > 0), f"{case} {in_hw}->{out_hw}"


# -- the first-use self-check -----------------------------------------------------------------
@pytest.mark.interpreter
def test_the_self_check_tells_the_cuda_order_from_torch_cpus():
    """On CPU tensors torchvision runs torch's CPU kernel: the check must report a difference."""
    reason = device_self_check("cpu")
    assert reason is not None and "differs from torchvision's resize on cpu" in reason


@pytest.mark.gpu
def test_the_self_check_passes_on_the_gpu(kernel_device):
    assert device_self_check(kernel_device) is None


# -- the inference-models integration's CUDA glue, on the interpreter --------------------------
@pytest.mark.parametrize("in_hw, target, canvas_hw, offset", [((6, 7), (40, 33), (40, 33), (0, 0)),
                                                             ((9, 5), (31, 50), (45, 60), (3, 7))])
@pytest.mark.parametrize("run_capacity", [1 << 16, 1], ids=["runs", "overflow-dense-crops"])
def test_integration_glue_pastes_and_encodes_the_kernel_masks(in_hw, target, canvas_hw, offset, run_capacity,
                                                              monkeypatch, caplog):
    """The CUDA branch of integrations.inference_models: dense canvas and COCO RLE equal the modelled CUDA masks,
    from the run kernels, and from the dense-crop kernel when the runs overflow (said once)."""
    from pycocotools import mask as mask_utils

    from inference_accel import dispatch
    from inference_accel.integrations import inference_models
    from inference_accel.integrations.inference_models import _cuda_dense_masks, _cuda_rle_counts
    from inference_accel.postprocess.triton_launch import TritonPostprocessor

    monkeypatch.setattr(inference_models, "_run_postprocessor", TritonPostprocessor(capacity=run_capacity))
    monkeypatch.setattr(dispatch, "_warned", set())

    logits = np.random.default_rng(7).standard_normal((4, *in_hw)).astype(np.float32)
    logits[1] = -1.0  # an empty mask
    expected = np.zeros((4, *canvas_hw), bool)
    oy, ox = offset
    expected[:, oy : oy + target[0], ox : ox + target[1]] = stock_resize_cuda(logits, target) > 0
    assert expected[0].any() and not expected[1].any()
    dense = _cuda_dense_masks(torch.from_numpy(logits), target, canvas_hw, offset)
    assert dense.dtype == torch.bool and np.array_equal(dense.numpy(), expected)
    counts = _cuda_rle_counts(torch.from_numpy(logits), target, canvas_hw, offset)
    decoded = [mask_utils.decode({"size": list(canvas_hw), "counts": c}) for c in counts]
    assert np.array_equal(np.stack(decoded).astype(bool), expected)
    overflowed = [r for r in caplog.records if "take the dense-crop stock-mask kernel" in r.getMessage()]
    assert len(overflowed) == (1 if run_capacity == 1 else 0)


def test_integration_gate_refuses_a_device_whose_resize_differs(monkeypatch):
    """On the CPU torchvision runs torch's CPU order, which the CUDA-order kernel must not claim to match."""
    from inference_accel.integrations import inference_models

    monkeypatch.setattr(inference_models, "_cuda_reasons", {})
    reason = inference_models._cuda_masks_reason(torch.device("cpu"))
    assert reason is not None and "differs from torchvision's resize" in reason
    assert inference_models._cuda_masks_reason(torch.device("cpu")) is reason  # checked once per device
