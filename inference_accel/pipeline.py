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
dropped. A frame that fails to arrive or to start (the source raises, the
frame is invalid) ends the stream with that error, but only after every
frame admitted before it has been finished and yielded, in order.

**Threads.** One pipeline may be shared by many threads; see
:class:`SegmentationPipeline` (each in-flight call owns a lane of engine
slots from a pool of ``concurrency`` lanes; :class:`SlotPool`).

On a GPU with a TensorRT engine, both Triton fast paths and CUDA graphs on,
each frame's whole GPU work is one graph replay
(:mod:`~inference_accel.frame_graph`): the stage times then read
``preprocess`` = staging the frame and launching the replay, ``inference`` =
waiting for the GPU (preprocessing, engine and postprocessing kernels),
``postprocess`` = parsing the copied-back packet; at depth 2 the host parses
frame *i-1* while the GPU runs frame *i*. A frame the graph cannot take runs
the per-stage path, and a capture that fails or disagrees with the eager run
switches graphs off for the process (one warning naming the reason).

**Model packages.** A Roboflow package's image steps (static crop,
grayscale, contrast, and the dataset-version first step of a non-stretch
``resize_mode``; :mod:`~inference_accel.preprocess.package_steps`) run on
the frame first, exactly as inference-models runs them; then the result is
stretched to the model input with the package's normalisation, and boxes and
masks are mapped back to the whole frame. A package's ``resize_mode`` thus
means what the stock server does with it (nothing at all without
``dataset_version_resize_dimensions``); the ``resize_mode`` argument here
(``--resize-mode``) is our pipeline's own direct-to-input letterbox or
centre-crop, applied after the package's steps. Such packages, and packages
that remove classes, take the per-stage path, not whole-frame graphs.

>>> # pipe = SegmentationPipeline()            # cached seg-nano, CPU
>>> # detections = pipe.predict(cv2.imread("photo.jpg"))
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import supervision as sv

from inference_accel import dispatch, frame_graph
from inference_accel.arguments import check_choice, check_positive_int, check_threshold
from inference_accel.engine.factory import open_engine
from inference_accel.errors import InvalidArgumentError
from inference_accel.flags import Flags, read_flags
from inference_accel.frames import validate_frame
from inference_accel.models.source import ModelSource, resolve_model, warn_dropped_classes
from inference_accel.postprocess.api import postprocess, postprocess_batch, redo_with_reference
from inference_accel.postprocess.triton_launch import RunsOverflow
from inference_accel.preprocess.api import preprocess_into
from inference_accel.preprocess.geometry import RESIZE_MODES, Geometry, plan_geometry
from inference_accel.postprocess.selection import select_detections
from inference_accel.preprocess.package_steps import PackageGeometry, prepared_boxes
from inference_accel.response import MASK_FORMATS, RESPONSE_FORMATS
from inference_accel.response import build_response as build_payload
from inference_accel.response import response_json

STAGES = ("decode", "preprocess", "inference", "postprocess", "response")


@dataclass
class FrameResult:
    """One frame's detections, response payload, stage times (ms) and implementations used.

    With ``batch_size`` N > 1, ``times_ms["inference"]`` is the batch's one
    engine call divided by the frames in that batch (its stage time / N for
    a full batch); decode, preprocess, postprocess and response are each
    frame's own (those stages run per frame).
    """

    index: int
    detections: sv.Detections
    # Roboflow's payload: a dict (inference_accel.response.build_response), or with
    # response_format="json" its compact JSON bytes (response_json: no Python object per point).
    response: dict | bytes | None
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
    package_geometry: PackageGeometry | None = None
    batch_index: int = 0  # this frame's index in the slot's batch


@dataclass
class _GraphJob:
    index: int
    graphs: frame_graph.FrameGraphs
    submitted: frame_graph.Submitted
    times_ms: dict[str, float]


@dataclass
class _Batch:
    """Frames started together in one slot (batch_size > 1): one engine call for all of them."""

    slot: int
    jobs: list[_InFlight]
    future: Future | None = None


class SlotPool:
    """``lanes`` lanes of ``depth`` engine slots; each in-flight call holds one lane.

    Lane ``i`` owns slots ``i * depth`` to ``i * depth + depth - 1``.
    :meth:`acquire` blocks until a lane is free, except when every lane is
    held by the calling thread itself (a call nested inside a stream it
    holds open): that would wait forever, so it raises instead.

    >>> pool = SlotPool(lanes=2, depth=2)
    >>> first, second = pool.acquire(), pool.acquire()
    >>> pool.slots(first), pool.slots(second), pool.free
    ((0, 1), (2, 3), 0)
    >>> pool.release(first); pool.free
    1
    """

    def __init__(self, lanes: int, depth: int):
        self.lanes = check_positive_int("lanes", lanes)
        self.depth = check_positive_int("depth", depth)
        self._free: deque[int] = deque(range(self.lanes))
        self._holders: dict[int, int] = {}  # lane -> thread ident
        self._cond = threading.Condition()

    @property
    def free(self) -> int:
        """Lanes free now."""
        with self._cond:
            return len(self._free)

    def slots(self, lane: int) -> tuple[int, ...]:
        """The engine slots of ``lane``."""
        return tuple(range(lane * self.depth, (lane + 1) * self.depth))

    def acquire(self) -> int:
        """A free lane (waits for one)."""
        me = threading.get_ident()
        with self._cond:
            while not self._free:
                if all(holder == me for holder in self._holders.values()):
                    raise RuntimeError(
                        f"this thread already holds all {self.lanes} lane(s) of the pipeline (an unfinished "
                        "run() stream at pipeline depth 2?) and would wait for itself forever; finish or "
                        "close that stream first, or build the pipeline with a larger concurrency"
                    )
                self._cond.wait()
            lane = self._free.popleft()
            self._holders[lane] = me
            return lane

    def release(self, lane: int) -> None:
        """Give ``lane`` back; one waiting caller takes it."""
        with self._cond:
            del self._holders[lane]
            self._free.append(lane)
            self._cond.notify()


class _Lease:
    """The lane one call holds while it has frames in flight: taken lazily, given back when idle."""

    def __init__(self, pool: SlotPool):
        self.pool = pool
        self.lane: int | None = None

    def slots(self) -> tuple[int, ...]:
        if self.lane is None:
            self.lane = self.pool.acquire()
        return self.pool.slots(self.lane)

    def release(self) -> None:
        if self.lane is not None:
            lane, self.lane = self.lane, None
            self.pool.release(lane)


class SegmentationPipeline:
    """Run RF-DETR-Seg on frames with preallocated buffers and gated fast paths.

    **Threads.** One pipeline may be shared by any number of threads. Each
    in-flight call (a :meth:`predict`, or a :meth:`run` stream while it has
    frames in flight) owns one *lane* of engine buffer slots (``depth``
    slots: 1, or 2 with ``pipeline_depth=2``) from a pool of ``concurrency``
    lanes, and every per-frame state (geometry, output buffers, whole-frame
    graph keys) lives in that lane's slots; calls beyond the pool wait for a
    free lane. ``concurrency=1`` (the default) serialises the calls; the
    engine holds ``concurrency * depth`` buffer sets. At depth 1 a stream
    gives its lane back before it yields each frame; at depth 2 it holds
    its lane from its first frame until its last one is finished or the
    stream is closed (the next frame is in flight meanwhile), so a call
    nested in such a stream's loop on the same thread needs a second lane
    (with none left it raises rather than wait for itself). Answers equal
    the sequential ones bit for bit (``tests/test_concurrency.py`` checks
    it on the CPU). On a CUDA device, engine enqueues and whole-frame graph
    captures/replays are serialised by one lock (the threads share the
    streams, and a capture must not take in another thread's work); the
    GPU work itself still overlaps with the other threads' host work. This
    GPU part has not run on a GPU yet.

    **Batches.** ``batch_size=N`` gives every engine slot N frames: each
    frame is preprocessed into its index of the slot's one input buffer
    (with its own geometry, so sizes may differ), the engine runs once for
    the N, and the frames are postprocessed together
    (:func:`~inference_accel.postprocess.api.postprocess_batch`: on the
    Triton path one launch per kernel for a batch of one geometry, else per
    frame; each frame's answer is its own). :meth:`run` groups N
    frames per engine call; a short last batch is padded (the unused
    indices keep stale inputs whose outputs are ignored), so no frame is
    lost and results come out in order; :meth:`predict_batch` takes a list.
    The model must take N (``engine.spec.batch``: a fixed batch of N, or a
    dynamic one whose range holds N), else
    :class:`~inference_accel.errors.InvalidArgumentError` names both.
    Whole-frame CUDA graphs are batch-1: a batched pipeline runs per stage
    and logs why once. Answers equal ``batch_size=1``'s bit for bit when the
    engine's per-frame outputs do not depend on the batch
    (``tests/test_batches.py``).

    Arguments are checked here, before the model opens: ``threshold`` a
    real number in [0, 1], ``max_detections``, ``concurrency`` and
    ``batch_size`` positive ints, ``resize_mode`` one of ``RESIZE_MODES``,
    ``mask_format`` one of ``MASK_FORMATS`` (the response's masks: Roboflow's
    polygon points or COCO RLE, see :mod:`~inference_accel.response`),
    ``response_format`` one of ``RESPONSE_FORMATS`` (``"dict"``: the payload
    as Python objects; ``"json"``: the same payload as compact JSON bytes,
    what a server sends, built without a Python object per point); a
    bad value raises :class:`~inference_accel.errors.InvalidArgumentError`
    naming it.

    >>> # pipe = SegmentationPipeline(concurrency=4)     # 4 calls in flight at once
    >>> # with ThreadPoolExecutor(8) as ex: results = list(ex.map(pipe.predict, frames))
    """

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
        mask_format: str = "polygon",
        response_format: str = "dict",
        concurrency: int = 1,
        batch_size: int = 1,
    ):
        self.mask_format = check_choice("mask_format", mask_format, MASK_FORMATS)
        self.response_format = check_choice("response_format", response_format, RESPONSE_FORMATS)
        self.threshold = check_threshold(threshold)
        self.max_detections = check_positive_int("max_detections", max_detections)
        self.concurrency = check_positive_int("concurrency", concurrency)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if resize_mode is not None:
            check_choice("resize_mode", resize_mode, RESIZE_MODES)
        self.flags = flags or read_flags()
        self.depth = check_positive_int("pipeline_depth", self.flags.pipeline_depth)
        self.source: ModelSource = resolve_model(model)
        self.engine = open_engine(
            self.source, self.flags, device, slots=self.concurrency * self.depth, batch_size=self.batch_size
        )
        spec = self.engine.spec
        warn_dropped_classes(self.source, spec.num_classes)  # once per model and class count
        if self.source.input_hw is not None and self.source.input_hw != spec.input_hw:
            # As inference-models does (align_training_input_size_with_model): the weights are
            # authoritative, the frame is resized to the size the model takes, with a warning.
            (ch, cw), (mh, mw) = self.source.input_hw, spec.input_hw
            dispatch.warn_once(
                f"input-size:{self.source.path}:{ch}x{cw}:{mh}x{mw}",
                f"model {self.source.path} takes {mw}x{mh} input, but its config declares training_input_size "
                f"{cw}x{ch}; using the model's input size (as inference-models does)",
            )
        # A package's resize_mode acts as stock makes it act: through its dataset-version first step
        # (package_steps); our direct-to-input letterbox / centre-crop is only the explicit option.
        self.resize_mode = resize_mode or "stretch"
        self.package_steps = self.source.package_steps
        self.normalization = self.source.normalization
        if self.resize_mode != "stretch" and self.package_steps.first_step is not None:
            # Its masks could only be resampled (nearest neighbour) back through two resizes: refuse, never approximate.
            raise InvalidArgumentError(
                f"resize_mode={self.resize_mode!r} (our direct-to-input {self.resize_mode}) cannot be combined with "
                f"model package {self.source.path.parent}, whose resize_mode {self.package_steps.first_step!r} already "
                f"resizes to its dataset size {self.package_steps.dataset_hw} first (as the stock server does); "
                "leave resize_mode unset"
            )
        if self.package_steps.host_only_reason is not None:
            dispatch.warn_once(
                f"package-steps:{self.package_steps.contrast}",
                f"model package {self.source.path.parent}: {self.package_steps.host_only_reason}; "
                "its other steps and the resize keep their fast paths",
            )
        self.build_response = build_response
        self.class_names = self.source.class_names
        self._pool = SlotPool(self.concurrency, self.depth)
        # Threads share the engine's stream and the graphs' side stream on a GPU.
        self._gpu_order = threading.Lock() if self.engine.device.type == "cuda" else contextlib.nullcontext()
        self.frame_graphs: frame_graph.FrameGraphs | None = None
        self.frame_graph_reason = frame_graph.process_reason(self.flags) or frame_graph.engine_reason(self.engine)
        if self.frame_graph_reason is None and not self.package_steps.is_identity:
            self.frame_graph_reason = f"the package's image steps run first ({self.package_steps.describe()})"
        if self.frame_graph_reason is None and self.source.class_mapping is not None:
            self.frame_graph_reason = "the package removes classes (class_names_operations)"
        if self.frame_graph_reason is None and self.batch_size > 1:
            self.frame_graph_reason = f"batch_size {self.batch_size}: whole-frame graphs take one frame"
            dispatch.warn_once(f"{frame_graph.OP}:batch", f"{frame_graph.OP}: off, {self.frame_graph_reason}")
        if self.frame_graph_reason is None:
            self.frame_graphs = frame_graph.FrameGraphs(
                self.engine,
                threshold=self.threshold,
                max_detections=self.max_detections,
                num_classes=self.source.num_classes,
                class_names=self.class_names,
                normalization=self.normalization,
            )

    # -- stages -----------------------------------------------------------
    def _preprocess(
        self, frame: np.ndarray, slot: int, times: dict, impls: dict, index: int = 0
    ) -> tuple[Geometry, PackageGeometry | None]:
        """The package's image steps (static crop, grayscale, contrast, first step), then our resize."""
        start = time.perf_counter()
        package_geometry = None
        if not self.package_steps.is_identity:
            frame, package_geometry = self.package_steps.apply(frame)
        geometry, impl = preprocess_into(
            frame, self.engine.slots[slot].input, index, mode=self.resize_mode, flags=self.flags,
            normalization=self.normalization,
        )
        times["preprocess"] = (time.perf_counter() - start) * 1e3
        impls["preprocess"] = impl
        if self.package_steps.host_only_reason is not None:
            impls["package_steps"] = f"reference ({self.package_steps.host_only_reason})"
        return geometry, package_geometry

    def _infer(self, slot: int, times: dict) -> None:
        start = time.perf_counter()
        with self._gpu_order:
            self.engine.run(slot)
        times["inference"] = (time.perf_counter() - start) * 1e3

    def _postprocess_options(self) -> dict:
        """The selection options of every frame's postprocessing."""
        return dict(
            threshold=self.threshold,
            max_detections=self.max_detections,
            class_mapping=None if self.source.class_mapping is None else np.asarray(self.source.class_mapping),
            num_classes=self.source.num_classes,
            class_names=self.class_names,
            flags=self.flags,
        )

    def _finish(self, job: _InFlight) -> FrameResult:
        if job.future is not None:
            job.future.result()
        buffers = self.engine.slots[job.slot]
        start = time.perf_counter()
        detections, impl = postprocess(
            buffers.labels[job.batch_index],
            buffers.dets[job.batch_index],
            buffers.masks[job.batch_index],
            job.geometry,
            **self._postprocess_options(),
        )
        return self._complete(job, detections, impl, time.perf_counter() - start)

    def _complete(self, job: _InFlight, detections: sv.Detections, impl: str, spent_s: float) -> FrameResult:
        """Map back to the whole frame where the package prepared the image, time it, build the response.

        ``spent_s``: the seconds this frame's postprocessing took so far.
        """
        start = time.perf_counter()
        if job.package_geometry is not None:  # back from the prepared image to the whole frame
            detections = self._to_whole_frame(detections, self.engine.slots[job.slot], job)
        job.times_ms["postprocess"] = (spent_s + time.perf_counter() - start) * 1e3
        job.implementations["postprocess"] = impl
        return self._respond(job.index, detections, job.times_ms, job.implementations)

    def _finish_batch_jobs(self, batch: _Batch) -> list[FrameResult]:
        """Postprocess a batch's frames together (one launch per kernel on the Triton path), respond per frame.

        Each frame's postprocess time is its share of the batch's.
        """
        buffers = self.engine.slots[batch.slot]
        n = len(batch.jobs)
        start = time.perf_counter()
        answers = postprocess_batch(
            buffers.labels[:n], buffers.dets[:n], buffers.masks[:n], [job.geometry for job in batch.jobs],
            **self._postprocess_options(),
        )
        share = (time.perf_counter() - start) / n
        return [self._complete(job, detections, impl, share) for job, (detections, impl) in zip(batch.jobs, answers)]

    def _to_whole_frame(self, detections: sv.Detections, buffers, job: _InFlight) -> sv.Detections:
        """Map detections on the package-prepared image back to the frame (boxes unclamped until then, as stock)."""
        selection = select_detections(
            buffers.labels[job.batch_index], buffers.dets[job.batch_index], job.geometry.frame_hw,
            self.threshold, self.max_detections,
            None if self.source.class_mapping is None else np.asarray(self.source.class_mapping),
            self.source.num_classes, job.geometry,
        )
        unclamped = logits = None
        if job.geometry.is_stretch:
            unclamped = prepared_boxes(buffers.dets[job.batch_index][selection.query], job.geometry.frame_hw)
            if not job.package_geometry.is_offset_only:  # a first step: masks rebuilt as stock places them
                logits = buffers.masks[job.batch_index][selection.query]
        return job.package_geometry.detections_to_frame(detections, unclamped, logits)

    def _respond(self, index: int, detections: sv.Detections, times: dict, impls: dict) -> FrameResult:
        response = None
        if self.build_response:
            start = time.perf_counter()
            respond = build_payload if self.response_format == "dict" else response_json
            response = respond(detections, mask_format=self.mask_format, frame_id=index)
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
            with self._gpu_order:
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

    # -- streaming ------------------------------------------------------------
    def _admit(
        self, frames: Iterator[np.ndarray], index: int, lease: _Lease, executor: ThreadPoolExecutor | None
    ) -> _InFlight | _GraphJob | None:
        """Take the next frame and start it in this call's lane; None: the frames are exhausted."""
        start = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            return None
        times = {"decode": (time.perf_counter() - start) * 1e3}
        validate_frame(frame)
        slot = lease.slots()[index % self.depth]
        graphs = self.frame_graphs
        submitted = self._submit_graph(graphs, frame, slot, times) if graphs is not None else None
        if submitted is not None:
            return _GraphJob(index, graphs, submitted, times)
        impls: dict[str, str] = {}
        geometry, package_geometry = self._preprocess(frame, slot, times, impls)
        job = _InFlight(index, slot, geometry, times, impls, package_geometry=package_geometry)
        if executor is None:
            self._infer(slot, times)
        else:
            job.future = executor.submit(self._infer, slot, times)
        return job

    def _finish_next(self, pending: deque[_InFlight | _GraphJob], lease: _Lease) -> FrameResult:
        """Finish the oldest frame; the lane goes back as soon as nothing is in flight."""
        job = pending.popleft()
        try:
            return self._finish_any(job)
        finally:
            if not pending:
                lease.release()

    @staticmethod
    def _drop(pending: deque[_InFlight | _GraphJob]) -> None:
        """A stream closed early: wait out its frames still in flight (their slots go back clean)."""
        while pending:
            job = pending.popleft()
            with contextlib.suppress(Exception):
                if isinstance(job, _GraphJob):
                    job.graphs.result(job.submitted)  # collects the packet: the graph can replay again
                elif job.future is not None:
                    job.future.result()

    # -- batches (batch_size > 1) -----------------------------------------------
    def _infer_batch(self, batch: _Batch) -> None:
        """One engine call for the whole slot; each frame's inference time is its share of it."""
        start = time.perf_counter()
        with self._gpu_order:
            self.engine.run(batch.slot)
        share = (time.perf_counter() - start) * 1e3 / len(batch.jobs)
        for job in batch.jobs:
            job.times_ms["inference"] = share

    def _admit_batch(
        self, frames: Iterator[np.ndarray], index: int, number: int, lease: _Lease,
        executor: ThreadPoolExecutor | None,
    ) -> tuple[_Batch | None, Exception | None]:
        """Take up to ``batch_size`` frames into batch indices of one slot, then start the engine.

        Returns the batch (None: no frame was taken) and the error that cut
        it short, if any: the frames taken before that error still run.
        """
        jobs: list[_InFlight] = []
        slot, error = -1, None
        for position in range(self.batch_size):
            start = time.perf_counter()
            try:
                frame = next(frames)
                times = {"decode": (time.perf_counter() - start) * 1e3}
                validate_frame(frame)
                if not jobs:
                    slot = lease.slots()[number % self.depth]
                impls: dict[str, str] = {}
                geometry, package_geometry = self._preprocess(frame, slot, times, impls, position)
            except StopIteration:
                break
            except Exception as exc:  # ends the stream once the frames before it are out
                error = exc
                break
            jobs.append(_InFlight(
                index + position, slot, geometry, times, impls,
                package_geometry=package_geometry, batch_index=position,
            ))
        if not jobs:
            return None, error
        batch = _Batch(slot, jobs)
        if executor is None:
            self._infer_batch(batch)
        else:
            batch.future = executor.submit(self._infer_batch, batch)
        return batch, error

    def _finish_batch(self, pending: deque[_Batch], lease: _Lease) -> list[FrameResult]:
        """Postprocess the oldest batch frame by frame; the lane goes back once nothing is in flight."""
        batch = pending.popleft()
        try:
            if batch.future is not None:
                batch.future.result()
            return self._finish_batch_jobs(batch)
        finally:
            if not pending:
                lease.release()

    def _run_batches(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """:meth:`run` for ``batch_size`` > 1: N frames per engine call, depth 1 or 2 in batches."""
        pending: deque[_Batch] = deque()
        lease = _Lease(self._pool)
        executor = ThreadPoolExecutor(max_workers=1) if self.depth > 1 else None
        iterator = iter(frames)
        index = number = 0
        try:
            while True:
                batch, error = self._admit_batch(iterator, index, number, lease, executor)
                if batch is not None:
                    pending.append(batch)
                    index, number = index + len(batch.jobs), number + 1
                if error is not None:
                    while pending:  # the frames admitted before the error come out first
                        yield from self._finish_batch(pending, lease)
                    raise error
                if batch is None:
                    break
                if len(pending) >= self.depth:
                    yield from self._finish_batch(pending, lease)
            while pending:
                yield from self._finish_batch(pending, lease)
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
            while pending:  # closed early: wait out the engine calls still in flight
                batch = pending.popleft()
                with contextlib.suppress(Exception):
                    if batch.future is not None:
                        batch.future.result()
            lease.release()

    # -- public API ---------------------------------------------------------
    def predict(self, frame: np.ndarray) -> sv.Detections:
        """Detections for one BGR uint8 frame (thread-safe; see the class docstring).

        With ``batch_size`` N > 1 the frame is a padded batch of one (a whole
        N-frame engine call): use :meth:`predict_batch` or :meth:`run` there.
        """
        with contextlib.closing(self.run([frame])) as results:
            return next(results).detections

    def predict_batch(self, frames: Iterable[np.ndarray]) -> list[sv.Detections]:
        """Detections for each BGR uint8 frame of ``frames``, in order, ``batch_size`` per engine call.

        Frames may differ in size. A single (H, W, 3) array is refused (use
        :meth:`predict`); an (N, H, W, 3) array is N frames.
        """
        if isinstance(frames, np.ndarray) and frames.ndim != 4:
            raise InvalidArgumentError(
                f"predict_batch takes a sequence of frames or an (N, H, W, 3) array, got an array of shape "
                f"{frames.shape} (one frame? use predict)"
            )
        with contextlib.closing(self.run(frames)) as results:
            return [result.detections for result in results]

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per frame, in order, overlapping stages at depth 2.

        If taking or starting a frame raises (the iterable raises, the frame
        is invalid), every frame before it is still finished and yielded,
        in order, and then the error is raised. With ``batch_size`` N > 1,
        N frames share each engine call (see the class docstring).
        """
        if self.batch_size > 1:
            yield from self._run_batches(frames)
            return
        pending: deque[_InFlight | _GraphJob] = deque()
        lease = _Lease(self._pool)
        executor = ThreadPoolExecutor(max_workers=1) if self.depth > 1 else None
        iterator = iter(frames)
        index = 0
        try:
            while True:
                try:
                    job = self._admit(iterator, index, lease, executor)
                except Exception:
                    while pending:  # the frames admitted before the error come out first
                        yield self._finish_next(pending, lease)
                    raise
                if job is None:
                    break
                pending.append(job)
                index += 1
                if len(pending) >= self.depth:
                    yield self._finish_next(pending, lease)
            while pending:
                yield self._finish_next(pending, lease)
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
            self._drop(pending)
            lease.release()
