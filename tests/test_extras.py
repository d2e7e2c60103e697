"""Optional dependencies: a missing one is a one-line error naming the extra to install."""

from __future__ import annotations

import sys

import pytest

from inference_accel import extras
from inference_accel.errors import InferenceAccelError, MissingDependencyError


def test_missing_onnxruntime_names_the_extras(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails as if not installed
    from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine

    with pytest.raises(MissingDependencyError) as caught:
        OnnxRuntimeEngine(tmp_path / "model.onnx")
    message = str(caught.value)
    assert 'pip install "inference-accel[cpu]"' in message and "[gpu]" in message and "[jetson]" in message
    assert isinstance(caught.value, InferenceAccelError)  # the CLI prints it as one line


def test_a_broken_install_keeps_its_own_error(monkeypatch, tmp_path):
    # A module that exists but fails on one of *its* imports is not "not installed".
    package = tmp_path / "half_installed_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import some_missing_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        extras.require("half_installed_pkg", "demo", "a test")
    assert not isinstance(caught.value, MissingDependencyError)
    assert caught.value.name == "some_missing_inner_dependency"


def test_present_module_is_returned():
    assert extras.require("json", "dev", "a test").dumps([1]) == "[1]"


def test_missing_rfdetr_names_the_export_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "rfdetr", None)
    from inference_accel.models import export

    with pytest.raises(MissingDependencyError, match=r'inference-accel\[export\]'):
        export._build("seg-nano", None)


def test_missing_scikit_image_names_the_demo_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    from inference_accel import media

    with pytest.raises(MissingDependencyError, match=r'inference-accel\[demo\]'):
        media.panorama((8, 8))
