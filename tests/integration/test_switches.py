"""The three ways to turn the integration on, the version gate, and the CompactMask extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import assert_same_detections, load, random_frame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_registry():
    from inference_accel.integrations import inference_models as integration

    integration.unregister()
    yield integration
    integration.unregister()


def test_accelerate_and_restore_in_place(tiny_package_factory):
    from inference_accel.integrations.inference_models import accelerate, is_accelerated, restore

    model = load(tiny_package_factory("switch-accelerate"))
    stock_class = type(model)
    frame = random_frame(np.random.default_rng(0), (240, 320))
    before = model(frame, confidence=0.05, mask_format="rle")
    assert accelerate(model) is model and is_accelerated(model) and isinstance(model, stock_class)
    assert accelerate(model) is model  # idempotent
    assert_same_detections(before, model(frame, confidence=0.05, mask_format="rle"))
    assert model.acceleration["post_process"] == ("inference_accel", None)
    assert restore(model) is model and type(model) is stock_class and not is_accelerated(model)


def test_accelerate_rejects_other_models():
    from inference_accel.integrations.inference_models import accelerate

    with pytest.raises(TypeError, match="RF-DETR instance-segmentation"):
        accelerate(object())


def test_register_makes_automodel_build_accelerated_classes(clean_registry, tiny_package_factory):
    from inference_models.models.auto_loaders.models_registry import REGISTERED_MODELS, RegistryEntry

    integration = clean_registry
    key = integration._registry_key("onnx")
    stock_entry = REGISTERED_MODELS[key]
    package = tiny_package_factory("switch-register")
    stock = load(package)
    assert not integration.is_accelerated(stock)

    replaced = integration.register()
    assert key in replaced and integration.register() == []  # idempotent
    entry = REGISTERED_MODELS[key]
    assert isinstance(entry, RegistryEntry) and entry.supported_model_features == stock_entry.supported_model_features
    model = load(package)
    assert type(model).__name__ == "AcceleratedRFDetrForInstanceSegmentationOnnx"
    assert isinstance(model, type(stock))
    frame = random_frame(np.random.default_rng(1), (300, 200))
    assert_same_detections(stock(frame, confidence=0.05), model(frame, confidence=0.05))

    assert key in integration.unregister()
    assert REGISTERED_MODELS[key] is stock_entry
    assert not integration.is_accelerated(load(package))


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("flag", ["1", ""])
def test_env_var_and_pth_hook_switch_a_fresh_process(tmp_path, tiny_package_factory, flag):
    """The .pth line (in a site dir of a fresh interpreter) registers the classes when
    inference_models loads its registry, only with INFERENCE_ACCEL_PATCH_INFERENCE_MODELS set."""
    from inference_accel.integrations import autopatch

    site_dir = tmp_path / "site"
    site_dir.mkdir()
    assert autopatch.install_pth(site_dir) == site_dir / autopatch.PTH_NAME
    package = tiny_package_factory("switch-hook")
    env = dict(os.environ, **{autopatch.ENV_VAR: flag})
    result = _run(
        f"""
        import site, sys
        site.addsitedir({str(site_dir)!r})  # what site.py does for site-packages at start-up
        assert "inference_models" not in sys.modules  # the hook imports nothing early
        from inference_models import AutoModel
        model = AutoModel.from_pretrained({str(package)!r}, onnx_execution_providers=["CPUExecutionProvider"])
        print("CLASS", type(model).__name__)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "AcceleratedRFDetrForInstanceSegmentationOnnx" if flag else "RFDetrForInstanceSegmentationOnnx"
    assert f"CLASS {expected}\n" in result.stdout
    assert autopatch.uninstall_pth(site_dir) and not autopatch.uninstall_pth(site_dir)


def test_hook_registers_when_the_registry_is_already_imported(clean_registry):
    from inference_accel.integrations import autopatch

    assert autopatch.install_import_hook() is False  # registry already imported: registered now
    assert autopatch.state()["registered"] and clean_registry.registered()


def test_status_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "inference_accel.integrations", "status"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "supported: yes" in result.stdout and "registry rfdetr/instance-segmentation/onnx" in result.stdout


@pytest.mark.parametrize("version", ["0.38.9", "0.40.0", "1.0.0", "garbage"])
def test_unsupported_versions_are_refused_clearly(monkeypatch, version):
    import importlib.metadata

    from inference_accel.integrations import UnsupportedInferenceModelsVersionError, require_inference_models
    from inference_accel.integrations import inference_models as integration

    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: version if name == "inference-models" else real(name)
    )
    integration._stock.cache_clear()
    try:
        with pytest.raises(UnsupportedInferenceModelsVersionError, match=r">=0\.39,<0\.40"):
            require_inference_models()
        with pytest.raises(UnsupportedInferenceModelsVersionError):
            integration.register()
        with pytest.raises(UnsupportedInferenceModelsVersionError):
            integration.accelerated_class(object)
    finally:
        integration._stock.cache_clear()


def test_the_installed_version_is_supported():
    from inference_accel.integrations import require_inference_models

    assert require_inference_models().startswith("0.39.")


@pytest.mark.parametrize("mask_format", ["dense", "rle"])
@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_to_supervision_compact(tiny_package_factory, mask_format, factor):
    """``to_supervision(compact=True)``: an sv.CompactMask equal to the stock dense conversion."""
    import supervision as sv

    from inference_accel.integrations.inference_models import accelerate

    model = accelerate(load(tiny_package_factory("switch-compact", image_pre_processing={
        "static-crop": {"enabled": True, "x_min": 5, "y_min": 10, "x_max": 95, "y_max": 80}})))
    frame = random_frame(np.random.default_rng(2), (400, 640))
    detections = model(frame, confidence=0.05, mask_format=mask_format, masks_resolution_factor=factor)[0]
    assert len(detections) > 0
    dense = detections.to_supervision()
    compact = detections.to_supervision(compact=True)
    assert isinstance(compact.mask, sv.CompactMask)
    assert np.array_equal(compact.mask.to_dense(), dense.mask)
    assert np.array_equal(compact.xyxy, dense.xyxy)
    assert np.array_equal(compact.class_id, dense.class_id) and np.array_equal(compact.confidence, dense.confidence)
