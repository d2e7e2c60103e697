"""TensorRT engine: preallocated buffers, one context per slot, CUDA graphs.

Runs only on an NVIDIA GPU with ``tensorrt`` (desktop, TensorRT 10/11) or the
lean runtime ``tensorrt_lean`` installed; the engine file (``.plan``) must be
built for that GPU and TensorRT version (``trtexec --onnx=... --saveEngine=...``).

Per slot: one ``IExecutionContext`` whose tensor addresses point at torch
CUDA tensors allocated once. :meth:`TensorRTEngine.run` enqueues with
``execute_async_v3`` on the engine's own non-default stream, ordered after
torch's current stream (where preprocessing ran) and before it (where
postprocessing runs). With CUDA graphs on, the first run of a slot enqueues
once (TensorRT allocates on its first enqueue), then captures the enqueue
into a ``torch.cuda.CUDAGraph`` and replays it from then on: shapes and
addresses are baked in, which is why each slot owns its context and buffers.

**Batch.** Each slot holds ``batch_size`` frames. The batch range comes
from the engine (:func:`profile_batch_range`): a fixed batch from the input
shape, or, for a dynamic one (-1), optimisation profile 0's (min, opt, max),
the profile every new execution context starts on. ``batch_size`` outside
it raises :class:`~inference_accel.errors.InvalidArgumentError` naming
both; each context's input shape is set to (batch_size, 3, H, W) once.
Not yet run on a GPU: whether several contexts may share profile 0 at once
on a dynamic-batch engine is for ``parity/gpu_selfcheck.py`` to confirm.

TensorRT 10 (desktop, JetPack 6) and 11 (desktop) are supported; they share
every runtime call used here. ``TRT_OBJECTS`` names the TensorRT class behind
each expression of this module that holds a TensorRT object: a test
(``tests/test_tensorrt_api.py``) reads this module's source and resolves every
``trt.X.Y`` and every attribute used on those objects against TensorRT 10's
API (its type stubs) and TensorRT 11's (the lean runtime), so the code that
cannot run without a GPU is at least checked against both real APIs.

>>> tensorrt_major(type("trt", (), {"__version__": "10.3.0.30"}))
10
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from inference_accel.engine.base import Buffers
from inference_accel.engine.io_spec import BatchRange, check_io
from inference_accel.errors import InvalidModelError, ModelNotFoundError

logger = logging.getLogger("inference_accel")

# The TensorRT class behind each expression that holds a TensorRT object (the
# module itself is ``trt`` or ``self._trt``). The API test resolves every
# attribute used on these against each supported major version.
TRT_OBJECTS: dict[str, str] = {
    "self._logger": "Logger",
    "self._runtime": "Runtime",
    "self.engine": "ICudaEngine",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "self._contexts[slot]": "IExecutionContext",
}
SUPPORTED_MAJORS = (10, 11)


def tensorrt_major(trt) -> int:
    """The major version of an imported TensorRT module (``"10.3.0.30"`` -> 10); -1 if unreadable."""
    try:
        return int(str(getattr(trt, "__version__", "")).split(".")[0])
    except ValueError:
        return -1


def is_stub_package(module) -> bool:
    """True for a ``tensorrt`` that is only type stubs: ``tensorrt-stubs`` installs a
    ``tensorrt/__init__.pyi`` folder, which imports as an empty namespace package."""
    return getattr(module, "__file__", None) is None


def import_tensorrt():
    """The full ``tensorrt`` package if installed, else the lean runtime (10.x or 11.x).

    Raises RuntimeError naming what is missing: neither installed, only type
    stubs, or an unsupported major version.
    """
    import importlib

    found = []
    for name in ("tensorrt", "tensorrt_lean"):
        try:
            trt = importlib.import_module(name)
        except ImportError:
            continue
        if is_stub_package(trt) or not hasattr(trt, "Runtime"):
            found.append(f"{name} (type stubs only)")
            continue
        major = tensorrt_major(trt)
        if major not in SUPPORTED_MAJORS:
            raise RuntimeError(
                f"{name} {getattr(trt, '__version__', '?')} is not supported: TensorRT 10 or 11 is needed"
            )
        return trt
    seen = f" (found only {', '.join(found)})" if found else ""
    raise RuntimeError(
        f"TensorRT is not installed{seen}; install the gpu extra (pip install 'inference-accel[gpu]')"
    )


def profile_batch_range(engine, input_name: str) -> BatchRange:
    """The batch sizes ``engine`` (an ``ICudaEngine``) takes on ``input_name``.

    A fixed leading dimension is a fixed batch; a dynamic one (-1) takes
    optimisation profile 0's range, with its ``opt`` as ``optimal``.

    >>> from types import SimpleNamespace
    >>> profile = [(1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32)]  # min, opt, max
    >>> fake = SimpleNamespace(get_tensor_shape=lambda name: (-1, 3, 32, 32), num_optimization_profiles=1,
    ...                        get_tensor_profile_shape=lambda name, index: profile)
    >>> profile_batch_range(fake, "input").describe()
    'dynamic batch 1 to 8 (optimal 4)'
    """
    fixed = int(engine.get_tensor_shape(input_name)[0])
    if fixed > 0:
        return BatchRange(fixed, fixed)
    if int(engine.num_optimization_profiles) < 1:
        raise InvalidModelError(f"engine input {input_name} has a dynamic batch but no optimization profile")
    low, best, high = (int(dims[0]) for dims in engine.get_tensor_profile_shape(input_name, 0))
    if not 1 <= low <= best <= high:
        raise InvalidModelError(
            f"engine input {input_name}: optimization profile 0 has an invalid batch range "
            f"min {low}, opt {best}, max {high}"
        )
    return BatchRange(low, high, optimal=best)


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise InvalidModelError(f"unsupported TensorRT I/O dtype {dtype}; expected FLOAT or HALF")
    return table[dtype]


class TensorRTEngine:
    """An RF-DETR-Seg TensorRT engine with ``slots`` contexts and buffer sets."""

    def __init__(self, path: str | Path, slots: int = 1, cuda_graphs: bool = True, batch_size: int = 1):
        trt = import_tensorrt()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"engine file not found: {path}")
        if not torch.cuda.is_available():
            raise RuntimeError("a TensorRT engine needs a CUDA GPU; none is available")
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise InvalidModelError(
                f"TensorRT cannot deserialize {path}: built for another GPU or TensorRT version?"
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs, outputs = [], []
        for name in names:
            shape = tuple(int(d) if int(d) >= 0 else -1 for d in self.engine.get_tensor_shape(name))
            shape = tuple(d if d >= 0 else "dynamic" for d in shape)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append((name, shape))
        spec = check_io(inputs, outputs)
        self.spec = dataclasses.replace(spec, batch=profile_batch_range(self.engine, spec.input_name))
        self.batch_size = self.spec.batch.check(batch_size)
        self.name = "tensorrt"
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream()
        self.cuda_graphs = cuda_graphs
        self.slots: list[Buffers] = []
        self._contexts = []
        self._graphs: list[torch.cuda.CUDAGraph | None] = []
        for _ in range(slots):
            self._add_slot()

    def _alloc(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        dtype = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
        # zeros, not empty: the indices a short batch leaves unused must hold finite values
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def _add_slot(self) -> None:
        s = self.spec
        context = self.engine.create_execution_context()
        if context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        h, w = s.input_hw
        n = self.batch_size
        buffers = Buffers(
            input=self._alloc(s.input_name, (n, 3, h, w)),
            dets=self._alloc("dets", (n, s.num_queries, 4)),
            labels=self._alloc("labels", (n, s.num_queries, s.num_classes)),
            masks=self._alloc("masks", (n, s.num_queries, *s.mask_hw)),
        )
        if not context.set_input_shape(s.input_name, tuple(buffers.input.shape)):
            raise InvalidModelError(f"engine rejects input shape {tuple(buffers.input.shape)}")
        for name, tensor in (
            (s.input_name, buffers.input),
            ("dets", buffers.dets),
            ("labels", buffers.labels),
            ("masks", buffers.masks),
        ):
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise RuntimeError(f"TensorRT refused the address of tensor {name}")
        self.slots.append(buffers)
        self._contexts.append(context)
        self._graphs.append(None)

    def _enqueue(self, slot: int) -> None:
        self.enqueue_on(slot, self.stream)

    def enqueue_on(self, slot: int, stream: torch.cuda.Stream) -> None:
        """Enqueue slot ``slot`` on ``stream``, no sync: what a whole-frame graph captures
        (see :mod:`inference_accel.frame_graph`)."""
        if not self._contexts[slot].execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def _capture(self, slot: int) -> None:
        """Warm up once (TensorRT allocates on the first enqueue), then capture."""
        with torch.cuda.stream(self.stream):
            self._enqueue(slot)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            # torch.cuda.graph ends the capture in its __exit__ even when the
            # body raises, so the stream never stays in capture mode.
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._enqueue(slot)
        except Exception as exc:
            logger.warning("CUDA graph capture failed, enqueueing without graphs: %s", exc)
            self.cuda_graphs = False
            return
        self._graphs[slot] = graph

    def run(self, slot: int = 0) -> Buffers:
        """Run slot ``slot``; ordered after and before torch's current stream."""
        current = torch.cuda.current_stream()
        self.stream.wait_stream(current)
        if self.cuda_graphs and self._graphs[slot] is None:
            self._capture(slot)
        graph = self._graphs[slot]
        if graph is not None:
            with torch.cuda.stream(self.stream):
                graph.replay()
        else:
            self._enqueue(slot)
        current.wait_stream(self.stream)
        return self.slots[slot]
