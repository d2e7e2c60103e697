"""Resolve what the user named as a model into a :class:`ModelSource`.

Accepted, everywhere a command takes ``--model``:

- nothing: the cached seg-nano export (exported on first use);
- a size name (``seg-nano`` ... ``seg-2xlarge``): its cached export;
- an ``.onnx`` file (a JSON sidecar beside it, if any, gives class names);
- a ``.plan`` / ``.engine`` TensorRT engine file;
- a Roboflow-style package directory: ``inference_config.json``,
  ``class_names.txt`` and ``weights.onnx`` or ``engine.plan``.

``inference_config.json`` keys read: ``network_input.training_input_size``
(``height``, ``width``) and ``network_input.resize_mode`` (``stretch`` /
``stretch-to``, ``letterbox``, ``center-crop``); everything else is ignored.

>>> resize_mode_from_config("stretch-to")
'stretch'
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from inference_accel.errors import InvalidModelError, ModelNotFoundError
from inference_accel.models.cache import cached_model_path
from inference_accel.models.export import export_model, sidecar_path
from inference_accel.models.specs import COCO_CLASS_NAMES, DEFAULT_MODEL, SEG_MODELS

logger = logging.getLogger("inference_accel")

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
_MODE_ALIASES = {
    "stretch": "stretch",
    "stretch-to": "stretch",
    "letterbox": "letterbox",
    "letterbox-reflect-edges": "letterbox",
    "center-crop": "center-crop",
}


@dataclass(frozen=True)
class ModelSource:
    """A model file and what we know about it before opening it.

    ``kind``: ``"onnx"`` or ``"tensorrt"``. ``input_hw``: from the package
    config or sidecar, else read from the model itself by the engine.
    ``num_classes``: the dataset's class count; model class ids at or above
    it are dropped (None keeps every id).
    """

    kind: str
    path: Path
    class_names: tuple[str, ...] = COCO_CLASS_NAMES
    input_hw: tuple[int, int] | None = None
    resize_mode: str = "stretch"
    num_classes: int | None = None
    random_init: bool | None = None
    description: str = field(default="")


def resize_mode_from_config(value: str) -> str:
    try:
        return _MODE_ALIASES[value]
    except KeyError:
        raise InvalidModelError(
            f"unsupported resize_mode {value!r} in inference_config.json; "
            f"supported: {sorted(_MODE_ALIASES)}"
        ) from None


def _from_package(directory: Path) -> ModelSource:
    config_file = directory / "inference_config.json"
    names_file = directory / "class_names.txt"
    weights = [p for p in (directory / "engine.plan", directory / "weights.onnx") if p.is_file()]
    if not config_file.is_file() or not names_file.is_file() or not weights:
        raise ModelNotFoundError(
            f"{directory} is not a model package: it needs inference_config.json, "
            "class_names.txt and weights.onnx or engine.plan"
        )
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidModelError(f"{config_file} is not valid JSON: {exc}") from None
    network_input = config.get("network_input", {})
    size = network_input.get("training_input_size")
    input_hw = (int(size["height"]), int(size["width"])) if size else None
    mode = resize_mode_from_config(network_input.get("resize_mode", "stretch"))
    names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
    path = weights[0]
    return ModelSource(
        kind="tensorrt" if path.suffix == ".plan" else "onnx",
        path=path,
        class_names=names,
        input_hw=input_hw,
        resize_mode=mode,
        num_classes=len(names),
        description=f"package {directory}",
    )


def _from_model_file(path: Path, kind: str = "onnx") -> ModelSource:
    """An ONNX export, or a TensorRT engine built from one (``kind="tensorrt"``), with its sidecar if any."""
    sidecar = sidecar_path(path)
    engine = " as a TensorRT engine" if kind == "tensorrt" else ""
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        size = int(meta["input_size"])
        return ModelSource(
            kind=kind,
            path=path,
            class_names=tuple(meta.get("class_names", COCO_CLASS_NAMES)),
            input_hw=(size, size),
            random_init=bool(meta.get("random_init")),
            description=f"rfdetr {meta.get('model', '?')} export{engine}"
            + (" (RANDOM weights, demo-calibrated)" if meta.get("random_init") else ""),
        )
    if kind == "tensorrt":
        return ModelSource(kind=kind, path=path, description=f"TensorRT engine {path.name}")
    return ModelSource(kind="onnx", path=path, description=f"ONNX file {path.name}")


def resolve_model(model: str | Path | None = None, *, auto_export: bool = True) -> ModelSource:
    """Turn ``--model`` into a :class:`ModelSource`, exporting a cached size on first use."""
    if model is None or str(model) in SEG_MODELS:
        name = DEFAULT_MODEL if model is None else str(model)
        path = cached_model_path(name)
        if not path.is_file():
            if not auto_export:
                raise ModelNotFoundError(
                    f"no cached {name} model at {path}; run `inference-accel export --model {name}`"
                )
            logger.warning("no cached %s model yet: exporting it once to %s", name, path)
            export_model(name)
        return _from_model_file(path)
    path = Path(model)
    if path.is_dir():
        return _from_package(path)
    if not path.exists():
        raise ModelNotFoundError(f"model not found: {path}")
    if path.suffix.lower() == ".onnx":
        return _from_model_file(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return _from_model_file(path, kind="tensorrt")
    raise InvalidModelError(
        f"{path}: unknown model file type {path.suffix!r}; expected .onnx, .plan/.engine, or a package directory"
    )
