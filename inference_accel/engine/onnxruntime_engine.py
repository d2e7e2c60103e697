"""onnxruntime engine with I/O bound to buffers preallocated once.

CPU provider by default; the CUDA provider where onnxruntime-gpu and a GPU
exist (``device="cuda"``). Inputs and outputs are bound with ``io_binding``
to torch tensors allocated once per slot, so a frame costs no allocation.
Each slot holds ``batch_size`` frames (N in (N, 3, H, W)); N must be one the
model takes (a fixed batch, or any N for a symbolic batch dimension:
``spec.batch``), else :class:`~inference_accel.errors.InvalidArgumentError`
names both.

>>> from inference_accel.engine.onnxruntime_engine import choose_providers
>>> choose_providers("cpu")
['CPUExecutionProvider']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inference_accel import extras
from inference_accel.engine.base import Buffers
from inference_accel.engine.io_spec import check_io
from inference_accel.errors import InvalidModelError, ModelNotFoundError


def choose_providers(device: str) -> list[str]:
    ort = extras.onnxruntime()

    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                "device cuda requested but onnxruntime has no CUDAExecutionProvider "
                "(install the gpu extra: onnxruntime-gpu)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeEngine:
    """An RF-DETR-Seg ONNX model on onnxruntime, with ``slots`` buffer sets."""

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        slots: int = 1,
        threads: int | None = None,
        batch_size: int = 1,
    ):
        ort = extras.onnxruntime()

        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=choose_providers(device))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InvalidModelError(f"onnxruntime cannot load {path}: {exc}") from None
        inputs = [(i.name, i.shape) for i in self.session.get_inputs()]
        outputs = [(o.name, o.shape) for o in self.session.get_outputs()]
        self.spec = check_io(inputs, outputs)
        for tensor in self.session.get_inputs() + self.session.get_outputs():
            if tensor.type != "tensor(float)":
                raise InvalidModelError(f"{path}: {tensor.name} is {tensor.type}; expected tensor(float)")
        self.batch_size = self.spec.batch.check(batch_size)
        self.name = f"onnxruntime-{device}"
        self.device = torch.device("cuda" if device == "cuda" else "cpu")
        self.slots = [self._allocate() for _ in range(slots)]
        self._bindings = [self._bind(buffers) for buffers in self.slots]

    def _allocate(self) -> Buffers:
        s = self.spec
        h, w = s.input_hw
        n = self.batch_size
        # zeros, not empty: the indices a short batch leaves unused must hold finite values
        make = lambda *shape: torch.zeros(shape, dtype=torch.float32, device=self.device)  # noqa: E731
        return Buffers(
            input=make(n, 3, h, w),
            dets=make(n, s.num_queries, 4),
            labels=make(n, s.num_queries, s.num_classes),
            masks=make(n, s.num_queries, *s.mask_hw),
        )

    def _bind(self, buffers: Buffers):
        binding = self.session.io_binding()
        kind = self.device.type
        index = self.device.index or 0
        binding.bind_input(
            self.spec.input_name, kind, index, np.float32, tuple(buffers.input.shape), buffers.input.data_ptr()
        )
        for name in ("dets", "labels", "masks"):
            tensor = getattr(buffers, name)
            binding.bind_output(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        return binding

    def run(self, slot: int = 0) -> Buffers:
        if self.device.type == "cuda":
            torch.cuda.current_stream().synchronize()
        self.session.run_with_iobinding(self._bindings[slot])
        return self.slots[slot]
