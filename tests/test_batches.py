"""Batches: N frames per engine call, answers equal to one frame at a time.

The rule under test: with ``batch_size`` N the pipeline preprocesses each
frame into its index of one input buffer, runs the engine once for the N,
and postprocesses each frame on its own; every answer equals the same
frame's answer at ``batch_size=1`` bit for bit (boxes, scores, classes,
every mask pixel), on the fast and the reference paths, with mixed frame
sizes and a short last batch. The tiny models here never mix frames (each
output of frame b depends only on input b), which the first test checks on
the engine itself, so any difference is the pipeline's. Also checked: the
batch range read from ONNX (symbolic, fixed) and TensorRT (fixed shape, or
optimisation profile 0, on fakes holding exactly the members of TensorRT
10's and 11's ``ICudaEngine``), and the errors for a batch the model does
not take.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import supervision as sv
import torch

from inference_accel.engine.io_spec import BatchRange, check_io
from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine
from inference_accel.errors import InvalidArgumentError, InvalidModelError
from inference_accel.flags import Flags
from inference_accel.pipeline import SegmentationPipeline
from tests import trt_api_check as check
from tests.helpers_onnx import write_tiny_batch_seg_model, write_tiny_seg_model

THRESHOLD = 0.3
SIZES = [(90, 120), (64, 64), (120, 90), (200, 150), (37, 53), (150, 200), (81, 81)]  # 7 frames: short last batches
FAST = Flags()
REFERENCE = Flags(preproc_fast=False, postproc_fast=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Same weights (same seed), three batch dimensions: symbolic, fixed 2, fixed 1."""
    folder = tmp_path_factory.mktemp("batches")
    shape = dict(size=64, queries=10, classes=4, seed=3)
    return {
        "dynamic": str(write_tiny_batch_seg_model(folder / "dynamic.onnx", batch="batch", **shape)),
        "fixed2": str(write_tiny_batch_seg_model(folder / "fixed2.onnx", batch=2, **shape)),
        "fixed1": str(write_tiny_batch_seg_model(folder / "fixed1.onnx", batch=1, **shape)),
    }


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Crops of a real photograph, of 7 sizes: the tiny model's outputs follow the pixels."""
    import cv2
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(5)
    out = []
    for h, w in SIZES:
        y, x = rng.integers(0, 280, 2)
        crop = photo[y : y + 220, x : x + 220]
        out.append(np.ascontiguousarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)))
    return out


def make_pipeline(model: str, batch_size: int, flags: Flags = FAST, depth: int = 1) -> SegmentationPipeline:
    flags = Flags(flags.preproc_fast, flags.postproc_fast, flags.cuda_graphs, depth)
    return SegmentationPipeline(model, flags=flags, threshold=THRESHOLD, build_response=False, batch_size=batch_size)


@pytest.fixture(scope="module")
def one_at_a_time(models, frames) -> dict[str, list[sv.Detections]]:
    """The expected answers: batch_size 1, each frame alone, on each path."""
    return {
        name: [make_pipeline(models["dynamic"], 1, flags).predict(f) for f in frames]
        for name, flags in (("fast", FAST), ("reference", REFERENCE))
    }


def differences(got: sv.Detections, want: sv.Detections) -> list[str]:
    """Bitwise differences: boxes and scores by their bytes, classes, every mask pixel."""
    if len(got) != len(want):
        return [f"{len(got)} detections, want {len(want)}"]
    problems = []
    for name in ("xyxy", "confidence", "class_id"):
        if np.asarray(getattr(got, name)).tobytes() != np.asarray(getattr(want, name)).tobytes():
            problems.append(f"{name} differs")
    dense_got, dense_want = got.mask.to_dense(), want.mask.to_dense()
    if dense_got.shape != dense_want.shape or not np.array_equal(dense_got, dense_want):
        problems.append("mask pixels differ")
    return problems


def assert_same(got: list[sv.Detections], want: list[sv.Detections]) -> None:
    assert len(got) == len(want), f"{len(got)} results for {len(want)} frames"
    problems = {i: p for i, (g, w) in enumerate(zip(got, want)) if (p := differences(g, w))}
    assert not problems, problems


# -- the tiny models themselves ----------------------------------------------------------
def test_the_tiny_engine_never_mixes_frames(models):
    """Guard for everything below: batch N outputs == each frame run alone, on the engine."""
    batched = OnnxRuntimeEngine(models["dynamic"], batch_size=4)
    single = OnnxRuntimeEngine(models["dynamic"], batch_size=1)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    batched.slots[0].input.copy_(x)
    batched.run(0)
    for i in range(4):
        single.slots[0].input.copy_(x[i : i + 1])
        single.run(0)
        for name in ("dets", "labels", "masks"):
            assert torch.equal(getattr(single.slots[0], name)[0], getattr(batched.slots[0], name)[i]), (i, name)
    assert not torch.equal(batched.slots[0].masks[0], batched.slots[0].masks[1])  # the frames differ


def test_the_frames_give_varied_answers(one_at_a_time):
    """Guard: a frame landing in the wrong batch index would be visible."""
    answers = one_at_a_time["fast"]
    assert all(len(d) for d in answers)
    assert len({d.confidence.tobytes() for d in answers}) == len(answers)  # every frame scores differently
    assert len({int(d.mask.to_dense().sum()) for d in answers}) > len(answers) // 2  # and has its own masks
    assert_same(one_at_a_time["fast"], one_at_a_time["reference"])


# -- batches through the pipeline -----------------------------------------------------------
@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
def test_batches_equal_one_frame_at_a_time(models, frames, one_at_a_time, path, batch_size):
    flags = FAST if path == "fast" else REFERENCE
    pipeline = make_pipeline(models["dynamic"], batch_size, flags)
    assert pipeline.engine.slots[0].input.shape[0] == batch_size
    results = list(pipeline.run(frames))  # 7 frames: the last batch is short for N = 2, 3, 4
    assert [r.index for r in results] == list(range(len(frames)))
    assert_same([r.detections for r in results], one_at_a_time[path])
    assert_same(pipeline.predict_batch(frames[:batch_size]), one_at_a_time[path][:batch_size])


@pytest.mark.parametrize("batch_size", [2, 3])
def test_depth_two_batches_equal_one_frame_at_a_time(models, frames, one_at_a_time, batch_size):
    pipeline = make_pipeline(models["dynamic"], batch_size, FAST, depth=2)
    assert pipeline.engine.slots[0] is not pipeline.engine.slots[1]
    assert_same([r.detections for r in pipeline.run(frames)], one_at_a_time["fast"])


def test_threads_sharing_a_batched_pipeline_get_their_own_answers(models, frames, one_at_a_time):
    from concurrent.futures import ThreadPoolExecutor

    pipeline = SegmentationPipeline(
        models["dynamic"], flags=FAST, threshold=THRESHOLD, build_response=False, batch_size=2, concurrency=2
    )
    orders = [list(range(7)), list(reversed(range(7))), [2, 5, 0, 6, 1], [4, 4, 3]]
    with ThreadPoolExecutor(2) as executor:
        answers = list(executor.map(lambda order: pipeline.predict_batch([frames[i] for i in order]), orders))
    for order, got in zip(orders, answers):
        assert_same(got, [one_at_a_time["fast"][i] for i in order])


def test_a_fixed_batch_of_two_runs_padded_short_batches(models, frames, one_at_a_time):
    pipeline = make_pipeline(models["fixed2"], 2)
    assert pipeline.engine.spec.batch == BatchRange(2, 2)
    assert_same(pipeline.predict_batch(frames), one_at_a_time["fast"])  # 7 frames: 3 full batches + 1 padded
    assert_same([pipeline.predict(frames[4])], [one_at_a_time["fast"][4]])  # one frame, padded to 2


def test_one_frame_in_many_sizes_in_one_batch(models, frames, one_at_a_time):
    """Each batch index keeps its own geometry: the same frames in another order give the same answers."""
    order = [3, 0, 6, 4]
    pipeline = make_pipeline(models["dynamic"], 4)
    assert_same(pipeline.predict_batch([frames[i] for i in order]), [one_at_a_time["fast"][i] for i in order])


def test_a_stacked_array_is_n_frames_and_a_single_frame_is_refused(models, frames, one_at_a_time):
    pipeline = make_pipeline(models["dynamic"], 2)
    same_size = [frames[1], frames[1], frames[1]]
    assert_same(pipeline.predict_batch(np.stack(same_size)), [one_at_a_time["fast"][1]] * 3)
    with pytest.raises(InvalidArgumentError, match=r"predict_batch takes a sequence of frames.*\(64, 64, 3\)"):
        pipeline.predict_batch(frames[1])
    assert pipeline.predict_batch([]) == []


def test_times_are_per_frame_with_the_engine_call_shared(models, frames):
    pipeline = make_pipeline(models["dynamic"], 3)
    results = list(pipeline.run(frames))
    for result in results:
        assert set(result.times_ms) >= {"decode", "preprocess", "inference", "postprocess"}
        assert result.times_ms["inference"] > 0
    # frames of one batch share its engine call equally: 3 + 3 + 1 frames
    shares = [r.times_ms["inference"] for r in results]
    assert shares[0] == shares[1] == shares[2] and shares[3] == shares[4] == shares[5]


def test_a_bad_frame_mid_batch_ends_the_stream_after_the_frames_before_it(models, frames, one_at_a_time):
    pipeline = make_pipeline(models["dynamic"], 3)
    stream = frames[:4] + [np.zeros((10, 10), np.uint8)] + frames[5:]
    got = []
    with pytest.raises(Exception, match="frame"):
        for result in pipeline.run(stream):
            got.append(result.detections)
    assert_same(got, one_at_a_time["fast"][:4])  # the full batch and the frame taken before the bad one
    assert_same(pipeline.predict_batch(frames[:2]), one_at_a_time["fast"][:2])  # the lane came back


# -- batch sizes a model does not take -------------------------------------------------------
def test_a_fixed_batch_one_model_refuses_more(models):
    refused = r"batch_size 2 is not accepted by this model: it has a fixed batch 1; use batch_size=1"
    with pytest.raises(InvalidArgumentError, match=refused):
        make_pipeline(models["fixed1"], 2)
    with pytest.raises(InvalidArgumentError, match=r"batch_size 4 .* fixed batch 1; use batch_size=1"):
        OnnxRuntimeEngine(models["fixed1"], batch_size=4)


def test_a_fixed_batch_two_model_takes_only_two(models):
    for wrong in (1, 3):
        with pytest.raises(InvalidArgumentError, match=rf"batch_size {wrong} .* fixed batch 2; use batch_size=2"):
            OnnxRuntimeEngine(models["fixed2"], batch_size=wrong)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_batch_size_that_is_not_a_positive_int_is_refused_before_the_model_opens(bad):
    with pytest.raises(InvalidArgumentError, match="batch_size must be a positive int"):
        SegmentationPipeline("/nonexistent/model.onnx", batch_size=bad)


def test_the_bundled_shape_of_model_is_fixed_batch_one(tmp_path):
    """The existing tiny model and the bundled export are (1, 3, S, S): fixed batch 1."""
    engine = OnnxRuntimeEngine(write_tiny_seg_model(tmp_path / "tiny.onnx"))
    assert engine.spec.batch == BatchRange(1, 1) and engine.batch_size == 1
    assert tuple(engine.slots[0].input.shape) == (1, 3, 32, 32)


# -- the batch range read from the model -------------------------------------------------------
def _outputs(b):
    return [("dets", (b, 10, 4)), ("labels", (b, 10, 4)), ("masks", (b, 10, 16, 16))]


@pytest.mark.parametrize("dim", ["batch", None, -1, "dynamic"])
def test_onnx_a_symbolic_batch_is_dynamic(dim):
    spec = check_io([("input", (dim, 3, 64, 64))], _outputs(dim))
    assert spec.batch == BatchRange(1, None) and not spec.batch.fixed
    assert spec.batch.check(7) == 7


def test_onnx_a_fixed_batch_is_fixed_and_outputs_must_agree():
    assert check_io([("input", (4, 3, 64, 64))], _outputs(4)).batch == BatchRange(4, 4)
    assert check_io([("input", (4, 3, 64, 64))], _outputs("b")).batch == BatchRange(4, 4)
    with pytest.raises(InvalidModelError, match="outputs' batch dimension must equal the input's fixed batch 4"):
        check_io([("input", (4, 3, 64, 64))], _outputs(1))


def test_engine_spec_reads_the_batch_from_the_onnx_file(models):
    assert OnnxRuntimeEngine(models["dynamic"], batch_size=3).spec.batch == BatchRange(1, None)
    assert OnnxRuntimeEngine(models["fixed2"], batch_size=2).spec.batch == BatchRange(2, 2)


def test_a_bounded_range_names_its_bounds():
    with pytest.raises(InvalidArgumentError, match=r"batch_size 9 .* dynamic batch 1 to 8 \(optimal 4\)$"):
        BatchRange(1, 8, optimal=4).check(9)
    with pytest.raises(InvalidArgumentError, match=r"batch_size 1 .* dynamic batch 2 to 8"):
        BatchRange(2, 8).check(1)


class _FakeCudaEngine:
    """An ICudaEngine stand-in with exactly one TensorRT version's members: any other raises."""

    def __init__(self, members: set[str], shape, profiles):
        self._members = members
        self._shape = shape
        self._profiles = profiles

    def __getattr__(self, attr):
        members = object.__getattribute__(self, "_members")
        if attr not in members:
            raise AttributeError(f"ICudaEngine has no {attr} in this TensorRT version")
        if attr == "get_tensor_shape":
            return lambda name: self._shape
        if attr == "num_optimization_profiles":
            return len(self._profiles)
        if attr == "get_tensor_profile_shape":
            return lambda name, index: self._profiles[index]
        raise AssertionError(f"the fake does not implement {attr}")


@pytest.mark.parametrize("major", [10, 11])
def test_tensorrt_batch_range_from_shape_and_profile(major):
    from inference_accel.engine.tensorrt_engine import profile_batch_range

    members = check.apis()[major].classes["ICudaEngine"]
    assert {"get_tensor_shape", "num_optimization_profiles", "get_tensor_profile_shape"} <= members

    def fake(shape, profiles=()):
        return _FakeCudaEngine(members, shape, list(profiles))

    assert profile_batch_range(fake((2, 3, 64, 64)), "input") == BatchRange(2, 2)
    profile = [(1, 3, 64, 64), (4, 3, 64, 64), (8, 3, 64, 64)]
    second = [(16, 3, 64, 64)] * 3  # profile 1 is not the one a new context starts on
    assert profile_batch_range(fake((-1, 3, 64, 64), [profile, second]), "input") == BatchRange(1, 8, optimal=4)
    with pytest.raises(InvalidModelError, match="dynamic batch but no optimization profile"):
        profile_batch_range(fake((-1, 3, 64, 64)), "input")
    with pytest.raises(InvalidModelError, match="invalid batch range min 4, opt 2, max 8"):
        profile_batch_range(fake((-1, 3, 64, 64), [[(4, 3, 64, 64), (2, 3, 64, 64), (8, 3, 64, 64)]]), "input")


# -- whole-frame graphs stay batch-1 --------------------------------------------------------------
def test_a_batched_pipeline_turns_whole_frame_graphs_off_and_says_why_once(models, monkeypatch, caplog):
    from inference_accel import frame_graph

    monkeypatch.setattr(frame_graph, "process_reason", lambda flags: None)  # as on a GPU with TensorRT
    monkeypatch.setattr(frame_graph, "engine_reason", lambda engine: None)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        first = make_pipeline(models["dynamic"], 2)
        second = make_pipeline(models["dynamic"], 2)
    for pipeline in (first, second):
        assert pipeline.frame_graphs is None
        assert pipeline.frame_graph_reason == "batch_size 2: whole-frame graphs take one frame"
    said = [r.getMessage() for r in caplog.records if "whole-frame graphs take one frame" in r.getMessage()]
    assert len(said) == 1, said


# -- the dynamic-batch export ----------------------------------------------------------------------
def test_pinning_the_symbolic_output_dims_of_a_dynamic_export(tmp_path):
    """rfdetr's dynamic-batch export leaves masks' Q, h, w symbolic; pinning makes the engine open it."""
    import onnx

    from inference_accel.models.export import pin_output_dims

    path = write_tiny_batch_seg_model(tmp_path / "symbolic.onnx", size=64, queries=10)
    model = onnx.load(str(path))
    for output in model.graph.output:
        for k, dim in enumerate(output.type.tensor_type.shape.dim):
            if k and output.name == "masks":
                dim.Clear()
                dim.dim_param = f"Addmasks_dim_{k}"
    onnx.save(model, str(path))

    def declared(name):
        output = next(o for o in onnx.load(str(path)).graph.output if o.name == name)
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in output.type.tensor_type.shape.dim]

    assert declared("masks") == ["batch", "Addmasks_dim_1", "Addmasks_dim_2", "Addmasks_dim_3"]
    with pytest.raises(Exception, match="output dets has a static dim 10 where 7 was expected"):
        pin_output_dims(path, num_queries=7, mask_size=16)
    pin_output_dims(path, num_queries=10, mask_size=16)
    assert declared("masks") == ["batch", 10, 16, 16] and declared("dets") == ["batch", 10, 4]
    engine = OnnxRuntimeEngine(path, batch_size=2)
    assert engine.spec.batch == BatchRange(1, None) and engine.spec.mask_hw == (16, 16)
    assert tuple(engine.slots[0].masks.shape) == (2, 10, 16, 16)


# -- the Triton path: one launch per batch --------------------------------------------------------
@pytest.mark.interpreter
def test_a_batch_of_one_frame_size_takes_one_postprocessing_launch(models, frames, monkeypatch):
    """The Triton gate forced on (CPU tensors under the interpreter), as on a GPU.

    Frames of one size share a geometry: one launch of each kernel for the
    batch, answers equal to one frame at a time. A batch of mixed sizes goes
    frame by frame on the same path.
    """
    import cv2

    from inference_accel import dispatch
    from inference_accel.postprocess import api
    from inference_accel.postprocess import triton_launch as tl_launch
    from inference_accel.postprocess.triton_launch import TritonPostprocessor

    same_size = [cv2.resize(f, (150, 110), interpolation=cv2.INTER_AREA) for f in frames[:4]]
    expected = [make_pipeline(models["dynamic"], 1).predict(f) for f in same_size]
    dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, lambda flags: None))
    monkeypatch.setattr(tl_launch, "_default", TritonPostprocessor(capacity=1 << 14))
    monkeypatch.setattr(api, "_batch_off", [])
    launches = []
    real = TritonPostprocessor.launch_batch
    monkeypatch.setattr(
        TritonPostprocessor, "launch_batch", lambda self, *a, **kw: launches.append(a[0].shape[0]) or real(self, *a, **kw)
    )
    try:
        pipeline = make_pipeline(models["dynamic"], 2)
        results = list(pipeline.run(same_size))
        assert [r.implementations["postprocess"] for r in results] == [api.BATCH] * 4
        assert launches == [2, 2]
        assert_same([r.detections for r in results], expected)
        launches.clear()
        mixed = list(pipeline.run([same_size[0], frames[0]]))
        assert [r.implementations["postprocess"] for r in mixed] == ["triton", "triton"]
        assert launches == [1, 1]
        assert_same([r.detections for r in mixed], [expected[0], make_pipeline(models["dynamic"], 1).predict(frames[0])])
    finally:
        dispatch.register(dispatch.Implementation(api.OP, api.TRITON, 20, api._check_triton))  # noqa: SLF001
