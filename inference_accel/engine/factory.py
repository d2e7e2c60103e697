"""Open the right engine for a :class:`~inference_accel.models.source.ModelSource`.

>>> from inference_accel.engine.factory import default_device
>>> default_device() in ("cpu", "cuda")
True
"""

from __future__ import annotations

import torch

from inference_accel import extras
from inference_accel.flags import Flags
from inference_accel.models.source import ModelSource


def default_device() -> str:
    """``cuda`` when torch sees a GPU and onnxruntime has its CUDA provider, else ``cpu``."""
    if not torch.cuda.is_available():
        return "cpu"
    ort = extras.onnxruntime()

    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def open_engine(
    source: ModelSource, flags: Flags, device: str | None = None, slots: int = 1, batch_size: int = 1
):
    """The engine for ``source`` with ``slots`` buffer sets of ``batch_size`` frames each
    (checked against the model's ``spec.batch``)."""
    if source.kind == "tensorrt":
        from inference_accel.engine.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(source.path, slots=slots, cuda_graphs=flags.cuda_graphs, batch_size=batch_size)
    from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(source.path, device=device or default_device(), slots=slots, batch_size=batch_size)
