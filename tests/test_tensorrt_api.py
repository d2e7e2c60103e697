"""The TensorRT engine cannot run here (no GPU), so check it against the real APIs.

TensorRT 10 (JetPack 6) and 11 are supported. ``tests/trt_api_check.py`` reads
``inference_accel/engine/tensorrt_engine.py`` and resolves every ``trt.X.Y``
and every attribute used on a TensorRT object (``TRT_OBJECTS``) against
TensorRT 10's API (its type stubs, or the snapshot made from them) and
TensorRT 11's (the installed lean runtime ``tensorrt_lean`` 11, dev extra).
The checker itself is tested on made-up sources, so these tests can fail.
"""

import inspect
import sys
import types

import pytest

from inference_accel.engine import tensorrt_engine
from inference_accel.engine.tensorrt_engine import TRT_OBJECTS, import_tensorrt, is_stub_package, tensorrt_major
from tests import trt_api_check as check


@pytest.fixture(scope="module")
def apis():
    return check.apis()


def test_engine_uses_only_api_of_tensorrt_10_and_11(apis):
    scan, failures = check.check_source(inspect.getsource(tensorrt_engine), TRT_OBJECTS, apis)
    assert not failures, "\n".join(failures)
    used = {(u.owner, u.attr) for u in scan.uses}
    # The scan saw the calls that matter (it would pass anything if it saw nothing).
    assert {("Runtime", "deserialize_cuda_engine"), ("IExecutionContext", "execute_async_v3"),
            ("IExecutionContext", "set_tensor_address"), ("ICudaEngine", "num_io_tensors"),
            ("module", "TensorIOMode"), ("DataType", "HALF"),
            ("ICudaEngine", "get_tensor_profile_shape"), ("ICudaEngine", "num_optimization_profiles"),
            ("IExecutionContext", "set_input_shape")} <= used
    assert all(u.majors == frozenset({10, 11}) for u in scan.uses)  # no version branch needed here


def test_tensorrt_11_is_the_installed_lean_runtime_when_there_is_one(apis):
    lean = check.live_module("tensorrt_lean", 11)
    if lean is None:
        pytest.skip("tensorrt_lean 11 is not installed (dev extra, x86_64): the snapshot stands in")
    assert apis[11].classes["IExecutionContext"] == check.api_from_module(lean).classes["IExecutionContext"]
    assert "FP16" not in apis[11].classes["BuilderFlag"]  # weak typing is gone in 11
    assert "FP16" in apis[10].classes["BuilderFlag"]


def test_the_snapshot_equals_its_sources_when_they_are_here():
    """The snapshot is what the stubs and the lean runtime say (only checked where they are)."""
    from tests.tensorrt_api_snapshot import SNAPSHOT

    compared = 0
    stubs = check.stub_api()
    if stubs is not None and stubs.source.split()[1] == SNAPSHOT["10"]["source"].split()[1]:
        assert check.snapshot_entry(stubs) == SNAPSHOT["10"]
        compared += 1
    lean = check.live_module("tensorrt_lean", 11)
    if lean is not None and lean.__version__ == SNAPSHOT["11-lean"]["source"].split()[1]:
        assert check.snapshot_entry(check.api_from_module(lean)) == SNAPSHOT["11-lean"]
        compared += 1
    if not compared:
        pytest.skip("neither the stubs (INFERENCE_ACCEL_TRT_STUBS) nor the snapshot's lean runtime is here")


def test_stub_parser_reads_classes_members_and_enum_values():
    bindings = (
        "class Builder:\n"
        "    def create_network(self, flags: int = 0) -> INetworkDefinition:\n        ...\n"
        "    def odd(self, a: int = 0, b: int) -> None:\n        ...\n"  # invalid Python, as in the real stubs
        "    @property\n    def logger(self) -> ILogger:\n        ...\n"
        "class BuilderFlag:\n"
        "    FP16: typing.ClassVar[BuilderFlag]  # value = <BuilderFlag.FP16: 0>\n"
    )
    package = "from tensorrt_bindings.tensorrt import Builder\n__version__: str = '10.9.0.34'\n__all__ = ['Builder', 'BuilderFlag']\n"
    api = check.api_from_stubs(bindings, package, "test")
    assert api.major == 10
    assert api.classes["Builder"] == {"create_network", "odd", "logger"}
    assert api.classes["BuilderFlag"] == {"FP16"}
    assert {"Builder", "BuilderFlag"} <= api.module


def test_checker_fails_on_a_missing_member_and_respects_version_branches(apis):
    source = '''
def build(trt, builder, config, context):
    config.set_flag(trt.BuilderFlag.FP16)                  # 11 has no FP16: flagged for 11
    if tensorrt_major(trt) < 11:
        config.set_flag(trt.BuilderFlag.FP16)              # 10 only: fine
    if fp16 and tensorrt_major(trt) >= 11:
        config.set_flag(trt.BuilderFlag.FP16)              # 11 only: flagged
    context.execute_async_v2([], 0)                        # gone in 10 already: flagged for both
    network = builder.create_network()                     # declared: fine
    profile = builder.create_optimization_profile()        # undeclared TensorRT object: flagged
    return trt.NoSuchThing, network.get_input(0).name      # undeclared chained object: flagged
'''
    objects = {"builder": "Builder", "config": "IBuilderConfig", "context": "IExecutionContext",
               "network": "INetworkDefinition"}
    scan, failures = check.check_source(source, objects, apis)
    text = "\n".join(failures)
    assert sum("BuilderFlag.FP16 does not exist in TensorRT 11" in f for f in failures) == 2, text
    assert not any("BuilderFlag.FP16 does not exist in TensorRT 10" in f for f in failures), text
    assert sum("execute_async_v2 does not exist" in f for f in failures) == 2, text  # 10 and 11
    assert any("`profile` holds the result" in f for f in failures), text
    assert any("trt.NoSuchThing does not exist in TensorRT 10" in f for f in failures), text
    assert any("network.get_input(0)" in f and "not declared" in f for f in failures), text
    assert [(body, orelse) for _, body, orelse in scan.branches] == [
        (frozenset({10}), frozenset({11})), (frozenset({11}), frozenset({10, 11}))
    ]


def test_removed_in_11_lists_only_names_tensorrt_10_has():
    """NVIDIA's removal list, applied to 10's API, must name real 10 members (typos would hide)."""
    api10 = check.api_10()
    for owner, names in check.REMOVED_IN_11.items():
        have = api10.module if owner == check.MODULE else api10.classes[owner]
        assert set(names) <= have, (owner, set(names) - have)


def test_tensorrt_major_reads_the_version():
    assert tensorrt_major(types.SimpleNamespace(__version__="11.4.0.106")) == 11
    assert tensorrt_major(types.SimpleNamespace(__version__="10.3.0.30")) == 10
    assert tensorrt_major(types.SimpleNamespace()) == -1


def _namespace_tensorrt(tmp_path, monkeypatch):
    """What ``pip install tensorrt-stubs`` leaves: a ``tensorrt/`` folder with only ``__init__.pyi``."""
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("__version__: str = '10.13.0.35'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    import importlib

    importlib.invalidate_caches()
    trt = importlib.import_module("tensorrt")
    assert is_stub_package(trt)
    return trt


def test_type_stubs_are_not_taken_for_tensorrt(tmp_path, monkeypatch):
    _namespace_tensorrt(tmp_path, monkeypatch)
    if check.live_module("tensorrt_lean", 11) is not None or check.live_module("tensorrt_lean", 10) is not None:
        assert import_tensorrt().__name__ == "tensorrt_lean"
    monkeypatch.setitem(sys.modules, "tensorrt_lean", None)  # no lean runtime either
    with pytest.raises(RuntimeError, match=r"not installed \(found only tensorrt \(type stubs only\)\)"):
        import_tensorrt()


def test_an_unsupported_major_is_refused(monkeypatch):
    fake = types.ModuleType("tensorrt")
    fake.__file__ = "/fake/tensorrt/__init__.py"
    fake.__version__ = "8.6.1"
    fake.Runtime = object
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    with pytest.raises(RuntimeError, match="tensorrt 8.6.1 is not supported: TensorRT 10 or 11"):
        import_tensorrt()


def test_no_gpu_gives_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the no-GPU error path does not apply")
    try:
        import_tensorrt()
    except RuntimeError as exc:
        pytest.skip(f"no TensorRT runtime here: {exc}")
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        tensorrt_engine.TensorRTEngine(plan)
