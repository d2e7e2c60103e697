"""One launch per batch: the postprocessing kernels with an image grid axis.

A batched engine gives (B, Q, C), (B, Q, 4), (B, Q, Hm, Wm). The Triton path
postprocesses all B images with one launch of each kernel
(``TritonPostprocessor.launch_batch``); every image's answer must equal the
dense reference on that image alone, and the single-image launch. Runs on
the device of the run (``conftest.py``): Triton's interpreter on CPU tensors
here, the GPU under ``--device cuda``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from inference_accel import dispatch
from inference_accel.errors import InvalidArgumentError
from inference_accel.flags import Flags
from inference_accel.postprocess import api
from inference_accel.postprocess import triton_launch as tl_launch
from inference_accel.postprocess.reference import postprocess_reference
from inference_accel.postprocess.triton_launch import RunsOverflow, TritonPostprocessor
from inference_accel.preprocess.geometry import plan_geometry
from tests.helpers_graph_safety import TorchOpsRecorder
from tests.test_postprocess_sparse import assert_same_detections, confident_logits, polygon_logits, random_boxes

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available(),
    reason="needs TRITON_INTERPRET=1 (conftest --device cpu) or a GPU (--device cuda)",
)


def make_batch(rng, batch, q, c, mask_hw, frame_hw, empty=()):
    """Stacked engine outputs; images listed in ``empty`` have no score above any threshold."""
    logits = torch.stack([confident_logits(q, c, rng) for _ in range(batch)])
    for image in empty:
        logits[image] = -9.0
    boxes = torch.stack([random_boxes(q, rng) for _ in range(batch)])
    masks = torch.stack([torch.from_numpy(polygon_logits(rng, q, mask_hw, frame_hw)) for _ in range(batch)])
    return logits, boxes, masks


def assert_batch_equals_reference(detections, logits, boxes, masks, geometry, frame_hw, **kw):
    assert len(detections) == logits.shape[0]
    for image, got in enumerate(detections):
        ref = postprocess_reference(logits[image], boxes[image], masks[image], frame_hw, geometry=geometry, **kw)
        assert_same_detections(got, ref)


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
def test_one_launch_equals_the_reference_per_image(kernel_device, mode):
    rng = np.random.default_rng(20)
    frame_hw = (70, 97)
    geometry = plan_geometry(frame_hw, (52, 52), mode) if mode != "stretch" else None
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 3, 5, 4, (13, 13), frame_hw, empty=(1,)))
    pp = TritonPostprocessor(capacity=1 << 14)
    got = pp.run_batch(logits, boxes, masks, geometry, frame_hw, threshold=0.5)
    assert_batch_equals_reference(got, logits, boxes, masks, geometry, frame_hw, threshold=0.5)
    assert len(got[1]) == 0 and len(got[0]) > 0 and len(got[2]) > 0
    # the same as three single-image launches
    for image in range(3):
        single = pp(logits[image], boxes[image], masks[image], geometry, frame_hw, threshold=0.5)
        assert_same_detections(got[image], single)


def test_fp16_strided_masks_class_mapping_and_limit(kernel_device):
    """Batch strides come from the tensor: a view of a bigger buffer, fp16 logits."""
    rng = np.random.default_rng(21)
    frame_hw = (64, 80)
    logits, boxes, masks = make_batch(rng, 4, 6, 5, (12, 12), frame_hw)
    logits[2, :, 3] = 4.0  # many candidates in one image: max_detections cuts there
    wide = torch.zeros(4, 8, 12, 12, dtype=torch.float16)
    wide[:, 1:7] = masks.half()
    masks16 = wide[:, 1:7].to(kernel_device)  # stride(0) = 8 * 144, not 6 * 144
    logits, boxes = logits.to(kernel_device), boxes.to(kernel_device)
    kw = dict(class_mapping=np.array([1, -1, 0, 2, 3]), max_detections=4, class_names=list("abcd"))
    got = TritonPostprocessor(capacity=1 << 14).run_batch(logits, boxes, masks16, None, frame_hw, **kw)
    assert_batch_equals_reference(got, logits, boxes, masks16, None, frame_hw, **kw)
    assert len(got[2]) == 4


def test_images_share_the_run_room_and_overflow_together(kernel_device):
    """A batch of B has room for B * capacity runs: a busy image may use an idle one's share."""
    rng = np.random.default_rng(22)
    frame_hw = (60, 90)
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 2, 4, 3, (12, 12), frame_hw))
    logits[1, 1:] = -9.0  # image 1: one detection, image 0: four
    busy, idle = (len_runs(TritonPostprocessor(capacity=1 << 14), logits[i], boxes[i], masks[i], frame_hw)
                  for i in range(2))
    assert busy > idle > 0
    share = (busy + idle + 1) // 2  # the batch fits; the busy image alone would not
    with pytest.raises(RunsOverflow):
        TritonPostprocessor(capacity=share)(logits[0], boxes[0], masks[0], None, frame_hw)
    got = TritonPostprocessor(capacity=share).run_batch(logits, boxes, masks, None, frame_hw)
    assert_batch_equals_reference(got, logits, boxes, masks, None, frame_hw)
    with pytest.raises(RunsOverflow):
        TritonPostprocessor(capacity=(busy + idle) // 2 - 1).run_batch(logits, boxes, masks, None, frame_hw)


def len_runs(pp, logits, boxes, masks, frame_hw) -> int:
    """Runs one image writes (the packet's total)."""
    from inference_accel.kernels.postprocess import HDR_TOTAL

    pending = pp.launch(logits, boxes, masks, None, frame_hw)
    pp.finish(pending)
    return int(pending.packet[HDR_TOTAL])


def test_warm_batch_launch_allocates_nothing_and_never_syncs(kernel_device):
    """What a CUDA graph of a batched frame would need: fixed buffers, no read-back."""
    rng = np.random.default_rng(23)
    frame_hw = (77, 123)
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 2, 6, 4, (20, 20), frame_hw))
    pp = TritonPostprocessor(capacity=1 << 14)
    pp.finish_batch(pp.launch_batch(logits, boxes, masks.flip(0).contiguous(), None, frame_hw))
    pointers = {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()}  # noqa: SLF001
    with TorchOpsRecorder() as rec:
        pending = pp.launch_batch(logits, boxes, masks, None, frame_hw)
    assert rec.ops and rec.allocating == [] and rec.syncing == []
    assert {k: b.data_ptr() for pool in pp._buffers.values() for k, b in pool.items()} == pointers  # noqa: SLF001
    assert_batch_equals_reference(pp.finish_batch(pending), logits, boxes, masks, None, frame_hw)


# -- the API: one launch when it can, per image otherwise, always the same answers -------
@pytest.fixture
def triton_gate(monkeypatch):
    """Force the Triton path on (on the CPU: for CPU tensors under the interpreter), restore after."""
    dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, lambda flags: None))
    monkeypatch.setattr(tl_launch, "_default", TritonPostprocessor(capacity=1 << 14))
    monkeypatch.setattr(api, "_batch_off", [])
    api.reset_fallback_counts()
    yield
    dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, api._check_triton))  # noqa: SLF001


def test_api_one_launch_for_a_batch_of_one_geometry(triton_gate, kernel_device, monkeypatch):
    rng = np.random.default_rng(24)
    frame_hw = (60, 90)
    geometry = plan_geometry(frame_hw, (48, 48))
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 3, 4, 3, (12, 12), frame_hw))
    launches = []
    real = TritonPostprocessor.launch_batch
    monkeypatch.setattr(
        TritonPostprocessor, "launch_batch", lambda self, *a, **kw: launches.append(a[0].shape[0]) or real(self, *a, **kw)
    )
    out = api.postprocess_batch(logits, boxes, masks, [geometry] * 3, flags=Flags())
    assert [used for _, used in out] == [api.BATCH] * 3
    assert launches == [3]
    assert_batch_equals_reference([d for d, _ in out], logits, boxes, masks, geometry, frame_hw)


def test_api_mixed_geometries_go_per_image_with_the_reason(triton_gate, kernel_device, caplog):
    rng = np.random.default_rng(25)
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 2, 4, 3, (12, 12), (60, 90)))
    geometries = [plan_geometry((60, 90), (48, 48)), plan_geometry((61, 90), (48, 48))]
    with caplog.at_level("WARNING"):
        out = api.postprocess_batch(logits, boxes, masks, geometries, flags=Flags())
    assert [used for _, used in out] == ["triton", "triton"]
    assert "geometries differ" in caplog.text
    for image, (det, _) in enumerate(out):
        ref = postprocess_reference(logits[image], boxes[image], masks[image], geometry=geometries[image])
        assert_same_detections(det, ref)


def test_api_batch_overflow_is_redone_per_image_and_counted(triton_gate, kernel_device, monkeypatch):
    rng = np.random.default_rng(26)
    frame_hw = (60, 90)
    geometry = plan_geometry(frame_hw, (48, 48))
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 2, 4, 3, (12, 12), frame_hw))
    logits[1, 1:] = -9.0  # image 1: one detection, image 0: four
    busy, idle = (len_runs(TritonPostprocessor(capacity=1 << 14), logits[i], boxes[i], masks[i], frame_hw)
                  for i in range(2))
    assert busy > idle > 0
    # room for 2 * idle runs: the batch overflows; alone, the idle image fits and the busy one does not
    monkeypatch.setattr(tl_launch, "_default", TritonPostprocessor(capacity=idle))
    out = api.postprocess_batch(logits, boxes, masks, [geometry] * 2, flags=Flags())
    assert [used for _, used in out] == ["reference", "triton"]
    assert api.fallback_counts() == {f"{api.BATCH}: run buffer overflow": 1, "triton: run buffer overflow": 1}
    assert_batch_equals_reference([d for d, _ in out], logits, boxes, masks, geometry, frame_hw)


def test_api_batch_launch_failure_turns_batches_off_not_the_frames(triton_gate, kernel_device, monkeypatch):
    rng = np.random.default_rng(27)
    frame_hw = (60, 90)
    geometry = plan_geometry(frame_hw, (48, 48))
    logits, boxes, masks = (t.to(kernel_device) for t in make_batch(rng, 2, 4, 3, (12, 12), frame_hw))

    def broken(self, *args, **kwargs):
        raise RuntimeError("grid axis 2 refused")

    monkeypatch.setattr(TritonPostprocessor, "run_batch", broken)
    out = api.postprocess_batch(logits, boxes, masks, [geometry] * 2, flags=Flags())
    assert [used for _, used in out] == ["triton", "triton"]
    assert api._batch_off and "grid axis 2 refused" in api._batch_off[0]  # noqa: SLF001
    assert_batch_equals_reference([d for d, _ in out], logits, boxes, masks, geometry, frame_hw)


def test_api_batch_arguments_are_checked(kernel_device):
    rng = np.random.default_rng(28)
    logits, boxes, masks = make_batch(rng, 2, 4, 3, (12, 12), (60, 90))
    geometry = plan_geometry((60, 90), (48, 48))
    with pytest.raises(InvalidArgumentError, match="same number of images, got 2, 2, 2, 3"):
        api.postprocess_batch(logits, boxes, masks, [geometry] * 3, flags=Flags())
    with pytest.raises(InvalidArgumentError, match="mask_logits must be a batch"):
        api.postprocess_batch(logits, boxes, masks[0], [geometry] * 2, flags=Flags())
    with pytest.raises(InvalidArgumentError, match="max_detections"):
        api.postprocess_batch(logits, boxes, masks, [geometry] * 2, max_detections=0, flags=Flags())
