"""One bad request must not slow or break the others.

- Invalid arguments are refused up front with an error naming the argument
  and its allowed range; the fast path stays on and the next valid request
  runs on it with the reference's answer.
- A fast path is switched off for the process only for its own fault (an
  error on valid input that the reference does not share).
- A stream with a bad frame at position k yields frames 0..k-1, in order,
  before the error, at depth 1 and at depth 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_accel import dispatch
from inference_accel.errors import InferenceAccelError, InvalidArgumentError, InvalidFrameError, UnreadableMediaError
from inference_accel.flags import Flags
from inference_accel.pipeline import SegmentationPipeline
from inference_accel.postprocess import api as post_api
from inference_accel.postprocess.api import postprocess
from inference_accel.postprocess.sparse_cpu import postprocess_sparse_cpu
from inference_accel.preprocess.geometry import plan_geometry
from tests.helpers_onnx import write_tiny_seg_model

FAST, REFERENCE = Flags(), Flags(postproc_fast=False)
GEOMETRY = plan_geometry((90, 120), (96, 96))


@pytest.fixture(scope="module")
def outputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's raw outputs with a few detections."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(20, 5, generator=gen) * 2
    boxes = torch.rand(20, 4, generator=gen) * 0.5 + 0.25
    masks = torch.randn(20, 24, 24, generator=gen)
    return logits, boxes, masks


def assert_same(got, want) -> None:
    assert len(got) == len(want) > 0
    for name in ("xyxy", "confidence", "class_id"):
        assert np.asarray(getattr(got, name)).tobytes() == np.asarray(getattr(want, name)).tobytes(), name
    assert np.array_equal(got.mask.to_dense(), want.mask.to_dense())


def cpu_path_reason() -> str | None:
    return {v.implementation.name: v.reason for v in post_api.describe(FAST)}["cpu"]


def assert_fast_path_still_runs(outputs) -> None:
    """The CPU fast path is on, takes a valid request, and equals the reference."""
    assert cpu_path_reason() is None
    assert dispatch.disabled(post_api.OP) == {}
    got, used = postprocess(*outputs, GEOMETRY, threshold=0.5, max_detections=7, flags=FAST)
    want, ref_used = postprocess(*outputs, GEOMETRY, threshold=0.5, max_detections=7, flags=REFERENCE)
    assert (used, ref_used) == ("cpu", "reference")
    assert_same(got, want)


BAD_MAX_DETECTIONS = [1.5, 0, -3, True, "7", None, np.float64(2.0)]
BAD_THRESHOLDS = [-0.1, 1.5, float("nan"), float("inf"), "0.4", None, True]


@pytest.mark.parametrize("bad", BAD_MAX_DETECTIONS)
def test_bad_max_detections_is_refused_by_name(outputs, bad):
    with pytest.raises(InvalidArgumentError, match=r"max_detections must be a positive int"):
        postprocess(*outputs, GEOMETRY, max_detections=bad, flags=FAST)


@pytest.mark.parametrize("bad", BAD_THRESHOLDS)
def test_bad_threshold_is_refused_by_name(outputs, bad):
    with pytest.raises(InvalidArgumentError, match=r"threshold must be a real number in \[0, 1\]"):
        postprocess(*outputs, GEOMETRY, threshold=bad, flags=FAST)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_detections": b} for b in BAD_MAX_DETECTIONS] + [{"threshold": b} for b in BAD_THRESHOLDS],
    ids=repr,
)
def test_a_bad_request_leaves_the_fast_path_on(outputs, kwargs):
    """A bad request is refused with InvalidArgumentError; the next valid one runs on the fast path (exact)."""
    with pytest.raises(InvalidArgumentError):
        postprocess(*outputs, GEOMETRY, flags=FAST, **kwargs)
    assert_fast_path_still_runs(outputs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"class_mapping": np.zeros((2, 2), np.int64)}, "class_mapping"),
        ({"class_mapping": np.array([0.5, 1.0])}, "class_mapping"),
        ({"geometry": (90, 120)}, "geometry"),
    ],
)
def test_other_bad_arguments_are_refused_by_name(outputs, kwargs, name):
    kwargs = {"geometry": GEOMETRY, **kwargs}
    with pytest.raises(InvalidArgumentError, match=name):
        postprocess(*outputs, flags=FAST, **kwargs)
    assert_fast_path_still_runs(outputs)


def test_inconsistent_tensors_are_refused(outputs):
    logits, boxes, masks = outputs
    with pytest.raises(InvalidArgumentError, match="same number of queries"):
        postprocess(logits, boxes[:5], masks, GEOMETRY, flags=FAST)
    with pytest.raises(InvalidArgumentError, match="boxes"):
        postprocess(logits, boxes[:, :3], masks, GEOMETRY, flags=FAST)
    with pytest.raises(InvalidArgumentError, match="floating-point"):
        postprocess(logits.int(), boxes, masks, GEOMETRY, flags=FAST)
    with pytest.raises(InvalidArgumentError, match="torch.Tensor"):
        postprocess(logits.numpy(), boxes, masks, GEOMETRY, flags=FAST)
    assert_fast_path_still_runs(outputs)


def test_errors_are_value_errors_of_the_package():
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(InvalidArgumentError, InferenceAccelError)


@pytest.mark.parametrize("kwargs", [{"max_detections": 1.5}, {"threshold": 2.0}, {"frame_hw": (0, 10)}], ids=repr)
def test_the_cpu_executor_checks_its_own_arguments(outputs, kwargs):
    kwargs = {"frame_hw": (90, 120), **kwargs}
    with pytest.raises(InvalidArgumentError):
        postprocess_sparse_cpu(*outputs, **kwargs)


def test_a_fault_of_the_fast_path_on_valid_input_still_switches_it_off(outputs, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("internal error")

    monkeypatch.setitem(post_api.RUNNERS, "cpu", broken)
    got, used = postprocess(*outputs, GEOMETRY, flags=FAST)
    want, _ = postprocess(*outputs, GEOMETRY, flags=REFERENCE)
    assert used == "reference"
    assert_same(got, want)
    assert "RuntimeError: internal error" in dispatch.disabled(post_api.OP)["cpu"]


def test_an_error_the_reference_shares_is_the_input_s_not_the_path_s(outputs, monkeypatch):
    """A valid-looking request that every path rejects raises, and no fast path is switched off."""

    def rejects(*args, **kwargs):
        raise ValueError("this input cannot be postprocessed")

    monkeypatch.setitem(post_api.RUNNERS, "cpu", rejects)
    monkeypatch.setitem(post_api.RUNNERS, "reference", rejects)
    with pytest.raises(ValueError, match="cannot be postprocessed"):
        postprocess(*outputs, GEOMETRY, flags=FAST)
    assert dispatch.disabled(post_api.OP) == {}


# -- the pipeline ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(write_tiny_seg_model(tmp_path_factory.mktemp("iso") / "tiny.onnx", size=64, queries=10))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    sizes = [(90, 120), (64, 80), (120, 90), (70, 70), (100, 50), (48, 96)]
    out = []
    for h, w in sizes:
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
        out.append(np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1)))[:h, :w].astype(np.uint8)))
    return out


@pytest.fixture(scope="module")
def reference_answers(tiny_model, frames):
    pipeline = SegmentationPipeline(
        tiny_model, flags=Flags(preproc_fast=False, postproc_fast=False), threshold=0.3, build_response=False
    )
    return [pipeline.predict(f) for f in frames]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_detections": 1.5}, "max_detections"),
        ({"max_detections": 0}, "max_detections"),
        ({"max_detections": True}, "max_detections"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"resize_mode": "squash"}, "resize_mode"),
    ],
)
def test_pipeline_refuses_bad_arguments_when_built(tiny_model, kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        SegmentationPipeline(tiny_model, **kwargs)


def test_a_bad_frame_leaves_the_pipeline_on_its_fast_paths(tiny_model, frames, reference_answers):
    pipeline = SegmentationPipeline(tiny_model, flags=FAST, threshold=0.3, build_response=False)
    with pytest.raises(InvalidFrameError):
        pipeline.predict(np.zeros((10, 10, 3), np.float32))
    result = next(pipeline.run([frames[0]]))
    from inference_accel.preprocess import api as pre_api, native

    best_preprocess = pre_api.NATIVE if native.native_reason() is None else pre_api.CPU
    assert result.implementations == {"preprocess": best_preprocess, "postprocess": "cpu"}
    assert_same(result.detections, reference_answers[0])
    assert dispatch.disabled("preprocess") == {} and dispatch.disabled("postprocess") == {}


# -- a bad frame mid-stream ---------------------------------------------------------------
def collect(stream) -> tuple[list, BaseException | None]:
    """Every result the stream yields, then the error it raised (None: it ended)."""
    results = []
    try:
        for result in stream:
            results.append(result)
    except Exception as exc:  # the error under test
        return results, exc
    return results, None


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_frames_before_a_bad_frame_come_out_in_order_first(tiny_model, frames, reference_answers, depth, k):
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(pipeline_depth=depth), threshold=0.3, build_response=False)
    stream = list(frames)
    stream[k] = np.zeros((4, 4), np.uint8)  # not (H, W, 3)
    results, error = collect(pipeline.run(stream))
    assert isinstance(error, InvalidFrameError)
    assert [r.index for r in results] == list(range(k))
    for r in results:
        assert_same(r.detections, reference_answers[r.index])


@pytest.mark.parametrize("depth", [1, 2])
def test_frames_before_a_failing_source_come_out_first(tiny_model, frames, reference_answers, depth):
    def source():
        yield from frames[:3]
        raise UnreadableMediaError("video ends in a corrupt packet")

    pipeline = SegmentationPipeline(tiny_model, flags=Flags(pipeline_depth=depth), threshold=0.3, build_response=False)
    results, error = collect(pipeline.run(source()))
    assert isinstance(error, UnreadableMediaError)
    assert [r.index for r in results] == [0, 1, 2]
    for r in results:
        assert_same(r.detections, reference_answers[r.index])


@pytest.mark.parametrize("depth", [1, 2])
def test_the_pipeline_still_runs_after_a_stream_error(tiny_model, frames, reference_answers, depth):
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(pipeline_depth=depth), threshold=0.3, build_response=False)
    collect(pipeline.run([frames[0], frames[1], None, frames[2]]))
    results, error = collect(pipeline.run(frames))
    assert error is None and [r.index for r in results] == list(range(len(frames)))
    for r in results:
        assert_same(r.detections, reference_answers[r.index])


# -- operator settings: an error at startup, never a disabled path ------------------------
BAD_KNOBS = [("INFERENCE_ACCEL_POSTPROC_THREADS", "1000000"), ("INFERENCE_ACCEL_POSTPROC_THREADS", "two"),
             ("INFERENCE_ACCEL_POSTPROC_NATIVE", "maybe")]


@pytest.mark.parametrize("name,value", BAD_KNOBS)
def test_a_bad_knob_is_an_error_at_startup_naming_it(tiny_model, monkeypatch, name, value):
    from inference_accel.errors import FlagValueError
    from inference_accel.flags import read_flags

    monkeypatch.setenv(name, value)
    with pytest.raises(FlagValueError, match=name):
        read_flags()
    with pytest.raises(FlagValueError, match=name):
        SegmentationPipeline(tiny_model)


@pytest.mark.parametrize("name,value", BAD_KNOBS)
def test_a_bad_knob_mid_run_raises_and_leaves_the_fast_path_on(outputs, monkeypatch, name, value):
    from inference_accel.errors import FlagValueError

    monkeypatch.setenv(name, value)
    with pytest.raises(FlagValueError, match=name):
        postprocess(*outputs, GEOMETRY, threshold=0.5, max_detections=20, flags=FAST)
    monkeypatch.delenv(name)
    assert_fast_path_still_runs(outputs)
