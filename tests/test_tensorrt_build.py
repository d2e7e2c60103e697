"""Building TensorRT engines: what can be checked without a GPU or the full tensorrt package.

The builder itself cannot run here (``tensorrt`` does not install on our
machines; the lean runtime has no builder). Checked here: the error a user
without the builder gets, the I/O check on a parsed network, every TensorRT
attribute the module uses against TensorRT 10's and 11's APIs (version
branches against their own major only, ``tests/trt_api_check.py``), and the
whole build flow run on a fake ``tensorrt`` of each major whose objects have
exactly the members of that major's API (so the TensorRT 11 path cannot touch
``BuilderFlag.FP16``); ``parity/gpu_selfcheck.py`` builds a real engine on a GPU.
"""

import inspect
import subprocess
import sys
import types
from types import SimpleNamespace

import pytest

from inference_accel.engine import tensorrt_build
from inference_accel.engine.tensorrt_build import TRT_OBJECTS, build_engine, network_io
from inference_accel.errors import EngineBuildError, InvalidModelError
from tests import trt_api_check as check
from tests.helpers_onnx import write_tiny_seg_model


def _has_full_tensorrt() -> bool:
    """A real ``tensorrt`` (not the namespace package ``tensorrt-stubs`` leaves behind)."""
    try:
        import tensorrt
    except ImportError:
        return False
    return getattr(tensorrt, "__file__", None) is not None and hasattr(tensorrt, "Builder")


def test_without_the_builder_the_error_names_the_package(tmp_path):
    if _has_full_tensorrt():
        pytest.skip("the full tensorrt package is installed here")
    onnx = write_tiny_seg_model(tmp_path / "tiny.onnx")
    with pytest.raises(EngineBuildError, match="full tensorrt package"):
        build_engine(onnx)


def test_cli_export_tensorrt_reuses_the_onnx_and_fails_in_one_line(tmp_path):
    if _has_full_tensorrt():
        pytest.skip("the full tensorrt package is installed here")
    onnx = write_tiny_seg_model(tmp_path / "tiny.onnx")
    out = subprocess.run(
        [sys.executable, "-m", "inference_accel.cli", "export", "--tensorrt", "--output", str(onnx)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "exported" not in out.stdout  # the existing ONNX is not re-exported
    assert "error: building a TensorRT engine needs the full tensorrt package" in out.stderr
    assert "Traceback" not in out.stderr


def _tensor(name, shape):
    return SimpleNamespace(name=name, shape=shape)


def _network(inputs, outputs):
    return SimpleNamespace(
        num_inputs=len(inputs), num_outputs=len(outputs),
        get_input=lambda i: inputs[i], get_output=lambda i: outputs[i],
    )


def test_network_io_accepts_rfdetr_seg_and_rejects_others():
    good = _network(
        [_tensor("input", (1, 3, 312, 312))],
        [_tensor("dets", (1, 100, 4)), _tensor("labels", (1, 100, 91)), _tensor("masks", (1, 100, 78, 78))],
    )
    spec = network_io(good)
    assert spec.input_hw == (312, 312) and spec.mask_hw == (78, 78) and spec.num_classes == 91
    bad = _network([_tensor("x", (1, 3, 8, 8))], [_tensor("y", (1, 3, 8, 8))])
    with pytest.raises(InvalidModelError):
        network_io(bad)


@pytest.fixture(scope="module")
def apis():
    return check.apis()


def test_build_uses_only_api_of_tensorrt_10_and_11_per_branch(apis):
    scan, failures = check.check_source(inspect.getsource(tensorrt_build), TRT_OBJECTS, apis)
    assert not failures, "\n".join(failures)
    by_attr = {}
    for use in scan.uses:
        by_attr.setdefault((use.owner, use.attr), set()).update(use.majors)
    assert by_attr[("BuilderFlag", "FP16")] == {10}  # the weak-typing flag only on TensorRT 10
    assert by_attr[("Builder", "build_serialized_network")] == {10, 11}
    assert by_attr[("OnnxParser", "parse_from_file")] == {10, 11}
    assert by_attr[("ITensor", "shape")] == {10, 11}
    assert by_attr[("IOptimizationProfile", "set_shape")] == {10, 11}
    assert by_attr[("IBuilderConfig", "add_optimization_profile")] == {10, 11}
    assert scan.branches, "the version branch was not recognised"


# -- the build flow on a fake tensorrt of each major ----------------------------------
class _Strict:
    """A TensorRT object that has exactly the members ``api`` gives its class."""

    def __init__(self, api, cls, calls, **members):
        self._api, self._cls, self._calls, self._members = api, cls, calls, members

    def __getattr__(self, name):
        problem = self._api.problem(self._cls, name)
        if problem:
            raise AttributeError(problem)
        if name in self._members:
            return self._members[name]

        def method(*args):
            self._calls.append((self._cls, name, args))
            return True

        return method


def fake_tensorrt(api, calls, io):
    """``tensorrt`` of ``api.major``: each object refuses members its class lacks in that major."""
    flags = _Strict(api, "BuilderFlag", calls, **{n: f"BuilderFlag.{n}" for n in api.classes["BuilderFlag"]})
    pools = _Strict(api, "MemoryPoolType", calls, WORKSPACE="WORKSPACE")
    inputs, outputs = io
    tensors = lambda specs: [_Strict(api, "ITensor", calls, name=n, shape=s) for n, s in specs]  # noqa: E731
    network = _Strict(api, "INetworkDefinition", calls, num_inputs=len(inputs), num_outputs=len(outputs),
                      get_input=tensors(inputs).__getitem__, get_output=tensors(outputs).__getitem__)
    config = _Strict(api, "IBuilderConfig", calls)
    profile = _Strict(api, "IOptimizationProfile", calls)

    def create_network(*flags):
        calls.append(("Builder", "create_network", flags))
        return network

    builder = _Strict(api, "Builder", calls, create_network=create_network,
                      create_builder_config=lambda: config,
                      create_optimization_profile=lambda: profile,
                      build_serialized_network=lambda n, c: b"serialized engine")
    parser = _Strict(api, "OnnxParser", calls, num_errors=0)
    logger_cls = type("Logger", (), {"WARNING": "WARNING", "__init__": lambda self, severity: None})
    module = types.ModuleType("tensorrt")
    module.__file__ = "/fake/tensorrt/__init__.py"
    module.__version__ = f"{api.major}.4.0.1"
    names = {"Logger": logger_cls, "Builder": lambda logger: builder, "OnnxParser": lambda n, logger: parser,
             "BuilderFlag": flags, "MemoryPoolType": pools}
    for name, value in names.items():
        assert api.problem("module", name) is None, name
        setattr(module, name, value)
    return module


IO = ([("input", (1, 3, 32, 32))], [("dets", (1, 5, 4)), ("labels", (1, 5, 4)), ("masks", (1, 5, 8, 8))])


@pytest.mark.parametrize("major", [10, 11])
@pytest.mark.parametrize("fp16", [False, True])
def test_build_flow_on_each_major(apis, monkeypatch, tmp_path, major, fp16):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(apis[major], calls, IO))
    onnx = write_tiny_seg_model(tmp_path / "tiny.onnx")
    if fp16 and major >= 11:
        with pytest.raises(EngineBuildError, match="no FP16 builder flag .* export an FP16 ONNX model"):
            build_engine(onnx, fp16=True)
        assert calls == []  # refused before parsing
        return
    plan = build_engine(onnx, fp16=fp16)
    assert plan.read_bytes() == b"serialized engine"
    assert ("Builder", "create_network", ()) in calls
    assert ("IBuilderConfig", "set_memory_pool_limit", ("WORKSPACE", 4 << 30)) in calls
    flag_calls = [c for c in calls if c[:2] == ("IBuilderConfig", "set_flag")]
    assert flag_calls == ([("IBuilderConfig", "set_flag", ("BuilderFlag.FP16",))] if fp16 else [])


DYNAMIC_IO = (
    [("input", (-1, 3, 32, 32))], [("dets", (-1, 5, 4)), ("labels", (-1, 5, 4)), ("masks", (-1, 5, 8, 8))]
)


@pytest.mark.parametrize("major", [10, 11])
def test_a_dynamic_batch_builds_one_profile_up_to_max_batch(apis, monkeypatch, tmp_path, major):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(apis[major], calls, DYNAMIC_IO))
    onnx = write_tiny_seg_model(tmp_path / "tiny.onnx")  # the fake network's I/O is what counts
    build_engine(onnx, max_batch=8, opt_batch=4)
    assert ("IOptimizationProfile", "set_shape", ("input", (1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))) in calls
    added = [c[:2] for c in calls if c[1] == "add_optimization_profile"]
    assert added == [("IBuilderConfig", "add_optimization_profile")]
    calls.clear()
    build_engine(onnx, max_batch=2)  # opt defaults to max
    assert ("IOptimizationProfile", "set_shape", ("input", (1, 3, 32, 32), (2, 3, 32, 32), (2, 3, 32, 32))) in calls


@pytest.mark.parametrize(
    "io, kwargs, message",
    [
        (DYNAMIC_IO, {}, "has a dynamic batch: pass max_batch"),
        (DYNAMIC_IO, {"max_batch": 2, "opt_batch": 4}, "opt_batch 4 exceeds max_batch 2"),
        (IO, {"max_batch": 4}, "has a fixed batch 1: max_batch/opt_batch apply only to a dynamic batch"),
    ],
)
def test_batch_profile_arguments_that_cannot_apply_are_errors(apis, monkeypatch, tmp_path, io, kwargs, message):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(apis[11], calls, io))
    with pytest.raises(EngineBuildError, match=message):
        build_engine(write_tiny_seg_model(tmp_path / "tiny.onnx"), **kwargs)
    assert not any(c[0] == "IOptimizationProfile" for c in calls)


def test_the_fake_refuses_what_its_major_lacks(apis):
    trt11 = fake_tensorrt(apis[11], [], IO)
    with pytest.raises(AttributeError, match="BuilderFlag.FP16 does not exist in TensorRT 11"):
        trt11.BuilderFlag.FP16  # noqa: B018
    assert fake_tensorrt(apis[10], [], IO).BuilderFlag.FP16 == "BuilderFlag.FP16"


def test_type_stubs_alone_get_a_clear_error(tmp_path, monkeypatch):
    stub = types.ModuleType("tensorrt")  # what tensorrt-stubs' namespace package looks like
    stub.__file__ = None
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    with pytest.raises(EngineBuildError, match="only type stubs"):
        build_engine(write_tiny_seg_model(tmp_path / "tiny.onnx"))
