"""Resolve what the user named as a model into a :class:`ModelSource`.

Accepted, everywhere a command takes ``--model``:

- nothing: the cached seg-nano export (exported on first use);
- a size name (``seg-nano`` ... ``seg-2xlarge``): its cached export;
- an ``.onnx`` file (a JSON sidecar beside it, if any, gives class names);
- a ``.plan`` / ``.engine`` TensorRT engine file;
- a Roboflow-style package directory: ``inference_config.json``,
  ``class_names.txt`` and ``weights.onnx`` or ``engine.plan``.

``inference_config.json`` is parsed whole against a schema that mirrors
inference-models' (:mod:`~inference_accel.models.package_config`: strict
types, every error an :class:`~inference_accel.errors.InvalidModelError`
naming the file and the field's dotted path, unknown keys logged once).
:class:`ModelSource` carries the parsed config (``package_config``) and what
follows from it: ``input_hw``, ``resize_mode`` (the package's own mode, which
acts as stock makes it act: only through ``dataset_version_resize_dimensions``,
see :mod:`~inference_accel.preprocess.package_steps`), ``package_steps``,
``normalization`` and the class mapping of ``class_names_operations``.
A ``class_names.txt`` that is not UTF-8 or names no class is an error, and so
is an ``.onnx`` sidecar (the ``.json`` beside it) that is broken or lacks
``input_size``.

**Normalisation** (:func:`normalization_from_config`, the stock rule): the
tensor is ``to_tensor`` (/255) then ``normalize(mean, std)`` when the package
gives ``normalization`` (``scaling_factor`` is then unused, as stock); with
no normalisation it is /255 times ``255 / scaling_factor``, in stock's order.
Channel order: RGB, except with a dataset-version
first step, where the package's ``color_mode`` holds (stock, called without an
input colour format, swaps to RGB on the one-step path whatever ``color_mode``
says). A legacy config without ``network_input``'s required keys gets RF-DETR's
ImageNet normalisation.

**Class removal** (``class_names_operations``, ``class_name_removal``): as
stock, the removed names leave ``class_names`` and the remaining model ids are
renumbered (``class_mapping[model id]`` = new id, -1 = dropped; ids past the
listed names drop too). A removal naming no listed class is warned about once.

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
>>> class_mapping_for(("cat", "dog", "cow"), ("dog",))
(('cat', 'cow'), (0, -1, 1))
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
from inference_accel.models.package_config import InferenceConfig, load_package_config, read_text
from inference_accel.models.specs import COCO_CLASS_NAMES, DEFAULT_MODEL, SEG_MODELS
from inference_accel.preprocess.normalization import Normalization, from_stock_config
from inference_accel.preprocess.package_steps import PackageSteps

logger = logging.getLogger("inference_accel")

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
_MODE_ALIASES = {
    "stretch": "stretch",
    "stretch-to": "stretch",
    "letterbox": "letterbox",
    "letterbox-reflect-edges": "letterbox-reflect-edges",
    "center-crop": "center-crop",
    "fit-longer-edge": "fit-longer-edge",
}


@dataclass(frozen=True)
class ModelSource:
    """A model file and what we know about it before opening it.

    ``kind``: ``"onnx"`` or ``"tensorrt"``. ``input_hw``: from the package
    config or sidecar, else read from the model itself by the engine.
    ``num_classes``: the dataset's class count, ``len(class_names)`` when
    the package or sidecar lists names; model class ids at or above it are
    dropped (None keeps every id). ``names_from``: the file the names came
    from, for messages. ``resize_mode``: the package's declared mode (stock
    spelling); it acts only through ``package_steps`` (a dataset-version first
    step), never as our pipeline's direct-to-input ``--resize-mode``.
    ``package_config``: the parsed ``inference_config.json`` (packages only).
    ``package_steps``: its image steps. ``normalization``: the input
    normalisation (None: ImageNet, RF-DETR's default). ``class_mapping``:
    model class id -> our class id (-1 drops), from ``class_names_operations``.
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
    package_config: InferenceConfig | None = field(default=None, compare=False)  # a pydantic model: unhashable
    package_steps: PackageSteps = field(default_factory=PackageSteps)
    normalization: Normalization | None = None
    class_mapping: tuple[int, ...] | None = None


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


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidModelError(f"{path} must be a JSON object, got a {type(value).__name__}: {value!r:.60}")
    return value


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def normalization_from_config(config: InferenceConfig, config_file: Path | str) -> Normalization:
    """The :class:`Normalization` that reproduces stock's tensor for this config (module docstring).

    Stock's rules are :func:`~inference_accel.preprocess.normalization.from_stock_config`'s; the
    dataset-version first step hands the PIL stretch an image already in ``color_mode`` order
    (its OpenCV handler treats the frame as BGR), which is the same as an input colour mode of BGR.
    """
    net = config.network_input
    if config.is_legacy and net.normalization is None:
        return Normalization.imagenet()
    two_step = PackageSteps.from_config(config).first_step is not None
    try:
        return from_stock_config(
            net.scaling_factor, net.normalization, net.color_mode.value, input_color_mode="bgr" if two_step else None
        )
    except InvalidArgumentError as exc:
        raise InvalidModelError(f"{config_file}: network_input: {exc}") from None


def class_mapping_for(
    class_names: tuple[str, ...], removed: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Stock's ``class_name_removal``: (remaining names, model id -> new id, -1 for removed ids)."""
    remaining: list[str] = []
    mapping: list[int] = []
    for name in class_names:
        if name in removed:
            mapping.append(-1)
        else:
            mapping.append(len(remaining))
            remaining.append(name)
    return tuple(remaining), tuple(mapping)


_warned_removals: set[tuple[str, str]] = set()


def _package_config(config_file: Path) -> InferenceConfig:
    config = load_package_config(config_file)
    if config.network_input.resize_mode.value == "fit-longer-edge" and (str(config_file), "") not in _warned_removals:
        _warned_removals.add((str(config_file), ""))  # once per file
        logger.warning(
            "%s: resize_mode fit-longer-edge cannot be applied to RF-DETR; stretch is used instead, as "
            "inference-models does", config_file,
        )
    return config


def _class_names(names_file: Path) -> tuple[str, ...]:
    names = tuple(line.strip() for line in read_text(names_file).splitlines() if line.strip())
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
    config = _package_config(config_file)
    size = config.network_input.training_input_size
    names = _class_names(names_file)
    mapping = None
    if config.class_names_operations:
        removed = config.removed_class_names
        for index, name in enumerate(removed):
            if name not in names and (str(config_file), name) not in _warned_removals:
                _warned_removals.add((str(config_file), name))
                logger.warning(
                    "%s: class_names_operations[%d] removes class %r, which %s does not list: nothing removed",
                    config_file, index, name, names_file,
                )
        names, mapping = class_mapping_for(names, removed)
        if not names:
            raise InvalidModelError(
                f"{config_file}: class_names_operations removes every class listed in {names_file}"
            )
    path = weights[0]
    return ModelSource(
        kind="tensorrt" if path.suffix == ".plan" else "onnx",
        path=path,
        class_names=names,
        input_hw=(size.height, size.width) if size is not None else None,
        resize_mode=config.network_input.resize_mode.value,
        num_classes=len(names),
        description=f"package {directory}",
        names_from=str(names_file),
        package_config=config,
        package_steps=PackageSteps.from_config(config),
        normalization=normalization_from_config(config, config_file),
        class_mapping=mapping,
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
    ``>= len(class_names)`` are dropped from every result (with
    ``class_names_operations``, ids past the names listed before removal).
    A model whose ``labels`` output has more classes than that loses those
    detections; this says which ids and why, once per process. A model with
    *fewer* classes than the names listed contradicts its package: an
    :class:`~inference_accel.errors.InvalidModelError` naming the file.
    """
    if source.num_classes is None:
        return []
    listed = len(source.class_mapping) if source.class_mapping is not None else source.num_classes
    if model_classes < listed:
        raise InvalidModelError(
            f"{source.names_from or source.path} lists {listed} class name(s) but the model {source.path} "
            f"scores only {model_classes} class(es): the names and the model do not belong together"
        )
    if model_classes <= listed:
        return []
    dropped = list(range(listed, int(model_classes)))
    key = (str(source.path), listed, int(model_classes))
    with _warned_lock:
        if key in _warned_drops:
            return dropped
        _warned_drops.add(key)
    shown = ", ".join(map(str, dropped[:12])) + (f", ... {dropped[-1]}" if len(dropped) > 12 else "")
    logger.warning(
        "model %s has %d classes but %s lists %d class name(s): detections of class id(s) %s are dropped "
        "(ids >= the number of class names are dropped, as inference-models does); add their names to keep them",
        source.path, model_classes, source.names_from or "its metadata", listed, shown,
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
