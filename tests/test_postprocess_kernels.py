"""The real Triton postprocessing kernels vs the dense reference on the same device.

On the device of the run (``conftest.py``): ``--device cpu`` runs the kernels
under Triton's interpreter on CPU tensors (about a second per million
elements, so the unmarked tests stay small) against ``postprocess_reference``
on torch's CPU kernel; ``--device cuda`` runs them on the GPU with its tile
shapes against ``postprocess_reference`` on the CUDA tensors (torch CUDA's
``F.interpolate``). The ``gpu``-marked tests take production sizes (1080p, 4K
and 8K frames, 100-300 masks of every model's mask size, fp32 and fp16 mask
logits) and CUDA-graph capture; their reference is the dense reference's own
steps, chunked so that an 8K frame never needs an (N, H, W) mask, and their
body also runs here at a small size. AOT compilation of every variant is
tested in ``test_aot.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from inference_accel import dispatch
from inference_accel.flags import Flags
from inference_accel.postprocess import api
from inference_accel.postprocess import triton_launch as tl_launch
from inference_accel.postprocess.reference import postprocess_reference
from inference_accel.postprocess.triton_launch import RunsOverflow, TritonPostprocessor
from inference_accel.preprocess.geometry import plan_geometry
from tests.helpers_graph_safety import TorchOpsRecorder
from tests.test_postprocess_sparse import (
    assert_same_detections,
    confident_logits,
    polygon_logits,
    random_boxes,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available(),
    reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
)


@pytest.fixture(scope="module")
def pp():
    return TritonPostprocessor(capacity=1 << 14)


@pytest.fixture
def both(pp, kernel_device):
    """Run the kernels and the dense reference on ``kernel_device``; they must be identical."""

    def run(logits, boxes, masks, frame_hw, geometry=None, **kw):
        logits, boxes, masks = (t.to(kernel_device) for t in (logits, boxes, masks))
        ref = postprocess_reference(logits, boxes, masks, frame_hw, geometry=geometry, **kw)
        got = pp(logits, boxes, masks, geometry, frame_hw, **kw)
        assert_same_detections(got, ref)
        return got, ref

    return run


def test_random_logits(both):
    rng = np.random.default_rng(0)
    q = 8
    logits = torch.from_numpy(rng.standard_normal((q, 5)).astype(np.float32) * 3)
    masks = torch.from_numpy((rng.standard_normal((q, 13, 17)) - 0.8).astype(np.float32))
    masks[:, ::3] *= 1e-5  # values near zero
    got, ref = both(logits, boxes := random_boxes(q, rng), masks, (100, 37))
    assert len(ref) > 0 and boxes is not None


def test_structured_polygons_odd_frame(both):
    rng = np.random.default_rng(1)
    q = 6
    masks = torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123)))
    got, ref = both(confident_logits(q, 4, rng), random_boxes(q, rng), masks, (77, 123))
    assert ref.mask.any()


def test_downsampling_mask_larger_than_frame(both):
    rng = np.random.default_rng(2)
    q = 4
    masks = torch.from_numpy(polygon_logits(rng, q, (96, 96), (200, 200)))
    both(confident_logits(q, 3, rng), random_boxes(q, rng), masks, (70, 75))


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
def test_letterbox_and_center_crop(both, mode):
    rng = np.random.default_rng(3)
    q = 5
    geometry = plan_geometry((72, 128), (52, 52), mode)
    masks = torch.from_numpy(polygon_logits(rng, q, (13, 13), (52, 52)))
    both(confident_logits(q, 3, rng), random_boxes(q, rng), masks, (72, 128), geometry=geometry)


def test_selection_semantics(both):
    rng = np.random.default_rng(4)
    q, c = 12, 7
    logits = confident_logits(q, c, rng, classes_per_query=2)
    logits[0, 0] = 0.0  # exactly the 0.5 threshold: dropped (strict)
    logits[1, :] = float("nan")  # NaN scores sort first and take top-k slots
    logits[2, 3] = logits[3, 3] = 2.5  # equal scores: ascending flat index
    masks = torch.from_numpy(polygon_logits(rng, q, (10, 12), (60, 70)))
    boxes = random_boxes(q, rng)
    both(logits, boxes, masks, (60, 70), threshold=0.5)
    both(logits, boxes, masks, (60, 70), class_mapping=np.array([2, -1, 0, 1, 3, -1, 4]), max_detections=4)
    both(logits, boxes, masks, (60, 70), num_classes=4, class_names=list("abcd"))


def test_runtime_arguments_change_without_new_variants(both):
    """Frame size, threshold, Q and C are runtime values: same kernels, new results."""
    from inference_accel.kernels import postprocess as k

    rng = np.random.default_rng(5)
    for q, c, frame, thr in ((4, 3, (50, 61), 0.3), (6, 5, (41, 90), 0.6)):
        masks = torch.from_numpy(polygon_logits(rng, q, (12, 12), frame))
        both(confident_logits(q, c, rng), random_boxes(q, rng), masks, frame, threshold=thr)
    runtime = {name for contract in k.CONTRACTS for name in contract.runtime_scalars()}
    assert {"out_w", "capacity", "threshold", "qc", "num_classes", "num_queries", "frame_w", "frame_h"} <= runtime


def test_overflow_raises_and_api_falls_back_counted(monkeypatch, kernel_device):
    rng = np.random.default_rng(6)
    q = 4
    logits, boxes = confident_logits(q, 3, rng).to(kernel_device), random_boxes(q, rng).to(kernel_device)
    masks = torch.from_numpy(polygon_logits(rng, q, (12, 12), (60, 90))).to(kernel_device)
    small = TritonPostprocessor(capacity=3)
    with pytest.raises(RunsOverflow):
        small(logits, boxes, masks, None, (60, 90))
    if kernel_device.type == "cuda":
        # The gate's one-time self-check on this GPU, with the real postprocessor.
        assert api._cuda_self_check(kernel_device) is None  # noqa: SLF001
    # The gate: force the Triton path on (on the CPU: for CPU tensors under the interpreter).
    dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, lambda flags: None))
    monkeypatch.setattr(tl_launch, "_default", small)
    api.reset_fallback_counts()
    try:
        geometry = plan_geometry((60, 90), (48, 48))
        det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags())
        assert used == "reference"
        assert api.fallback_counts() == {"triton: run buffer overflow": 1}
        assert_same_detections(det, postprocess_reference(logits, boxes, masks, geometry=geometry))
        monkeypatch.setattr(tl_launch, "_default", TritonPostprocessor(capacity=1 << 12))
        det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags())
        assert used == "triton"
        assert_same_detections(det, postprocess_reference(logits, boxes, masks, geometry=geometry))
    finally:
        dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, api._check_triton))


@pytest.mark.interpreter
def test_small_outputs_are_gated_on_cpu():
    rng = np.random.default_rng(7)
    masks = torch.zeros(2, 13, 13)
    reason = api.INPUT_PRECONDITIONS["triton"](
        confident_logits(2, 3, rng), random_boxes(2, rng), masks, plan_geometry((40, 60), (52, 52))
    )
    assert reason and "channels-last" in reason


# -- CUDA-graph safety, checked op by op (on the CPU too) --------------------------------
def test_warm_launch_allocates_nothing_and_never_syncs(kernel_device):
    """What CUDA-graph capture needs of ``launch``, checked op by op.

    After one warm-up launch of a size, a second launch (new mask values, same
    sizes) may only write into existing buffers: no fresh tensor, no
    ``.item()``/``nonzero``. The kernels launch in between (they are not torch
    ops). This catches the host-side mistakes the interpreter forgives.
    """
    rng = np.random.default_rng(7)
    q = 6
    pp = TritonPostprocessor(capacity=1 << 14)
    logits, boxes = confident_logits(q, 4, rng).to(kernel_device), random_boxes(q, rng).to(kernel_device)
    warm = torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123))).to(kernel_device)
    pp.finish(pp.launch(logits, boxes, warm, None, (77, 123)))
    masks = torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123))).to(kernel_device)
    ids = lambda d: {k: id(v) for k, v in d.items()}  # noqa: E731
    tables, maps = ids(pp._tables), ids(pp._maps)  # noqa: SLF001
    pointers = {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()}  # noqa: SLF001
    with TorchOpsRecorder() as rec:
        pending = pp.launch(logits, boxes, masks, None, (77, 123))
    assert rec.ops, "the recorder saw nothing: it would pass anything"
    assert rec.allocating == [] and rec.syncing == []
    assert ids(pp._tables) == tables and ids(pp._maps) == maps  # noqa: SLF001 - no re-upload
    assert {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()} == pointers  # noqa: SLF001
    assert_same_detections(pp.finish(pending), postprocess_reference(logits, boxes, masks, (77, 123)))


# -- torch CUDA's edge semantics: modelled on the CPU, torch CUDA itself on a GPU ------
@pytest.mark.parametrize(
    "frame_hw,case",
    [
        ((40, 96), "both sizes unchanged: torch CUDA copies the logits"),
        ((40, 150), "rows unchanged: taps (i, i + 1), weight 0"),
        ((70, 96), "columns unchanged: taps (i, i + 1), weight 0"),
        ((61, 130), "both resized: CUDA and CPU-FMA orders agree"),
    ],
)
def test_cuda_arithmetic_equals_the_cuda_model_with_inf_and_nan(frame_hw, case, kernel_device):
    """The kernel with ``ARITH_CUDA`` and CUDA tap tables vs ``taps.upsample_values(..., CUDA)``.

    On an unchanged axis torch's CUDA kernel still interpolates with weight 0,
    so ``0 * inf = NaN`` from a neighbour turns a pixel off; torch's CPU kernel
    uses the cell alone there. When neither axis changes, CUDA copies (an
    infinite logit stays positive, where the CPU kernel makes it NaN). On a
    GPU the model and the kernel must also equal torch CUDA's ``F.interpolate``.
    """
    from inference_accel.kernels import postprocess as k
    from inference_accel.postprocess.taps import CUDA, FMA, torch_cpu_arith, upsample_values

    rng = np.random.default_rng(8)
    q = 3
    masks = (rng.standard_normal((q, 40, 96)) * 2 - 0.3).astype(np.float32)
    special = rng.random(masks.shape)
    masks[special < 0.04] = np.inf
    masks[(special >= 0.04) & (special < 0.07)] = -np.inf
    masks[(special >= 0.07) & (special < 0.10)] = np.nan
    logits = torch.full((q, 2), -9.0)
    logits[:, 0] = torch.tensor([9.0, 8.0, 7.0])  # detection i is query i
    det = TritonPostprocessor(capacity=1 << 15)(
        logits.to(kernel_device), random_boxes(q, rng).to(kernel_device), torch.from_numpy(masks).to(kernel_device),
        None, frame_hw, arith=k.ARITH_CUDA,
    )
    expected = np.stack([upsample_values(m, frame_hw, CUDA) > 0 for m in masks])
    assert len(det) == q
    assert np.array_equal(det.mask.to_dense(), expected), case
    if kernel_device.type == "cuda":
        torch_cuda = torch.nn.functional.interpolate(
            torch.from_numpy(masks).to(kernel_device)[:, None], size=frame_hw, mode="bilinear", align_corners=False
        )[:, 0]
        assert np.array_equal(expected, (torch_cuda > 0).cpu().numpy()), f"the CUDA model is not torch CUDA: {case}"
    # The case tells the CUDA and CPU orders apart exactly where torch's kernels differ.
    cpu_order = np.stack([upsample_values(m, frame_hw, FMA) > 0 for m in masks])
    resized = frame_hw == (61, 130)
    assert np.array_equal(expected, cpu_order) == resized, case
    if resized and torch_cpu_arith() == FMA:
        torch_cpu = torch.nn.functional.interpolate(
            torch.from_numpy(masks)[:, None], size=frame_hw, mode="bilinear", align_corners=False
        )[:, 0]
        assert np.array_equal(expected, (torch_cpu > 0).numpy())


# -- production sizes (GPU) and the same body at a small size (any device) -------------
# id: (frame_hw, queries, confident queries, mask side, resize mode, mask logits dtype)
PRODUCTION_CASES = {
    "1080p-nano-100": ((1080, 1920), 100, 100, 78, "stretch", torch.float32),
    "1080p-xlarge-300-fp16": ((1080, 1920), 300, 300, 156, "stretch", torch.float16),
    "portrait-medium-200-letterbox": ((1920, 1080), 200, 200, 108, "letterbox", torch.float32),
    "4k-medium-200-fp16": ((2160, 3840), 200, 200, 108, "stretch", torch.float16),
    "4k-2xlarge-300-center-crop": ((2160, 3840), 300, 300, 192, "center-crop", torch.float32),
    "8k-2xlarge-100-of-300": ((4320, 7680), 300, 100, 192, "stretch", torch.float32),
    "8k-nano-100-fp16-letterbox": ((4320, 7680), 100, 100, 78, "letterbox", torch.float16),
}
PRODUCTION_CAPACITY = 1 << 23  # runs; the default (1 << 18) is sized for ~100 masks at 1080p
REFERENCE_CHUNK = 16  # detections upsampled at a time: 16 planes of 8K are 2 GB of float32


def production_inputs(seed, frame_hw, queries, confident, side, mode, mask_dtype, device):
    """Raw outputs of a model with ``side``-sized masks: polygon logits with near-zero rows."""
    rng = np.random.default_rng(seed)
    logits = confident_logits(queries, 91, rng)
    logits[confident:] = -9.0  # only the first ``confident`` queries pass the threshold
    masks = polygon_logits(rng, queries, (side, side), (side * 4, side * 4), vertices=(8, 200))
    masks[:, ::7] *= 1e-5  # values within a few ulps of zero after interpolation
    masks[:, 3] = 0.0  # exact zeros: "> 0" is strict
    geometry = plan_geometry(frame_hw, (side * 4, side * 4), mode)
    tensors = (logits, random_boxes(queries, rng), torch.from_numpy(masks).to(mask_dtype))
    return (*(t.to(device) for t in tensors), geometry)


def dense_reference_in_chunks(logits, boxes, masks, geometry, *, chunk=REFERENCE_CHUNK, threshold=0.4,
                              max_detections=300):
    """``postprocess_reference``'s own steps (selection, placement, ``upsample_masks_dense``) on the
    tensors' device, ``chunk`` detections at a time: (detections without masks, (start, planes) blocks)."""
    from inference_accel.postprocess.mask_geometry import mask_placement
    from inference_accel.postprocess.reference import selection_to_detections, upsample_masks_dense
    from inference_accel.postprocess.selection import select_detections

    frame_hw = geometry.frame_hw
    selection = select_detections(logits, boxes, frame_hw, threshold=threshold, max_detections=max_detections,
                                  geometry=geometry)
    placement = mask_placement(geometry, masks.shape[-2:], frame_hw)

    def blocks():
        for start in range(0, len(selection.query), chunk):
            picked = masks.index_select(0, selection.query[start : start + chunk])
            yield start, upsample_masks_dense(picked, placement, frame_hw).cpu().numpy()

    return selection_to_detections(selection, None, None), blocks()


def assert_plane(compact, index, plane):
    """Detection ``index`` of a ``CompactMask`` equals the dense ``plane``, with a tight crop."""
    crop = compact.crop(index)
    x1, y1 = (int(v) for v in compact.offsets[index])
    area = int(plane.sum())
    if area == 0:
        assert not crop.any(), f"mask {index}: empty in the reference, not in the kernels'"
        return
    h, w = crop.shape
    window = plane[y1 : y1 + h, x1 : x1 + w]
    if window.shape != crop.shape or not np.array_equal(crop, window) or int(crop.sum()) != area:
        ys, xs = np.nonzero(plane)
        raise AssertionError(
            f"mask {index}: crop at ({x1}, {y1}) size {w}x{h}, reference bounds x {xs.min()}..{xs.max()} "
            f"y {ys.min()}..{ys.max()}; {abs(int(crop.sum()) - area)} pixel(s) of area differ"
        )


def assert_same_as_chunked_reference(got, reference):
    detections, blocks = reference
    np.testing.assert_array_equal(got.xyxy, detections.xyxy)
    np.testing.assert_array_equal(got.confidence, detections.confidence)
    np.testing.assert_array_equal(got.class_id, detections.class_id)
    seen = 0
    for start, planes in blocks:
        for j, plane in enumerate(planes):
            assert_plane(got.mask, start + j, plane)
            seen += 1
    assert seen == len(got)


def run_production_case(device, seed, frame_hw, queries, confident, side, mode, mask_dtype, *, capacity,
                        chunk=REFERENCE_CHUNK):
    logits, boxes, masks, geometry = production_inputs(seed, frame_hw, queries, confident, side, mode, mask_dtype,
                                                       device)
    pp = TritonPostprocessor(capacity=capacity)
    pp.interpreter_tiles = False  # the GPU's tile shapes, under the interpreter too
    got = pp(logits, boxes, masks, geometry, frame_hw)
    assert len(got) == min(confident, 300)
    assert_same_as_chunked_reference(got, dense_reference_in_chunks(logits, boxes, masks, geometry, chunk=chunk))
    return got, (logits, boxes, masks, geometry)


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(PRODUCTION_CASES))
def test_production_masks_equal_the_dense_reference(kernel_device, case):
    run_production_case(kernel_device, 10, *PRODUCTION_CASES[case], capacity=PRODUCTION_CAPACITY)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center-crop"])
@pytest.mark.parametrize("mask_dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_production_body_at_a_small_size(kernel_device, mode, mask_dtype):
    """The GPU tests' body (inputs, chunked reference, comparison) at a size the interpreter runs,
    with the GPU's tile shapes; the chunked reference equals ``postprocess_reference`` itself."""
    got, (logits, boxes, masks, geometry) = run_production_case(
        kernel_device, 11, (90, 160), 6, 4, 13, mode, mask_dtype, capacity=1 << 14, chunk=3
    )
    assert_same_detections(got, postprocess_reference(logits, boxes, masks, geometry=geometry))
    with pytest.raises(AssertionError, match="mask 1"):  # the comparison catches one flipped pixel
        detections, blocks = dense_reference_in_chunks(logits, boxes, masks, geometry, chunk=3)
        flipped = []
        for start, planes in blocks:
            planes = planes.copy()
            if start == 0:
                ys, xs = np.nonzero(planes[1])
                planes[1, ys[0], xs[0]] = False
            flipped.append((start, planes))
        assert_same_as_chunked_reference(got, (detections, iter(flipped)))


@pytest.mark.gpu
def test_api_takes_the_triton_path_at_1080p_and_equals_the_reference(kernel_device):
    """The whole gate (including the one-time self-check on this GPU) and the default capacity."""
    logits, boxes, masks, geometry = production_inputs(12, (1080, 1920), 100, 100, 78, "stretch", torch.float32,
                                                       kernel_device)
    api.reset_fallback_counts()
    det, used = api.postprocess(logits, boxes, masks, geometry, flags=Flags())
    assert used == "triton", (api.fallback_counts(), [v.reason for v in dispatch.explain(api.OP, Flags())])
    assert_same_as_chunked_reference(det, dense_reference_in_chunks(logits, boxes, masks, geometry))


@pytest.mark.gpu
def test_launch_captured_in_a_cuda_graph_equals_the_reference_on_new_outputs(kernel_device):
    """Capture ``launch`` once; replays on new model outputs (written in place) equal the reference."""
    args = (1080, 1920), 100, 100, 78, "stretch", torch.float32
    logits, boxes, masks, geometry = production_inputs(13, *args, kernel_device)
    pp = TritonPostprocessor(capacity=1 << 20)
    pp.launch(logits, boxes, masks, geometry, geometry.frame_hw, record_event=False)  # warm-up
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        pending = pp.launch(logits, boxes, masks, geometry, geometry.frame_hw, record_event=False)
    for seed in (14, 15):
        new = production_inputs(seed, *args, kernel_device)
        for static, fresh in zip((logits, boxes, masks), new[:3]):
            static.copy_(fresh)
        pp.poison()
        graph.replay()
        torch.cuda.synchronize()
        got = pp.finish(pending)
        assert_same_as_chunked_reference(got, dense_reference_in_chunks(logits, boxes, masks, geometry))
