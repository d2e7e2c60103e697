"""The TensorRT engine cannot run here (no GPU), so check it against the real API.

``tensorrt-lean`` installs without a GPU and exposes the runtime classes. Every
attribute the engine module touches is listed in ``TRT_API``; this test checks
the list against the installed classes, and checks (by reading the module's
source) that the module touches nothing outside the list.
"""

import ast
import inspect

import pytest

from inference_accel.engine import tensorrt_engine
from inference_accel.engine.tensorrt_engine import TRT_API, import_tensorrt

trt = pytest.importorskip("tensorrt_lean")  # installed by the dev extra


def test_every_listed_attribute_exists_on_the_real_classes():
    real = import_tensorrt()
    for owner, names in TRT_API.items():
        target = real if owner == "module" else getattr(real, owner)
        missing = [n for n in names if not hasattr(target, n)]
        assert not missing, f"{owner} lacks {missing} in {real.__name__} {real.__version__}"


def _attributes_on(tree: ast.AST, receivers: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            text = ast.unparse(base)
            if text in receivers:
                found.add(node.attr)
    return found


def test_module_uses_only_listed_engine_and_context_methods():
    tree = ast.parse(inspect.getsource(tensorrt_engine))
    engine_attrs = _attributes_on(tree, {"self.engine"})
    context_attrs = _attributes_on(tree, {"context", "self._contexts[slot]"})
    runtime_attrs = _attributes_on(tree, {"self._runtime"})
    trt_attrs = _attributes_on(tree, {"trt"}) - {"__name__", "__version__"}
    assert engine_attrs and context_attrs  # the scan itself found the calls
    assert engine_attrs <= set(TRT_API["ICudaEngine"]), engine_attrs - set(TRT_API["ICudaEngine"])
    assert context_attrs <= set(TRT_API["IExecutionContext"]), context_attrs
    assert runtime_attrs <= set(TRT_API["Runtime"]), runtime_attrs
    assert trt_attrs <= set(TRT_API["module"]), trt_attrs - set(TRT_API["module"])


def test_no_gpu_gives_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the no-GPU error path does not apply")
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        tensorrt_engine.TensorRTEngine(plan)
