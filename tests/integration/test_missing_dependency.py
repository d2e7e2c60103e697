"""Without inference-models, the integration says what is missing (runs in every venv).

The check is made to fail on purpose (``importlib.metadata`` reports the
distribution missing), so this runs the same in the main venv, where
inference-models is really absent, and in the integration venv.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runs_without_inference_models
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def missing(monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name == "inference-models":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    from inference_accel.integrations import inference_models as integration

    integration._stock.cache_clear()
    yield integration
    integration._stock.cache_clear()


def test_every_entry_point_names_the_missing_package(missing):
    from inference_accel.integrations import InferenceModelsMissingError, require_inference_models
    from inference_accel.errors import MissingDependencyError

    for call in (require_inference_models, missing.register, lambda: missing.accelerate(object()),
                 lambda: missing.accelerated_class(object), lambda: missing.AcceleratedRFDetrForInstanceSegmentationOnnx):
        with pytest.raises(InferenceModelsMissingError, match=r"pip install 'inference-models\[onnx-cpu\]>=0\.39,<0\.40'") as info:
            call()
        assert isinstance(info.value, (MissingDependencyError, ImportError))


def test_the_modules_import_without_it(missing):
    import importlib

    for name in ("inference_accel.integrations", "inference_accel.integrations.inference_models",
                 "inference_accel.integrations.autopatch", "inference_accel.integrations.stock_masks"):
        importlib.import_module(name)


def test_hook_with_the_flag_does_not_break_startup(missing, monkeypatch):
    """A server started with the flag but without a usable inference-models keeps running."""
    from inference_accel.integrations import autopatch

    monkeypatch.setitem(sys.modules, autopatch.TARGET_MODULE, sys.modules.get(autopatch.TARGET_MODULE, object()))
    with pytest.warns(RuntimeWarning, match="inference-models is not installed"):
        autopatch.install_import_hook()
    assert "inference-models is not installed" in autopatch.state()["error"]


def test_status_without_inference_models_in_this_venv():
    from inference_accel.integrations import installed_version

    if installed_version() is not None:
        pytest.skip("inference-models is installed in this venv (covered by test_switches.py)")
    result = subprocess.run([sys.executable, "-m", "inference_accel.integrations", "status"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "inference-models: not installed" in result.stdout and "pip install" in result.stdout
