"""Whole-frame graphs: the host logic on the CPU, with a stand-in for CUDA graph capture.

No GPU here, so ``torch.cuda.CUDAGraph`` cannot run. :class:`ReplayBackend`
keeps the capture contract that matters to the host code: "capture" runs the
recorded function once and "replay" runs it again on whatever the staging
buffer holds. The real kernels run under the Triton interpreter and the tiny
onnxruntime model is the engine. Expected detections always come from the
per-stage *reference* pipeline (PIL preprocessing, dense postprocessing),
never from the code under test. What only a GPU can check (that capture
itself works) is in ``parity/gpu_selfcheck.py``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from inference_accel import dispatch
from inference_accel.flags import Flags
from inference_accel.frame_graph import (
    FrameGraphs,
    GraphMismatch,
    engine_reason,
    frame_graph_reason,
)
from inference_accel.parity import compare_detections
from inference_accel.pipeline import SegmentationPipeline
from inference_accel.preprocess.geometry import plan_geometry
from tests.helpers_onnx import write_tiny_seg_model

FRAME_HW = (90, 120)  # upsampled mask sides sum > 128: torch's generic CPU kernel, the kernels' order
THRESHOLD = 0.1


class ReplayBackend:
    """CPU stand-in: "capture" runs ``fn`` once, "replay" runs it again."""

    device = torch.device("cpu")

    def __init__(self, replay_does_nothing: bool = False, replay_without_engine=None):
        self.captures = 0
        self.replays = 0
        self.replay_does_nothing = replay_does_nothing
        self.replay_without_engine = replay_without_engine  # an engine whose node the "graph" lacks

    def pinned(self, shape, dtype):
        return torch.empty(shape, dtype=dtype)

    def stream_context(self):
        return contextlib.nullcontext()

    def stream_handle(self):
        return None

    def follow_current(self):
        pass

    def capture(self, fn):
        self.captures += 1
        pending = fn()

        def replay():
            self.replays += 1
            if self.replay_does_nothing:
                return
            engine = self.replay_without_engine
            if engine is None:
                fn()
                return
            real = engine.enqueue_on
            engine.enqueue_on = lambda slot, stream: None
            try:
                fn()
            finally:
                engine.enqueue_on = real

        return replay, pending

    def record(self):
        return object()

    def wait(self, event):
        assert event is not None


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(write_tiny_seg_model(tmp_path_factory.mktemp("fg") / "tiny.onnx"))


@pytest.fixture(scope="module")
def frames():
    """Crops of a real photograph: the tiny model's outputs follow the pixels."""
    import cv2
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(5):
        y, x = rng.integers(0, 300, 2)
        crop = photo[y : y + 200, x : x + 200]
        out.append(np.ascontiguousarray(cv2.resize(crop, (FRAME_HW[1], FRAME_HW[0]), interpolation=cv2.INTER_AREA)))
    return out


@pytest.fixture(scope="module")
def expected(tiny_model, frames):
    reference = SegmentationPipeline(
        tiny_model, flags=Flags(preproc_fast=False, postproc_fast=False), threshold=THRESHOLD, build_response=False
    )
    return [reference.predict(f) for f in frames]


def capturable(engine):
    """Give the onnxruntime engine the capture hook a TensorRT engine has."""
    engine.enqueue_on = lambda slot, stream: engine.run(slot)
    return engine


def make_graphs(tiny_model, slots=1, backend=None, engine=None):
    """FrameGraphs over a capturable onnxruntime engine (a new one unless given)."""
    from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine

    engine = engine or capturable(OnnxRuntimeEngine(tiny_model, slots=slots))
    return FrameGraphs(
        engine, threshold=THRESHOLD, max_detections=300, num_classes=None, class_names=None,
        backend=backend or ReplayBackend(),
    )


def test_replayed_frames_equal_the_reference(tiny_model, frames, expected):
    backend = ReplayBackend()
    graphs = make_graphs(tiny_model, slots=2, backend=backend)
    geometry = plan_geometry(FRAME_HW, graphs.engine.spec.input_hw)
    for i, frame in enumerate(frames):
        assert graphs.input_reason(frame, i % 2, geometry) is None
        detections = graphs.result(graphs.submit(frame, i % 2, geometry))
        assert compare_detections(detections, expected[i]) == [], f"frame {i}"
    assert sum(len(e) for e in expected) > 0, "no detections: the comparison would be empty"
    # one capture per slot; each capture replays once to check itself, later frames replay once
    assert backend.captures == 2 and backend.replays == 2 + (len(frames) - 2) and len(graphs) == 2


def test_a_new_frame_size_is_a_new_graph(tiny_model, frames):
    backend = ReplayBackend()
    graphs = make_graphs(tiny_model, backend=backend)
    small = np.ascontiguousarray(frames[0][:80, :100])
    for frame in (frames[0], small, frames[1], small):
        graphs.result(graphs.submit(frame, 0, plan_geometry(frame.shape[:2], graphs.engine.spec.input_hw)))
    assert backend.captures == 2 and len(graphs) == 2


def test_a_replay_that_writes_nothing_is_caught(tiny_model, frames):
    graphs = make_graphs(tiny_model, backend=ReplayBackend(replay_does_nothing=True))
    with pytest.raises(GraphMismatch, match="graph replay"):
        graphs.submit(frames[0], 0, plan_geometry(FRAME_HW, graphs.engine.spec.input_hw))


def test_a_graph_missing_the_engine_node_is_caught(tiny_model, frames):
    """Poisoned buffers expose a node the graph lacks, even though the packet stage ran."""
    from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine

    engine = capturable(OnnxRuntimeEngine(tiny_model, slots=1))
    graphs = make_graphs(tiny_model, engine=engine, backend=ReplayBackend(replay_without_engine=engine))
    with pytest.raises(GraphMismatch, match="engine dets differs"):
        graphs.submit(frames[0], 0, plan_geometry(FRAME_HW, engine.spec.input_hw))


def test_a_second_submit_before_result_is_refused(tiny_model, frames):
    graphs = make_graphs(tiny_model)
    geometry = plan_geometry(FRAME_HW, graphs.engine.spec.input_hw)
    graphs.result(graphs.submit(frames[0], 0, geometry))  # the capture
    first = graphs.submit(frames[1], 0, geometry)
    with pytest.raises(RuntimeError, match="not collected"):
        graphs.submit(frames[2], 0, geometry)
    graphs.result(first)
    graphs.result(graphs.submit(frames[2], 0, geometry))


@pytest.mark.parametrize("depth", [1, 2])
def test_pipeline_runs_frames_through_graphs(tiny_model, frames, expected, depth):
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(pipeline_depth=depth), threshold=THRESHOLD, build_response=False)
    assert pipeline.frame_graphs is None and pipeline.frame_graph_reason  # no GPU: per-stage by itself
    pipeline.frame_graphs = make_graphs(tiny_model, engine=capturable(pipeline.engine))
    results = list(pipeline.run(frames))
    assert [r.index for r in results] == list(range(len(frames)))
    for r, e in zip(results, expected):
        assert r.implementations["postprocess"] == "triton (frame graph)"
        assert compare_detections(r.detections, e) == []


def test_pipeline_switches_graphs_off_after_a_mismatch(tiny_model, frames, expected):
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(), threshold=THRESHOLD, build_response=False)
    pipeline.frame_graphs = make_graphs(
        tiny_model, engine=capturable(pipeline.engine), backend=ReplayBackend(replay_does_nothing=True)
    )
    results = list(pipeline.run(frames[:3]))
    assert pipeline.frame_graphs is None and "GraphMismatch" in pipeline.frame_graph_reason
    assert len(results) == 3  # no frame lost: the failed one took the per-stage path
    for r, e in zip(results, expected):
        assert r.implementations["postprocess"] == "cpu"
        assert compare_detections(r.detections, e) == []
    reasons = {v.implementation.name: v.reason for v in dispatch.explain("frame-graph", Flags())}
    assert "GraphMismatch" in reasons["whole-frame"]
    later = SegmentationPipeline(tiny_model, flags=Flags(), threshold=THRESHOLD, build_response=False)
    assert "disabled after a failure" in later.frame_graph_reason  # off for the process, not per pipeline


def test_gate_reasons():
    from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine

    assert frame_graph_reason(Flags(cuda_graphs=False)) == "ENABLE_AUTO_CUDA_GRAPHS_FOR_TRT_BACKEND=false"
    assert frame_graph_reason(Flags(preproc_fast=False)) == "INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED=false"
    assert frame_graph_reason(Flags(postproc_fast=False)) == "INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED=false"
    if not torch.cuda.is_available():
        assert frame_graph_reason(Flags()) == "torch.cuda is not available"
    assert "cannot be captured" in engine_reason(OnnxRuntimeEngine.__new__(OnnxRuntimeEngine))


def test_an_overflowing_capture_frame_takes_the_per_stage_path_and_keeps_its_buffers(tiny_model, frames, expected):
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(), threshold=THRESHOLD, build_response=False)
    graphs = make_graphs(tiny_model, engine=capturable(pipeline.engine))
    graphs.capacity = 1  # no frame's runs fit: every capture frame overflows in its eager run
    pipeline.frame_graphs = graphs
    results = list(pipeline.run(frames[:3]))
    assert pipeline.frame_graphs is graphs and len(graphs) == 0  # not switched off: the frames were at fault
    for r, e in zip(results, expected):
        assert r.implementations["postprocess"] == "cpu"
        assert compare_detections(r.detections, e) == []
    spare = next(iter(graphs._retry.values()))  # noqa: SLF001
    list(pipeline.run(frames[:1]))
    assert next(iter(graphs._retry.values())) is spare  # reused, not allocated again  # noqa: SLF001


def test_a_replay_overflow_is_redone_by_the_reference(tiny_model, frames, expected, monkeypatch):
    from inference_accel.postprocess import api
    from inference_accel.postprocess.triton_launch import RunsOverflow

    api.reset_fallback_counts()
    pipeline = SegmentationPipeline(tiny_model, flags=Flags(), threshold=THRESHOLD, build_response=False)
    graphs = make_graphs(tiny_model, engine=capturable(pipeline.engine))
    pipeline.frame_graphs = graphs
    real_result = graphs.result

    def result(submitted, times=None):
        if submitted.detections is None:  # a replayed frame (not the capture frame)
            graphs.backend.wait(submitted.event)
            submitted.captured.outstanding = False
            raise RunsOverflow("9999 runs exceed the capacity of 1")
        return real_result(submitted, times)

    monkeypatch.setattr(graphs, "result", result)
    results = list(pipeline.run(frames[:3]))
    assert [r.implementations["postprocess"] for r in results] == ["triton (frame graph)", "reference", "reference"]
    for r, e in zip(results, expected):
        assert compare_detections(r.detections, e) == []
    assert api.fallback_counts() == {"triton (frame graph): run buffer overflow": 2}


class ZeroCopyReplayBackend(ReplayBackend):
    """An integrated GPU's backend: the graph reads the pinned staging frame in place."""

    zero_copy = True


def test_zero_copy_graphs_read_the_staging_frame_in_place(tiny_model, frames, expected):
    graphs = make_graphs(tiny_model, backend=ZeroCopyReplayBackend())
    geometry = plan_geometry(FRAME_HW, graphs.engine.spec.input_hw)
    for i, frame in enumerate(frames):
        submitted = graphs.submit(frame, 0, geometry)
        captured = submitted.captured
        assert captured.device_frame.data_ptr() == captured.staging.data_ptr()  # no device twin, no upload
        assert "frame upload" not in graphs._stage_tensors(captured)
        assert compare_detections(graphs.result(submitted), expected[i]) == [], f"frame {i}"
        # the check replay poisons what the graph writes, never the host's frame
        assert np.array_equal(captured.staging.numpy(), frame)


def test_zero_copy_graph_that_writes_nothing_is_still_caught(tiny_model, frames):
    backend = ZeroCopyReplayBackend(replay_does_nothing=True)
    graphs = make_graphs(tiny_model, backend=backend)
    with pytest.raises(GraphMismatch, match="preprocessing differs"):
        graphs.submit(frames[0], 0, plan_geometry(FRAME_HW, graphs.engine.spec.input_hw))
