"""The RF-DETR-Seg pipeline: decode -> preprocess -> inference -> postprocess -> response.

:class:`SegmentationPipeline` opens a model (see
:func:`~inference_accel.models.source.resolve_model`), preallocates the
engine's buffers, and runs frames through the stages. Preprocessing writes
straight into the engine's input buffer; postprocessing returns
``sv.Detections`` whose mask is a ``sv.CompactMask``. Each stage picks its
implementation through :mod:`~inference_accel.dispatch` (fast path or
reference), recorded per frame in :class:`FrameResult`.

With ``pipeline_depth=2`` the engine runs frame *i* in a worker thread while
the calling thread postprocesses frame *i-1* and decodes and preprocesses
frame *i+1* into the other buffer slot. Frames come out in order; none is
dropped.

On a GPU with a TensorRT engine, both Triton fast paths and CUDA graphs on,
each frame's whole GPU work is one graph replay
(:mod:`~inference_accel.frame_graph`): the stage times then read
``preprocess`` = staging the frame and launching the replay, ``inference`` =
waiting for the GPU (preprocessing, engine and postprocessing kernels),
``postprocess`` = parsing the copied-back packet; at depth 2 the host parses
frame *i-1* while the GPU runs frame *i*. A frame the graph cannot take runs
the per-stage path, and a capture that fails or disagrees with the eager run
switches graphs off for the process (one warning naming the reason).

>>> # pipe = SegmentationPipeline()            # cached seg-nano, CPU
>>> # detections = pipe.predict(cv2.imread("photo.jpg"))
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import supervision as sv

from inference_accel import dispatch, frame_graph
from inference_accel.engine.factory import open_engine
from inference_accel.flags import Flags, read_flags
from inference_accel.frames import validate_frame
from inference_accel.models.source import ModelSource, resolve_model
from inference_accel.postprocess.api import postprocess, redo_with_reference
from inference_accel.postprocess.triton_launch import RunsOverflow
from inference_accel.preprocess.api import preprocess_into
from inference_accel.preprocess.geometry import Geometry, plan_geometry
from inference_accel.response import detections_to_response

STAGES = ("decode", "preprocess", "inference", "postprocess", "response")


@dataclass
class FrameResult:
    """One frame's detections, response payload, stage times (ms) and implementations used."""

    index: int
    detections: sv.Detections
    response: list[dict] | None
    times_ms: dict[str, float] = field(default_factory=dict)
    implementations: dict[str, str] = field(default_factory=dict)


@dataclass
class _InFlight:
    index: int
    slot: int
    geometry: Geometry
    times_ms: dict[str, float]
    implementations: dict[str, str]
    future: Future | None = None


@dataclass
class _GraphJob:
    index: int
    graphs: frame_graph.FrameGraphs
    submitted: frame_graph.Submitted
    times_ms: dict[str, float]


class SegmentationPipeline:
    """Run RF-DETR-Seg on frames with preallocated buffers and gated fast paths."""

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        flags: Flags | None = None,
        threshold: float = 0.4,
        max_detections: int = 300,
        resize_mode: str | None = None,
        build_response: bool = True,
    ):
        self.flags = flags or read_flags()
        self.source: ModelSource = resolve_model(model)
        self.engine = open_engine(self.source, self.flags, device, slots=self.flags.pipeline_depth)
        spec = self.engine.spec
        if self.source.input_hw is not None and self.source.input_hw != spec.input_hw:
            from inference_accel.errors import InvalidModelError

            raise InvalidModelError(
                f"model config says input {self.source.input_hw} but the model takes {spec.input_hw}"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.max_detections = max_detections
        self.resize_mode = resize_mode or self.source.resize_mode
        self.build_response = build_response
        self.class_names = self.source.class_names
        self.frame_graphs: frame_graph.FrameGraphs | None = None
        self.frame_graph_reason = frame_graph.process_reason(self.flags) or frame_graph.engine_reason(self.engine)
        if self.frame_graph_reason is None:
            self.frame_graphs = frame_graph.FrameGraphs(
                self.engine,
                threshold=threshold,
                max_detections=max_detections,
                num_classes=self.source.num_classes,
                class_names=self.class_names,
            )

    # -- stages -----------------------------------------------------------
    def _preprocess(self, frame: np.ndarray, slot: int, times: dict, impls: dict) -> Geometry:
        start = time.perf_counter()
        geometry, impl = preprocess_into(
            frame, self.engine.slots[slot].input, 0, mode=self.resize_mode, flags=self.flags
        )
        times["preprocess"] = (time.perf_counter() - start) * 1e3
        impls["preprocess"] = impl
        return geometry

    def _infer(self, slot: int, times: dict) -> None:
        start = time.perf_counter()
        self.engine.run(slot)
        times["inference"] = (time.perf_counter() - start) * 1e3

    def _finish(self, job: _InFlight) -> FrameResult:
        if job.future is not None:
            job.future.result()
        buffers = self.engine.slots[job.slot]
        start = time.perf_counter()
        detections, impl = postprocess(
            buffers.labels[0],
            buffers.dets[0],
            buffers.masks[0],
            job.geometry,
            threshold=self.threshold,
            max_detections=self.max_detections,
            num_classes=self.source.num_classes,
            class_names=self.class_names,
            flags=self.flags,
        )
        job.times_ms["postprocess"] = (time.perf_counter() - start) * 1e3
        job.implementations["postprocess"] = impl
        return self._respond(job.index, detections, job.times_ms, job.implementations)

    def _respond(self, index: int, detections: sv.Detections, times: dict, impls: dict) -> FrameResult:
        response = None
        if self.build_response:
            start = time.perf_counter()
            response = detections_to_response(detections)
            times["response"] = (time.perf_counter() - start) * 1e3
        return FrameResult(index, detections, response, times, impls)

    def _submit_graph(
        self, graphs: frame_graph.FrameGraphs, frame: np.ndarray, slot: int, times: dict
    ) -> frame_graph.Submitted | None:
        """Replay (or capture) this frame's whole-frame graph; None: take the per-stage path."""
        geometry = plan_geometry(frame.shape[:2], self.engine.spec.input_hw, self.resize_mode)
        reason = graphs.input_reason(frame, slot, geometry)
        if reason is not None:
            dispatch.warn_once(
                f"{frame_graph.OP}:{reason}",
                f"{frame_graph.OP}: this frame cannot take a whole-frame graph ({reason}); per-stage path",
            )
            return None
        start = time.perf_counter()
        try:
            submitted = graphs.submit(frame, slot, geometry)
        except RunsOverflow as exc:  # this frame's eager run overflowed: not the graph's fault
            dispatch.warn_once(f"{frame_graph.OP}:overflow", f"{frame_graph.OP}: {exc}; frame takes the per-stage path")
            return None
        except Exception as exc:  # capture failure or replay mismatch: off for the process
            dispatch.disable(frame_graph.OP, "whole-frame", f"{type(exc).__name__}: {exc}")
            self.frame_graphs = None
            self.frame_graph_reason = f"disabled after a failure: {type(exc).__name__}: {exc}"
            return None
        times["preprocess"] = (time.perf_counter() - start) * 1e3
        return submitted

    def _finish_any(self, job: _InFlight | _GraphJob) -> FrameResult:
        return self._finish_graph(job) if isinstance(job, _GraphJob) else self._finish(job)

    def _finish_graph(self, job: _GraphJob) -> FrameResult:
        impls = {
            "preprocess": "triton (frame graph)",
            "inference": f"{self.engine.name} (frame graph)",
            "postprocess": "triton (frame graph)",
        }
        try:
            detections = job.graphs.result(job.submitted, job.times_ms)
        except RunsOverflow as exc:  # the engine outputs are still in the slot: redo the masks
            key = job.submitted.captured.key
            buffers = self.engine.slots[key.slot]
            start = time.perf_counter()
            detections = redo_with_reference(
                buffers.labels[0], buffers.dets[0], buffers.masks[0], key.geometry, "triton (frame graph)", exc,
                threshold=self.threshold, max_detections=self.max_detections,
                class_mapping=None, num_classes=self.source.num_classes, class_names=self.class_names,
            )
            job.times_ms["postprocess"] = (time.perf_counter() - start) * 1e3
            impls["postprocess"] = "reference"
        return self._respond(job.index, detections, job.times_ms, impls)

    # -- public API ---------------------------------------------------------
    def predict(self, frame: np.ndarray) -> sv.Detections:
        """Detections for one BGR uint8 frame."""
        return next(iter(self.run([frame]))).detections

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per frame, in order, overlapping stages at depth 2."""
        depth = self.flags.pipeline_depth
        pending: deque[_InFlight | _GraphJob] = deque()
        executor = ThreadPoolExecutor(max_workers=1) if depth > 1 else None
        iterator = iter(frames)
        index = 0
        try:
            while True:
                start = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    break
                times = {"decode": (time.perf_counter() - start) * 1e3}
                impls: dict[str, str] = {}
                validate_frame(frame)
                slot = index % depth
                graphs = self.frame_graphs
                submitted = self._submit_graph(graphs, frame, slot, times) if graphs is not None else None
                if submitted is not None:
                    pending.append(_GraphJob(index, graphs, submitted, times))
                else:
                    geometry = self._preprocess(frame, slot, times, impls)
                    job = _InFlight(index, slot, geometry, times, impls)
                    if executor is None:
                        self._infer(slot, times)
                    else:
                        job.future = executor.submit(self._infer, slot, times)
                    pending.append(job)
                index += 1
                if len(pending) >= depth:
                    yield self._finish_any(pending.popleft())
            while pending:
                yield self._finish_any(pending.popleft())
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
