"""Optional dependencies: import one, or say which extra of ours installs it.

The extras are declared in ``pyproject.toml`` (README "Install"): ``cpu``
(onnxruntime), ``gpu`` / ``jetson`` (onnxruntime-gpu, TensorRT), ``export``
(rfdetr), ``demo`` (scikit-image).

>>> require("json", "dev", "this example").__name__
'json'
>>> try:
...     require("no_such_module_xyz", "demo", "rendering the sample media")
... except MissingDependencyError as error:
...     print(error)
rendering the sample media needs no_such_module_xyz, which is not installed: pip install "inference-accel[demo]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from inference_accel.errors import MissingDependencyError

def require(module: str, extra: str, purpose: str, alternatives: str = "") -> ModuleType:
    """``import module``, or raise :class:`MissingDependencyError` naming ``extra``.

    Only a missing module is translated: an installed module that fails to
    import (a broken build) keeps its own error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and error.name != module and not module.startswith(error.name + "."):
            raise  # the module exists but one of its own imports is missing
        raise MissingDependencyError(
            f'{purpose} needs {module}, which is not installed: pip install "inference-accel[{extra}]"'
            + (f" ({alternatives})" if alternatives else "")
        ) from error


def onnxruntime() -> ModuleType:
    """onnxruntime (the CPU or the GPU package: one of them, never both)."""
    return require(
        "onnxruntime", "cpu", "running an ONNX model", "with an NVIDIA GPU: [gpu], on a Jetson: [jetson]"
    )
