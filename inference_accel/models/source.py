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
A file that is not UTF-8 JSON of that shape (not an object, a size without
``width``, a float or string size, a non-string mode) is an
:class:`~inference_accel.errors.InvalidModelError` naming the file and the
key; so is a ``class_names.txt`` that is not UTF-8 or names no class, and an
``.onnx`` sidecar (the ``.json`` beside it) that is broken or lacks
``input_size``.

**Class names and dropped ids** (one rule for packages and sidecars, the
stock ``inference-models`` one): when the model metadata lists class names,
model class ids ``>= len(class_names)`` are dropped. A model with more
classes than names gets one warning at load naming the dropped ids
(:func:`warn_dropped_classes`). A bare ``.onnx`` without a sidecar keeps
every id.

A TensorRT engine (``.plan``, ``.engine``, ``.trt``) needs an NVIDIA GPU
and TensorRT: without them resolving it is an error that says so.

>>> resize_mode_from_config("stretch-to")
'stretch'
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_accel.errors import (
    InferenceAccelError,
    InvalidArgumentError,
    InvalidModelError,
    MissingDependencyError,
    ModelNotFoundError,
)
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
    ``num_classes``: the dataset's class count, ``len(class_names)`` when
    the package or sidecar lists names; model class ids at or above it are
    dropped (None keeps every id). ``names_from``: the file the names came
    from, for messages.
    """

    kind: str
    path: Path
    class_names: tuple[str, ...] = COCO_CLASS_NAMES
    input_hw: tuple[int, int] | None = None
    resize_mode: str = "stretch"
    num_classes: int | None = None
    random_init: bool | None = None
    description: str = field(default="")
    names_from: str | None = None


def resize_mode_from_config(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidModelError(
            f"resize_mode in inference_config.json must be a string, got {value!r}; "
            f"supported: {sorted(_MODE_ALIASES)}"
        )
    try:
        return _MODE_ALIASES[value]
    except KeyError:
        raise InvalidModelError(
            f"unsupported resize_mode {value!r} in inference_config.json; "
            f"supported: {sorted(_MODE_ALIASES)}"
        ) from None


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a leading BOM dropped), or an InvalidModelError naming it."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidModelError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise InvalidModelError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidModelError(f"{path} must be a JSON object, got a {type(value).__name__}: {value!r:.60}")
    return value


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def _package_config(config_file: Path) -> tuple[tuple[int, int] | None, str]:
    """``(input_hw or None, resize mode)`` of a package's inference_config.json, every key checked."""
    config = _read_json_object(config_file)
    network_input = config.get("network_input", {})
    if not isinstance(network_input, dict):
        raise InvalidModelError(f"{config_file}: network_input must be an object, got {network_input!r:.60}")
    size = network_input.get("training_input_size")
    input_hw = None
    if size is not None:
        if not isinstance(size, dict):
            raise InvalidModelError(
                f"{config_file}: network_input.training_input_size must be an object with height and width, "
                f"got {size!r:.60}"
            )
        for key in ("height", "width"):
            if key not in size:
                raise InvalidModelError(f"{config_file}: network_input.training_input_size has no {key}")
            if not _positive_int(size[key]):
                raise InvalidModelError(
                    f"{config_file}: network_input.training_input_size.{key} must be a positive int, "
                    f"got {size[key]!r}"
                )
        input_hw = (int(size["height"]), int(size["width"]))
    try:
        mode = resize_mode_from_config(network_input.get("resize_mode", "stretch"))
    except InvalidModelError as exc:
        raise InvalidModelError(f"{config_file}: {exc}") from None
    return input_hw, mode


def _class_names(names_file: Path) -> tuple[str, ...]:
    names = tuple(line.strip() for line in _read_text(names_file).splitlines() if line.strip())
    if not names:
        raise InvalidModelError(f"{names_file} has no class names (one per line)")
    return names


def _from_package(directory: Path) -> ModelSource:
    config_file = directory / "inference_config.json"
    names_file = directory / "class_names.txt"
    weights = [p for p in (directory / "engine.plan", directory / "weights.onnx") if p.is_file()]
    if not config_file.is_file() or not names_file.is_file() or not weights:
        raise ModelNotFoundError(
            f"{directory} is not a model package: it needs inference_config.json, "
            "class_names.txt and weights.onnx or engine.plan"
        )
    input_hw, mode = _package_config(config_file)
    names = _class_names(names_file)
    path = weights[0]
    return ModelSource(
        kind="tensorrt" if path.suffix == ".plan" else "onnx",
        path=path,
        class_names=names,
        input_hw=input_hw,
        resize_mode=mode,
        num_classes=len(names),
        description=f"package {directory}",
        names_from=str(names_file),
    )


def _sidecar_meta(sidecar: Path) -> dict:
    """The export sidecar's fields, checked: ``input_size`` a positive int; ``class_names`` non-empty strings."""
    meta = _read_json_object(sidecar)
    if "input_size" not in meta:
        raise InvalidModelError(f"{sidecar} (the sidecar of the .onnx beside it) has no input_size")
    if not _positive_int(meta["input_size"]):
        raise InvalidModelError(f"{sidecar}: input_size must be a positive int, got {meta['input_size']!r}")
    names = meta.get("class_names")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidModelError(f"{sidecar}: class_names must be a non-empty list of strings, got {names!r:.60}")
    return meta


def _from_model_file(path: Path, kind: str = "onnx") -> ModelSource:
    """An ONNX export, or a TensorRT engine built from one (``kind="tensorrt"``), with its sidecar if any.

    Class names from the sidecar follow the package rule: ids ``>= len(class_names)`` are dropped.
    """
    sidecar = sidecar_path(path)
    engine = " as a TensorRT engine" if kind == "tensorrt" else ""
    if sidecar.is_file():
        meta = _sidecar_meta(sidecar)
        size = int(meta["input_size"])
        names = meta.get("class_names")
        return ModelSource(
            kind=kind,
            path=path,
            class_names=tuple(names) if names is not None else COCO_CLASS_NAMES,
            input_hw=(size, size),
            num_classes=len(names) if names is not None else None,
            random_init=bool(meta.get("random_init")),
            description=f"rfdetr {meta.get('model', '?')} export{engine}"
            + (" (RANDOM weights, demo-calibrated)" if meta.get("random_init") else ""),
            names_from=str(sidecar) if names is not None else None,
        )
    if kind == "tensorrt":
        return ModelSource(kind=kind, path=path, description=f"TensorRT engine {path.name}")
    return ModelSource(kind="onnx", path=path, description=f"ONNX file {path.name}")


def check_engine_runnable(source: ModelSource) -> None:
    """A TensorRT engine needs a CUDA GPU and TensorRT here; say so before anything opens it."""
    if source.kind != "tensorrt":
        return
    import torch

    if not torch.cuda.is_available():
        raise InferenceAccelError(
            f"{source.path} is a TensorRT engine, which runs only on an NVIDIA GPU, and torch sees no usable "
            "CUDA GPU here; run the .onnx model instead (--model FILE.onnx)"
        )
    from inference_accel.engine.tensorrt_engine import import_tensorrt

    try:  # a real runtime: find_spec alone is fooled by tensorrt-stubs (an empty package)
        import_tensorrt()
    except RuntimeError as error:
        raise MissingDependencyError(
            f"{source.path} is a TensorRT engine but no usable TensorRT is installed ({error}); "
            "install the gpu extra (pip install 'inference-accel[gpu]')"
        ) from None


_warned_drops: set[tuple[str, int, int]] = set()
_warned_lock = threading.Lock()


def warn_dropped_classes(source: ModelSource, model_classes: int) -> list[int]:
    """Warn once per model and class count when class ids are dropped; return those ids.

    The rule (inference-models' own): with class names, model class ids
    ``>= len(class_names)`` are dropped from every result. A model whose
    ``labels`` output has more classes than that loses those detections;
    this says which ids and why, once per process.
    """
    if source.num_classes is None or model_classes <= source.num_classes:
        return []
    dropped = list(range(source.num_classes, int(model_classes)))
    key = (str(source.path), source.num_classes, int(model_classes))
    with _warned_lock:
        if key in _warned_drops:
            return dropped
        _warned_drops.add(key)
    shown = ", ".join(map(str, dropped[:12])) + (f", ... {dropped[-1]}" if len(dropped) > 12 else "")
    logger.warning(
        "model %s has %d classes but %s lists %d class name(s): detections of class id(s) %s are dropped "
        "(ids >= the number of class names are dropped, as inference-models does); add their names to keep them",
        source.path, model_classes, source.names_from or "its metadata", source.num_classes, shown,
    )
    return dropped


def resolve_model(model: str | Path | None = None, *, auto_export: bool = True) -> ModelSource:
    """Turn ``--model`` into a :class:`ModelSource`, exporting a cached size on first use."""
    from inference_accel.arguments import check_bool

    check_bool("auto_export", auto_export)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"model must be a size name, a path or None, got {model!r} ({type(model).__name__})"
        )
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
        source = _from_package(path)
        check_engine_runnable(source)
        return source
    if not path.exists():
        raise ModelNotFoundError(f"model not found: {path}")
    if path.suffix.lower() == ".onnx":
        return _from_model_file(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        source = _from_model_file(path, kind="tensorrt")
        check_engine_runnable(source)
        return source
    raise InvalidModelError(
        f"{path}: unknown model file type {path.suffix!r}; expected .onnx, .plan/.engine, or a package directory"
    )
