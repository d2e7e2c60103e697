"""The real Triton postprocessing kernels under ``TRITON_INTERPRET=1`` vs the dense reference.

The interpreter runs each program in Python (about a second per million
elements), so sizes stay small. Expected values come from
``postprocess_reference`` (torch CPU) and supervision's encoder. AOT
compilation of every variant is tested in ``test_aot.py``.
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
    reason="needs TRITON_INTERPRET=1 (conftest sets it) or a GPU",
)


@pytest.fixture(scope="module")
def pp():
    return TritonPostprocessor(capacity=1 << 14)


def both(pp, logits, boxes, masks, frame_hw, geometry=None, **kw):
    ref = postprocess_reference(logits, boxes, masks, frame_hw, geometry=geometry, **kw)
    got = pp(logits, boxes, masks, geometry, frame_hw, **kw)
    assert_same_detections(got, ref)
    return got, ref


def test_random_logits(pp):
    rng = np.random.default_rng(0)
    q = 8
    logits = torch.from_numpy(rng.standard_normal((q, 5)).astype(np.float32) * 3)
    masks = torch.from_numpy((rng.standard_normal((q, 13, 17)) - 0.8).astype(np.float32))
    masks[:, ::3] *= 1e-5  # values near zero
    got, ref = both(pp, logits, boxes := random_boxes(q, rng), masks, (100, 37))
    assert len(ref) > 0 and boxes is not None


def test_structured_polygons_odd_frame(pp):
    rng = np.random.default_rng(1)
    q = 6
    masks = torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123)))
    got, ref = both(pp, confident_logits(q, 4, rng), random_boxes(q, rng), masks, (77, 123))
    assert ref.mask.any()


def test_downsampling_mask_larger_than_frame(pp):
    rng = np.random.default_rng(2)
    q = 4
    masks = torch.from_numpy(polygon_logits(rng, q, (96, 96), (200, 200)))
    both(pp, confident_logits(q, 3, rng), random_boxes(q, rng), masks, (70, 75))


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
def test_letterbox_and_center_crop(pp, mode):
    rng = np.random.default_rng(3)
    q = 5
    geometry = plan_geometry((72, 128), (52, 52), mode)
    masks = torch.from_numpy(polygon_logits(rng, q, (13, 13), (52, 52)))
    both(pp, confident_logits(q, 3, rng), random_boxes(q, rng), masks, (72, 128), geometry=geometry)


def test_selection_semantics(pp):
    rng = np.random.default_rng(4)
    q, c = 12, 7
    logits = confident_logits(q, c, rng, classes_per_query=2)
    logits[0, 0] = 0.0  # exactly the 0.5 threshold: dropped (strict)
    logits[1, :] = float("nan")  # NaN scores sort first and take top-k slots
    logits[2, 3] = logits[3, 3] = 2.5  # equal scores: ascending flat index
    masks = torch.from_numpy(polygon_logits(rng, q, (10, 12), (60, 70)))
    boxes = random_boxes(q, rng)
    both(pp, logits, boxes, masks, (60, 70), threshold=0.5)
    both(pp, logits, boxes, masks, (60, 70), class_mapping=np.array([2, -1, 0, 1, 3, -1, 4]), max_detections=4)
    both(pp, logits, boxes, masks, (60, 70), num_classes=4, class_names=list("abcd"))


def test_runtime_arguments_change_without_new_variants(pp):
    """Frame size, threshold, Q and C are runtime values: same kernels, new results."""
    from inference_accel.kernels import postprocess as k

    rng = np.random.default_rng(5)
    for q, c, frame, thr in ((4, 3, (50, 61), 0.3), (6, 5, (41, 90), 0.6)):
        masks = torch.from_numpy(polygon_logits(rng, q, (12, 12), frame))
        both(pp, confident_logits(q, c, rng), random_boxes(q, rng), masks, frame, threshold=thr)
    runtime = {name for contract in k.CONTRACTS for name in contract.runtime_scalars()}
    assert {"out_w", "capacity", "threshold", "qc", "num_classes", "num_queries", "frame_w", "frame_h"} <= runtime


def test_overflow_raises_and_api_falls_back_counted(monkeypatch):
    rng = np.random.default_rng(6)
    q = 4
    logits, boxes = confident_logits(q, 3, rng), random_boxes(q, rng)
    masks = torch.from_numpy(polygon_logits(rng, q, (12, 12), (60, 90)))
    small = TritonPostprocessor(capacity=3)
    with pytest.raises(RunsOverflow):
        small(logits, boxes, masks, None, (60, 90))
    # The gate: force the Triton path on for CPU tensors under the interpreter.
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


def test_small_outputs_are_gated_on_cpu():
    rng = np.random.default_rng(7)
    masks = torch.zeros(2, 13, 13)
    reason = api.INPUT_PRECONDITIONS["triton"](
        confident_logits(2, 3, rng), random_boxes(2, rng), masks, plan_geometry((40, 60), (52, 52))
    )
    assert reason and "channels-last" in reason


# -- CUDA-graph safety, checked on the CPU -------------------------------------------
def test_warm_launch_allocates_nothing_and_never_syncs():
    """What CUDA-graph capture needs of ``launch``, checked op by op.

    After one warm-up launch of a size, a second launch (new mask values, same
    sizes) may only write into existing buffers: no fresh tensor, no
    ``.item()``/``nonzero``. The kernels launch in between (they are not torch
    ops). This catches the host-side mistakes the interpreter forgives.
    """
    rng = np.random.default_rng(7)
    q = 6
    pp = TritonPostprocessor(capacity=1 << 14)
    logits, boxes = confident_logits(q, 4, rng), random_boxes(q, rng)
    pp.launch(logits, boxes, torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123))), None, (77, 123))
    masks = torch.from_numpy(polygon_logits(rng, q, (20, 20), (77, 123)))
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


# -- torch CUDA's edge semantics, modelled on the CPU ---------------------------------
@pytest.mark.parametrize(
    "frame_hw,case",
    [
        ((40, 96), "both sizes unchanged: torch CUDA copies the logits"),
        ((40, 150), "rows unchanged: taps (i, i + 1), weight 0"),
        ((70, 96), "columns unchanged: taps (i, i + 1), weight 0"),
        ((61, 130), "both resized: CUDA and CPU-FMA orders agree"),
    ],
)
def test_cuda_arithmetic_equals_the_cuda_model_with_inf_and_nan(frame_hw, case):
    """The kernel with ``ARITH_CUDA`` and CUDA tap tables vs ``taps.upsample_values(..., CUDA)``.

    On an unchanged axis torch's CUDA kernel still interpolates with weight 0,
    so ``0 * inf = NaN`` from a neighbour turns a pixel off; torch's CPU kernel
    uses the cell alone there. When neither axis changes, CUDA copies (an
    infinite logit stays positive, where the CPU kernel makes it NaN).
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
        logits, random_boxes(q, rng), torch.from_numpy(masks), None, frame_hw, arith=k.ARITH_CUDA
    )
    expected = np.stack([upsample_values(m, frame_hw, CUDA) > 0 for m in masks])
    assert len(det) == q
    assert np.array_equal(det.mask.to_dense(), expected), case
    # The case tells the CUDA and CPU orders apart exactly where torch's kernels differ.
    cpu_order = np.stack([upsample_values(m, frame_hw, FMA) > 0 for m in masks])
    resized = frame_hw == (61, 130)
    assert np.array_equal(expected, cpu_order) == resized, case
    if resized and torch_cpu_arith() == FMA:
        torch_cpu = torch.nn.functional.interpolate(
            torch.from_numpy(masks)[:, None], size=frame_hw, mode="bilinear", align_corners=False
        )[:, 0]
        assert np.array_equal(expected, (torch_cpu > 0).numpy())
