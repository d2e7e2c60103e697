"""One CUDA graph per frame: upload, preprocessing, TensorRT, postprocessing, copy back.

Per-stage graphs capture only the TensorRT enqueue (what Roboflow's
``inference`` does); the Triton launches around it stay eager, a dozen
launches per frame. Here the whole frame's GPU work is captured once per
:class:`FrameKey` and replayed:

1. host: the BGR frame is copied into a pinned staging buffer (the only
   per-frame host work before the replay);
2. graph: staging -> device frame (async H2D; none on an integrated GPU, where
   the kernel reads the pinned staging frame in place: :mod:`inference_accel.host_memory`),
   the fused preprocessing kernel
   into the engine slot's input, the engine's enqueue, the postprocessing
   launches (selection, bounds, runs) and the one device-to-host copy of
   the packet into pinned memory;
3. host: wait for the replay's event, parse the packet into ``sv.Detections``
   with an ``sv.CompactMask`` (:meth:`TritonPostprocessor.finish`).

Everything a graph touches is owned by its :class:`_CapturedFrame` and never
resized: its own :class:`TritonPreprocessor` and :class:`TritonPostprocessor`
(so no other call can grow and free a buffer whose address the graph baked
in), its staging buffer, device frame and packet. Only the engine slot's
buffers are shared with the eager path: one engine slot per captured frame.

**Safety.** The first frame of a key runs eagerly (compiles every kernel,
uploads tables, lets TensorRT allocate), then the same sequence is captured
and replayed once on that frame after every buffer the graph writes has been
poisoned: each stage's output must equal the eager run's bit for bit and the
detections must match (boxes, scores, classes, every pixel). A mismatch or
any exception during capture switches whole-frame graphs off for the process
with the reason, and frames take the per-stage path; a capture frame whose
runs overflow the buffer only sends that frame down the per-stage path. The
intent is that a faulty graph costs a fallback, not a wrong answer; no GPU
has run this check yet (``parity/gpu_selfcheck.py`` does).

**Backends.** :class:`CudaBackend` is the real one (``torch.cuda.CUDAGraph``,
pinned memory, events, one side stream). The tests drive the same host
logic with a CPU stand-in whose "graph" re-runs the captured function
(Triton under the interpreter, onnxruntime as the engine), which checks the
data flow, keys, parity check and fallback; what only a GPU can check
(capture itself) is in ``parity/gpu_selfcheck.py``.

>>> from inference_accel.flags import Flags
>>> frame_graph_reason(Flags(cuda_graphs=False))
'ENABLE_AUTO_CUDA_GRAPHS_FOR_TRT_BACKEND=false'
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import supervision as sv
import torch

from inference_accel import dispatch
from inference_accel.flags import CUDA_GRAPHS_FLAG, POSTPROC_FLAG, PREPROC_FLAG, Flags
from inference_accel.parity import compare_detections
from inference_accel.postprocess.triton_launch import Pending, RunsOverflow, TritonPostprocessor
from inference_accel.preprocess.geometry import Geometry
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.triton_launch import TritonPreprocessor


OP = "frame-graph"
MAX_CAPTURED_PER_SLOT = 4  # captured frames kept per engine slot (LRU over frame sizes)


class GraphMismatch(RuntimeError):
    """The replay of a freshly captured graph differs from the eager run."""


# -- process-wide gate (shown by doctor) --------------------------------------------
def frame_graph_reason(flags: Flags) -> str | None:
    """Why whole-frame graphs cannot run in this process (None: they can, given a capturable engine)."""
    if not flags.cuda_graphs:
        return f"{CUDA_GRAPHS_FLAG}=false"
    if not flags.preproc_fast:
        return f"{PREPROC_FLAG}=false"
    if not flags.postproc_fast:
        return f"{POSTPROC_FLAG}=false"
    if not torch.cuda.is_available():
        return "torch.cuda is not available"
    import inference_accel.postprocess.api  # noqa: F401 - registers the ops' implementations
    import inference_accel.preprocess.api  # noqa: F401

    for op in ("preprocess", "postprocess"):
        verdicts = {v.implementation.name: v.reason for v in dispatch.explain(op, flags)}
        reason = verdicts.get("triton", "not registered")
        if reason is not None:
            return f"the Triton {op} path is unavailable: {reason}"
    return None


dispatch.register(dispatch.Implementation(OP, "whole-frame", 10, frame_graph_reason))
dispatch.register(dispatch.Implementation(OP, "per-stage", 0, lambda flags: None))


def process_reason(flags: Flags) -> str | None:
    """:func:`frame_graph_reason`, or the failure that switched graphs off for the process."""
    verdicts = {v.implementation.name: v.reason for v in dispatch.explain(OP, flags)}
    return verdicts["whole-frame"]


def engine_reason(engine: Any) -> str | None:
    """Why this engine's work cannot go into a graph (None: it can)."""
    if not callable(getattr(engine, "enqueue_on", None)):
        return f"engine {getattr(engine, 'name', type(engine).__name__)} cannot be captured (TensorRT only)"
    return None


# -- backends -------------------------------------------------------------------------
class Backend(Protocol):
    device: torch.device

    def pinned(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor: ...

    def stream_context(self): ...

    def stream_handle(self) -> Any: ...

    def capture(self, fn: Callable[[], Pending]) -> tuple[Callable[[], None], Pending]: ...

    def follow_current(self) -> None: ...

    def record(self) -> Any: ...

    def wait(self, event: Any) -> None: ...


class CudaBackend:
    """torch.cuda: one side stream, ``CUDAGraph`` capture, pinned host memory, events."""

    def __init__(self, device: torch.device):
        from inference_accel import host_memory

        self.device = device
        self.stream = torch.cuda.Stream(device=device)
        # Integrated GPU (Jetson): the graph reads the pinned staging frame in place, no upload node.
        self.zero_copy = host_memory.zero_copy_reason(device) is None

    def pinned(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def stream_context(self):
        return torch.cuda.stream(self.stream)

    def stream_handle(self) -> Any:
        return self.stream

    def capture(self, fn: Callable[[], Pending]) -> tuple[Callable[[], None], Pending]:
        self.follow_current()
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph makes self.stream current and ends the capture in
        # its __exit__ even when fn raises: the stream never stays capturing.
        # thread_local: a depth-2 worker thread enqueueing a per-stage frame
        # meanwhile is not an error of this capture.
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            pending = fn()

        def replay() -> None:
            with torch.cuda.stream(self.stream):
                graph.replay()

        replay.graph = graph  # keep it alive with the closure
        return replay, pending

    def follow_current(self) -> None:
        """Order the side stream after work already queued on torch's current stream."""
        self.stream.wait_stream(torch.cuda.current_stream(self.device))

    def record(self) -> Any:
        event = torch.cuda.Event(blocking=True)  # the host sleeps in synchronize(), no spin
        event.record(self.stream)
        return event

    def wait(self, event: Any) -> None:
        event.synchronize()


# -- captured frames --------------------------------------------------------------------
@dataclass(frozen=True)
class FrameKey:
    """What differs between the graphs of one :class:`FrameGraphs` (whose
    threshold, detection limit and classes are fixed): the engine slot and
    the frame geometry (frame size, resize mode)."""

    slot: int
    geometry: Geometry


class _CapturedFrame:
    """One graph and everything it reads and writes (fixed addresses)."""

    def __init__(self, key: FrameKey, backend: Backend, capacity: int):
        h, w = key.geometry.frame_hw
        self.key = key
        self.staging = backend.pinned((h, w, 3), torch.uint8)
        # zero copy: the kernel reads the staging buffer itself (mapped pinned memory)
        self.zero_copy = bool(getattr(backend, "zero_copy", False))
        self.device_frame = (
            self.staging if self.zero_copy else torch.empty((h, w, 3), dtype=torch.uint8, device=backend.device)
        )
        self.pre = TritonPreprocessor()
        self.post = TritonPostprocessor(capacity)
        self.replay: Callable[[], None] | None = None
        self.pending: Pending | None = None
        self.done: Any = None  # event behind the last replay
        self.outstanding = False  # replayed, result() not yet called: the packet is in use


@dataclass
class Submitted:
    """A replayed frame whose detections :meth:`FrameGraphs.result` collects.

    The frame that captured its graph carries its (already checked)
    ``detections`` instead of an event.
    """

    captured: _CapturedFrame
    event: Any = None
    detections: sv.Detections | None = None


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes (NaN == NaN, -0.0 != 0.0): for bitwise comparison."""
    return t.contiguous().view(torch.uint8)


class FrameGraphs:
    """Captures and replays whole-frame graphs for one pipeline's engine.

    ``engine`` must offer ``enqueue_on(slot, stream)`` (enqueue on the given
    stream, no sync) and ``slots`` (preallocated buffers).
    """

    def __init__(
        self,
        engine: Any,
        *,
        threshold: float,
        max_detections: int,
        num_classes: int | None,
        class_names: Sequence[str] | None,
        backend: Backend | None = None,
        capacity: int | None = None,
        normalization: Normalization | None = None,
    ):
        from inference_accel.postprocess.triton_launch import DEFAULT_CAPACITY

        self.engine = engine
        self.backend = backend or CudaBackend(engine.device)
        self.threshold = threshold
        self.max_detections = max_detections
        self.num_classes = num_classes
        self.class_names = class_names
        self.capacity = capacity or DEFAULT_CAPACITY
        self.normalization = normalization  # the model's preprocessing constants (None: ImageNet)
        self._captured: OrderedDict[FrameKey, _CapturedFrame] = OrderedDict()
        # A key whose capture frame overflowed the run buffer keeps its buffers
        # for the next attempt instead of allocating them again.
        self._retry: dict[FrameKey, _CapturedFrame] = {}
        self._lock = threading.Lock()

    def input_reason(self, frame: np.ndarray, slot: int, geometry: Geometry) -> str | None:
        """Why this frame cannot take a graph (None: it can): the Triton paths' own input checks."""
        from inference_accel.postprocess import api as post_api
        from inference_accel.preprocess import api as pre_api

        buffers = self.engine.slots[slot]
        reason = pre_api.INPUT_PRECONDITIONS["triton"](frame, buffers.input, geometry)
        if reason is not None:
            return f"preprocess: {reason}"
        reason = post_api.INPUT_PRECONDITIONS["triton"](buffers.labels[0], buffers.dets[0], buffers.masks[0], geometry)
        if reason is not None:
            return f"postprocess: {reason}"
        return None

    # -- the recorded sequence --------------------------------------------------------
    def _enqueue(self, cf: _CapturedFrame) -> Pending:
        """The frame's GPU work, on the backend's stream; nothing read back."""
        key = cf.key
        buffers = self.engine.slots[key.slot]
        if not cf.zero_copy:
            cf.device_frame.copy_(cf.staging, non_blocking=True)
        cf.pre(cf.device_frame, buffers.input, 0, key.geometry, normalization=self.normalization)
        self.engine.enqueue_on(key.slot, self.backend.stream_handle())
        return cf.post.launch(
            buffers.labels[0], buffers.dets[0], buffers.masks[0], key.geometry, key.geometry.frame_hw,
            threshold=self.threshold, max_detections=self.max_detections,
            num_classes=self.num_classes, class_names=self.class_names, record_event=False,
        )

    def _stage_tensors(self, cf: _CapturedFrame) -> dict[str, torch.Tensor]:
        """What each node of the graph writes: the device frame, the engine's input and outputs."""
        b = self.engine.slots[cf.key.slot]
        written = {"preprocessing": b.input, "engine dets": b.dets, "engine labels": b.labels, "engine masks": b.masks}
        # zero copy: no upload node; the staging frame is the host's input, not the graph's output
        return written if cf.zero_copy else {"frame upload": cf.device_frame, **written}

    def _capture(self, cf: _CapturedFrame) -> sv.Detections:
        """Eager run, capture, then a replay on the same frame that must rewrite everything.

        Before the check replay every buffer the graph writes is poisoned
        (frame bytes inverted, floats NaN, packets -1), so a node missing from
        the graph (a launch that went to another stream, say) leaves poison
        behind instead of the eager run's correct values. Each stage's output
        must then equal the eager run's bit for bit, and the detections too.
        """
        self.backend.follow_current()
        try:
            with self.backend.stream_context():
                eager_pending = self._enqueue(cf)
            self.backend.wait(self.backend.record())
            expected = cf.post.finish(eager_pending)
            eager = {name: t.clone() for name, t in self._stage_tensors(cf).items()}
            cf.replay, cf.pending = self.backend.capture(lambda: self._enqueue(cf))
            for name, t in self._stage_tensors(cf).items():
                if t.is_floating_point():
                    t.fill_(float("nan"))
                else:
                    t.bitwise_not_()
            cf.post.poison()
            cf.pending.packet.fill_(-1)
            self.backend.follow_current()
            cf.replay()
            self.backend.wait(self.backend.record())
        except BaseException:
            # Nothing may still run on the side stream when the caller falls
            # back to the per-stage path on the same engine slot.
            self.backend.wait(self.backend.record())
            raise
        for name, t in self._stage_tensors(cf).items():
            if not torch.equal(_bits(t), _bits(eager[name])):
                raise GraphMismatch(f"graph replay: {name} differs from the eager run (node missing from the graph?)")
        try:
            got = cf.post.finish(cf.pending)
        except RunsOverflow as exc:  # the eager run fit, so the replay's packet is wrong
            raise GraphMismatch(f"graph replay wrote an unreadable packet ({exc})") from None
        problems = compare_detections(got, expected)
        if problems:
            raise GraphMismatch("graph replay differs from the eager run: " + "; ".join(problems))
        return got

    # -- public -----------------------------------------------------------------------
    def submit(self, frame: np.ndarray, slot: int, geometry: Geometry) -> Submitted:
        """Stage ``frame`` and replay its graph (capturing it first for a new key)."""
        key = FrameKey(slot, geometry)
        with self._lock:
            cf = self._captured.get(key)
            if cf is not None:
                self._captured.move_to_end(key)
            spare = self._retry.pop(key, None) if cf is None else None
        if cf is None:
            cf = spare or _CapturedFrame(key, self.backend, self.capacity)
            np.copyto(cf.staging.numpy(), frame)
            try:
                detections = self._capture(cf)
            except RunsOverflow:  # this frame, not the graph: try again with the next one
                if cf.replay is None:
                    with self._lock:
                        self._retry = {key: cf}  # one set of spare buffers at most
                raise
            with self._lock:
                self._captured[key] = cf
                same_slot = [k for k in self._captured if k.slot == slot]
                for old_key in same_slot[: max(0, len(same_slot) - MAX_CAPTURED_PER_SLOT)]:
                    del self._captured[old_key]  # least recently used first
            return Submitted(cf, detections=detections)
        if cf.outstanding:
            raise RuntimeError(
                f"slot {slot}: the previous frame's result() was not collected; its packet would be overwritten"
            )
        if cf.done is not None:
            self.backend.wait(cf.done)  # the last replay has read the staging buffer
        np.copyto(cf.staging.numpy(), frame)
        self.backend.follow_current()
        cf.replay()
        cf.done = self.backend.record()
        cf.outstanding = True
        return Submitted(cf, event=cf.done)

    def result(self, submitted: Submitted, times: dict[str, float] | None = None) -> sv.Detections:
        """Wait for a replay and parse its packet.

        ``times`` (optional) receives ``inference`` (ms waiting for the
        graph's GPU work) and ``postprocess`` (ms parsing the packet).
        """
        if submitted.detections is not None:
            return submitted.detections
        start = time.perf_counter()
        self.backend.wait(submitted.event)
        waited = time.perf_counter()
        try:
            detections = submitted.captured.post.finish(submitted.captured.pending)
        finally:
            submitted.captured.outstanding = False
        if times is not None:
            times["inference"] = (waited - start) * 1e3
            times["postprocess"] = (time.perf_counter() - waited) * 1e3
        return detections

    def __len__(self) -> int:
        return len(self._captured)
