"""The inference-models integration tests: stock vs accelerated, output for output.

They need ``inference-models`` (0.39.x) and its ONNX CPU runtime, which do not
belong in the main venv (they pin Pillow < 13 and bring ~6.7 GB). Create the
integration venv and run them with::

    bash .ci/integration_env.sh .venv-integration
    .venv-integration/bin/python -m pytest -q -p no:cacheprovider tests/integration

Anywhere else every test here is skipped with one reason, except those marked
``runs_without_inference_models`` (the clear error when it is missing, and the
resize twin, which needs only torchvision).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from inference_accel.integrations import installed_version, version_problem

PROBLEM = version_problem(installed_version())
if PROBLEM is None:
    try:
        import inference_models  # noqa: F401
    except Exception as exc:  # installed but broken
        PROBLEM = f"inference-models cannot be imported ({type(exc).__name__}: {exc})"
SKIP_REASON = (
    f"{PROBLEM}; these tests run in the integration venv: bash .ci/integration_env.sh .venv-integration && "
    ".venv-integration/bin/python -m pytest -q -p no:cacheprovider tests/integration"
)
HERE = Path(__file__).parent
NANO_ONNX = Path(os.environ.get("INFERENCE_ACCEL_CACHE", Path.home() / ".cache" / "inference_accel")) / "models" / "rfdetr-seg-nano.onnx"
IMAGENET = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "runs_without_inference_models: an integration test that needs no inference-models"
    )


def _needs_inference_models(item) -> bool:
    return HERE in Path(item.fspath).parents and "runs_without_inference_models" not in item.keywords


def pytest_collection_modifyitems(config, items):
    if PROBLEM is None:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _needs_inference_models(item):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Report every such skip at the directory, so the summary shows it once."""
    outcome = yield
    report = outcome.get_result()
    if PROBLEM is not None and report.skipped and _needs_inference_models(item) and isinstance(report.longrepr, tuple):
        report.longrepr = (str(HERE.relative_to(HERE.parents[1])), None, report.longrepr[2])


# -- model packages ------------------------------------------------------------------
def write_package(
    directory: Path,
    weights: Path,
    class_names: list[str],
    input_hw: tuple[int, int],
    resize_mode: str = "stretch",
    dataset_hw: tuple[int, int] | None = None,
    image_pre_processing: dict | None = None,
    class_names_operations: list | None = None,
    normalization=IMAGENET,
    color_mode: str = "rgb",
    scaling_factor=255,
    padding_value: int | None = None,
) -> Path:
    """A Roboflow-style RF-DETR instance-segmentation package that ``AutoModel.from_pretrained`` loads."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "class_names.txt").write_text("\n".join(class_names) + "\n")
    network_input = {
        "training_input_size": {"height": input_hw[0], "width": input_hw[1]},
        "dynamic_spatial_size_supported": False,
        "color_mode": color_mode,
        "resize_mode": resize_mode,
        "input_channels": 3,
        "scaling_factor": scaling_factor,
        "normalization": normalization,
    }
    if padding_value is not None:
        network_input["padding_value"] = padding_value
    if dataset_hw is not None:
        network_input["dataset_version_resize_dimensions"] = {"height": dataset_hw[0], "width": dataset_hw[1]}
    config = {"network_input": network_input}
    if image_pre_processing:
        config["image_pre_processing"] = image_pre_processing
    if class_names_operations:
        config["class_names_operations"] = class_names_operations
    (directory / "inference_config.json").write_text(json.dumps(config))
    (directory / "model_config.json").write_text(
        json.dumps({"model_architecture": "rfdetr", "task_type": "instance-segmentation", "backend_type": "onnx"})
    )
    link = directory / "weights.onnx"
    if not link.exists():
        link.symlink_to(weights.resolve())
    return directory


def load(package: Path):
    from inference_models import AutoModel

    return AutoModel.from_pretrained(str(package), onnx_execution_providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A 32x32-input model with RF-DETR-Seg's I/O (5 queries, 4 classes, 8x8 mask logits)."""
    from tests.helpers_onnx import write_tiny_seg_model

    return write_tiny_seg_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx", size=32, queries=5, classes=4, seed=3)


@pytest.fixture(scope="session")
def tiny_package_factory(tmp_path_factory, tiny_weights):
    """``make(name, **package options)`` -> package directory of the tiny model."""
    root = tmp_path_factory.mktemp("packages")

    def make(name: str, **options) -> Path:
        return write_package(root / name, tiny_weights, ["a", "b", "c", "d"], (32, 32), **options)

    return make


@pytest.fixture(scope="session")
def nano_package(tmp_path_factory) -> Path:
    """The cached seg-nano export as a package (312x312, 100 queries, 91 COCO ids)."""
    if not NANO_ONNX.is_file():
        pytest.skip(f"no cached seg-nano export at {NANO_ONNX} (inference-accel export, in the main venv)")
    names_file = NANO_ONNX.with_suffix(".json")
    names = json.loads(names_file.read_text())["class_names"] if names_file.is_file() else [f"c{i}" for i in range(91)]
    return write_package(tmp_path_factory.mktemp("nano") / "seg-nano", NANO_ONNX, names, (312, 312))


@pytest.fixture(scope="session")
def frames() -> dict:
    """Sample-media frames (BGR uint8): the 312p sample video's size, 1080p and portrait."""
    from inference_accel.media import SAMPLE_SIZES, camera_frames

    out = {}
    for name in ("312p", "1080p", "portrait"):
        out[name] = list(camera_frames(SAMPLE_SIZES[name], 5))[1:4:2]  # two distinct frames of the pan
    return out


# -- comparing results -----------------------------------------------------------------
def assert_same_detections(stock, accelerated) -> None:
    """Every field equal: boxes (values and dtype), scores, classes, every mask pixel / RLE byte, sizes."""
    import torch
    from inference_models import InstancesRLEMasks

    assert len(stock) == len(accelerated)
    for s, a in zip(stock, accelerated):
        assert s.xyxy.dtype == a.xyxy.dtype and torch.equal(s.xyxy, a.xyxy), (s.xyxy, a.xyxy)
        assert s.confidence.dtype == a.confidence.dtype and torch.equal(s.confidence, a.confidence)
        assert s.class_id.dtype == a.class_id.dtype and torch.equal(s.class_id, a.class_id)
        assert tuple(s.image_size) == tuple(a.image_size)
        assert tuple(s.mask_size) == tuple(a.mask_size)
        assert tuple(s.mask_frame_size) == tuple(a.mask_frame_size)
        if isinstance(s.mask, InstancesRLEMasks):
            assert isinstance(a.mask, InstancesRLEMasks)
            assert tuple(s.mask.image_size) == tuple(a.mask.image_size)
            assert tuple(s.mask.mask_size) == tuple(a.mask.mask_size)
            assert s.mask.masks == a.mask.masks
        else:
            assert s.mask.dtype == a.mask.dtype and s.mask.shape == a.mask.shape
            differ = int((s.mask != a.mask).sum())
            assert differ == 0, f"{differ} mask pixels differ"


def assert_same_inputs(stock, accelerated) -> None:
    """Preprocessing: the batch tensors bit for bit, the metadata field for field."""
    import torch

    (xs, ms), (xa, ma) = stock, accelerated
    assert xs.dtype == xa.dtype and xs.shape == xa.shape and xs.device == xa.device
    assert torch.equal(xs.view(torch.int32), xa.view(torch.int32)), "input tensors differ"
    assert list(ms) == list(ma)


def random_frame(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    return rng.integers(0, 256, (*hw, 3), dtype=np.uint8)


def _cuda_order_resize(img, size, interpolation=None, antialias=True, **kwargs):
    """torchvision's resize as torch CUDA computes it (the numpy model of its order), on CPU tensors."""
    import torch
    from torchvision.transforms import functional as TF

    from inference_accel.postprocess.stock_cuda_model import stock_resize_cuda

    assert interpolation == TF.InterpolationMode.BILINEAR and antialias in (True, None) and not kwargs
    values = img.numpy()
    lead, (h, w) = values.shape[:-2], values.shape[-2:]
    with np.errstate(all="ignore"):
        out = stock_resize_cuda(values.reshape(-1, h, w), (int(size[0]), int(size[1])))
    return torch.from_numpy(out.reshape(*lead, *out.shape[-2:]))


@pytest.fixture
def cuda_order_masks(monkeypatch):
    """Both sides compute masks in torch CUDA's order, on the CPU, as on a GPU.

    Stock: torchvision's resize is swapped for the numpy model of the CUDA
    kernel. Ours: the masks take the Triton run kernels (as CUDA logits do),
    under the interpreter with the CUDA FMAs emulated. Yields a list that
    gets one entry per launch of the run kernels (a test asserts they ran).
    """
    import os

    from torchvision.transforms import functional as TF

    from inference_accel.integrations import inference_models as im
    from inference_accel.integrations import stock_masks

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the Triton interpreter is off (--device cuda): on a GPU the real kernels meet the real resize")
    stock_masks.kernel_check()  # the start-up probe of torch's CPU resize runs (and is cached) before the swap
    monkeypatch.setattr(TF, "resize", _cuda_order_resize)
    monkeypatch.setattr(im, "_kernel_masks", lambda logits: True)
    launched = []
    real = im._cuda_mask_intervals  # noqa: SLF001
    monkeypatch.setattr(im, "_cuda_mask_intervals", lambda *a: launched.append(1) or real(*a))
    yield launched
