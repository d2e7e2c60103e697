"""The whole ``inference_config.json`` of a Roboflow model package, parsed against a schema.

The models mirror inference-models 0.39's
(``inference_models/models/common/roboflow/model_packages.py``): the same
field names (with the same ``auto-orient`` / ``static-crop`` aliases), the
same nesting, the same enumerations. :func:`load_package_config` reads a
file and returns an :class:`InferenceConfig`; :func:`parse_package_config`
does the same for already-read text.

What differs from the stock parser, on purpose:

- Types are strict (JSON ``"32"`` or ``32.5`` is not a size, ``true`` is
  not an int) and every error is an
  :class:`~inference_accel.errors.InvalidModelError` naming the file and
  the field's dotted path (``network_input.training_input_size.width``).
- Values we cannot honour are errors, not surprises later:
  ``input_channels`` other than 3, a ``padding_value`` outside 0..255, a
  static crop outside 0..100 % or empty, a ``normalization`` without three
  means and three non-zero stds, a non-positive ``scaling_factor``.
- An unknown key is kept and logged once per file and dotted key
  (``unknown key network_input.foo in .../inference_config.json: ignored,
  as inference-models ignores it``).
- A *legacy* config, one whose ``network_input`` lacks the keys
  inference-models requires (``color_mode``, ``resize_mode``,
  ``input_channels``, ``dynamic_spatial_size_supported``), still loads (the
  stock parser refuses it): missing keys take RF-DETR's defaults (stretch,
  RGB, 3 channels, ImageNet normalisation) and :attr:`InferenceConfig.is_legacy`
  says so.
- ``resize_mode`` also accepts ``stretch-to`` (an older spelling of
  ``stretch``).

Fields read but without effect here, as in inference-models' RF-DETR path:
``post_processing`` and ``model_initialization``; ``dynamic_spatial_size_*``
(our engines run the model's own input size; stock, too, ignores them for a
model with a static input). ``forward_pass`` batch sizes belong to the engine.

>>> config = parse_package_config('{"network_input": {"training_input_size": {"height": 32, "width": 48},'
...     ' "dynamic_spatial_size_supported": false, "color_mode": "rgb", "resize_mode": "letterbox",'
...     ' "input_channels": 3}}', "inference_config.json")
>>> config.network_input.training_input_size.width, config.network_input.resize_mode.value, config.is_legacy
(48, 'letterbox', False)
>>> try:
...     parse_package_config('{"network_input": {"padding_value": 300}}', "pkg/inference_config.json")
... except InvalidModelError as error:
...     print(error)
pkg/inference_config.json: network_input.padding_value: Input should be less than or equal to 255 (got 300)
"""

from __future__ import annotations

import json
import logging
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, List, Literal, Optional, Tuple, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from inference_accel.errors import InvalidModelError

logger = logging.getLogger("inference_accel")

CONFIG_FILE = "inference_config.json"
# network_input keys inference-models requires; a config without them is "legacy" here.
STOCK_REQUIRED_NETWORK_KEYS = ("dynamic_spatial_size_supported", "color_mode", "resize_mode", "input_channels")


class _Section(BaseModel):
    """Every section keeps unknown keys (``model_extra``) so they can be reported, never lost silently."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)


class AutoOrient(_Section):
    enabled: bool


class StaticCrop(_Section):
    """The kept window in percent of the frame: ``x_min <= x < x_max``, ``y_min <= y < y_max``."""

    enabled: bool
    x_min: int = Field(ge=0, le=100)
    x_max: int = Field(ge=0, le=100)
    y_min: int = Field(ge=0, le=100)
    y_max: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _window_not_empty(self) -> "StaticCrop":
        if self.enabled and (self.x_min >= self.x_max or self.y_min >= self.y_max):
            raise ValueError(
                f"the crop window is empty (x {self.x_min}..{self.x_max} %, y {self.y_min}..{self.y_max} %): "
                "each min must be below its max"
            )
        return self


class ContrastType(str, Enum):
    ADAPTIVE_EQUALIZATION = "Adaptive Equalization"
    CONTRAST_STRETCHING = "Contrast Stretching"
    HISTOGRAM_EQUALIZATION = "Histogram Equalization"


class Contrast(_Section):
    enabled: bool
    type: ContrastType


class Grayscale(_Section):
    enabled: bool


class ImagePreProcessing(_Section):
    auto_orient: Optional[AutoOrient] = Field(alias="auto-orient", default=None)
    static_crop: Optional[StaticCrop] = Field(alias="static-crop", default=None)
    contrast: Optional[Contrast] = None
    grayscale: Optional[Grayscale] = None


class TrainingInputSize(_Section):
    height: int = Field(gt=0)
    width: int = Field(gt=0)


class DivisiblePadding(_Section):
    type: Literal["pad-to-be-divisible"]
    value: int = Field(gt=0)


class AnySizePadding(_Section):
    type: Literal["any-size"]


class ColorMode(str, Enum):
    BGR = "bgr"
    RGB = "rgb"


class ResizeMode(str, Enum):
    STRETCH_TO = "stretch"
    LETTERBOX = "letterbox"
    CENTER_CROP = "center-crop"
    FIT_LONGER_EDGE = "fit-longer-edge"
    LETTERBOX_REFLECT_EDGES = "letterbox-reflect-edges"


def _resize_mode_alias(value: Any) -> Any:
    return ResizeMode.STRETCH_TO.value if value == "stretch-to" else value


Number = Union[int, float]
PositiveNumber = Annotated[Number, Field(gt=0)]


class NetworkInputDefinition(_Section):
    training_input_size: Optional[TrainingInputSize] = None
    dataset_version_resize_dimensions: Optional[TrainingInputSize] = None
    dynamic_spatial_size_supported: bool = False
    dynamic_spatial_size_mode: Optional[Union[DivisiblePadding, AnySizePadding]] = Field(
        discriminator="type", default=None
    )
    color_mode: ColorMode = ColorMode.RGB
    resize_mode: Annotated[ResizeMode, BeforeValidator(_resize_mode_alias)] = ResizeMode.STRETCH_TO
    padding_value: Optional[int] = Field(default=None, ge=0, le=255)
    input_channels: int = 3
    scaling_factor: Optional[PositiveNumber] = None
    normalization: Optional[Tuple[List[Number], List[Number]]] = None

    @field_validator("input_channels")
    @classmethod
    def _three_channels(cls, value: int) -> int:
        if value != 3:
            raise ValueError(f"only 3-channel inputs are supported (RF-DETR takes 3), got {value}")
        return value

    @field_validator("normalization")
    @classmethod
    def _three_means_three_stds(cls, value):
        if value is None:
            return value
        mean, std = value
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"needs [3 means, 3 stds], got {len(mean)} mean(s) and {len(std)} std(s)")
        if any(s == 0 for s in std):
            raise ValueError(f"a std of 0 divides by zero: {list(std)}")
        return value


class ForwardPassConfiguration(_Section):
    static_batch_size: Optional[int] = Field(default=None, gt=0)
    max_dynamic_batch_size: Optional[int] = Field(default=None, gt=0)


class FusedNMSParameters(_Section):
    max_detections: int
    confidence_threshold: float
    iou_threshold: float
    class_agnostic: int


class NMSPostProcessing(_Section):
    type: Literal["nms"]
    fused: bool
    nms_parameters: Optional[FusedNMSParameters] = None


class SigmoidPostProcessing(_Section):
    type: Literal["sigmoid"]
    fused: bool


class SoftMaxPostProcessing(_Section):
    type: Literal["softmax"]
    fused: bool


class ClassNameRemoval(_Section):
    type: Literal["class_name_removal"]
    class_name: str


def _none_is_empty(value: Any) -> Any:
    return ImagePreProcessing() if value is None else value


class InferenceConfig(_Section):
    """The parsed file. ``post_processing`` and ``model_initialization`` are read but, as in
    inference-models' RF-DETR classes, not used (RF-DETR's post-processing is fixed)."""

    image_pre_processing: Annotated[ImagePreProcessing, BeforeValidator(_none_is_empty)] = Field(
        default_factory=ImagePreProcessing
    )
    network_input: NetworkInputDefinition = Field(default_factory=NetworkInputDefinition)
    forward_pass: ForwardPassConfiguration = Field(default_factory=ForwardPassConfiguration)
    post_processing: Optional[Union[NMSPostProcessing, SoftMaxPostProcessing, SigmoidPostProcessing]] = Field(
        default=None, discriminator="type"
    )
    model_initialization: Optional[dict] = None
    class_names_operations: Optional[List[ClassNameRemoval]] = None
    _legacy: bool = PrivateAttr(default=False)

    @property
    def is_legacy(self) -> bool:
        """True when ``network_input`` lacks keys inference-models requires (RF-DETR defaults filled in)."""
        return self._legacy

    @property
    def removed_class_names(self) -> tuple[str, ...]:
        """Names removed by ``class_names_operations`` (``class_name_removal``), in file order."""
        return tuple(op.class_name for op in self.class_names_operations or ())


def _dotted(loc: tuple) -> str:
    """pydantic's error location as a dotted path: ``("network_input", "normalization", 0, 1)`` ->
    ``network_input.normalization[0][1]``; union tags (``nms``) are kept, they name the variant."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _describe(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{_dotted(error['loc'])}: required key missing"
    return f"{_dotted(error['loc'])}: {message} (got {error['input']!r:.60})"


_reported_unknown: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    found = [f"{prefix}{key}" for key in (model.model_extra or {})]
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{info.alias or name}."
        children = value if isinstance(value, list) else [value]
        for index, child in enumerate(children):
            if isinstance(child, BaseModel):
                found += _unknown_keys(child, key if not isinstance(value, list) else f"{key[:-1]}[{index}].")
    return found


def _report_unknown_keys(config: InferenceConfig, source: str) -> None:
    for key in _unknown_keys(config):
        with _reported_lock:
            if (source, key) in _reported_unknown:
                continue
            _reported_unknown.add((source, key))
        logger.warning("unknown key %s in %s: ignored, as inference-models ignores it", key, source)


def parse_package_config(text: str, source: str | Path) -> InferenceConfig:
    """Parse the text of an ``inference_config.json``; ``source`` names it in every message."""
    source = str(source)
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidModelError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise InvalidModelError(f"{source} must be a JSON object, got a {type(decoded).__name__}: {decoded!r:.60}")
    try:
        config = InferenceConfig.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = "; ".join(_describe(e) for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise InvalidModelError(f"{source}: {shown}{more}") from None
    network_input = decoded.get("network_input")
    missing = [k for k in STOCK_REQUIRED_NETWORK_KEYS if not isinstance(network_input, dict) or k not in network_input]
    if missing:
        config._legacy = True
        logger.debug("%s lacks network_input.%s: RF-DETR defaults used", source, ", ".join(missing))
    _report_unknown_keys(config, source)
    return config


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a leading BOM dropped), or an InvalidModelError naming it."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidModelError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except FileNotFoundError:
        raise InvalidModelError(f"{path} is missing: a model package needs its {path.name}") from None
    except OSError as exc:
        raise InvalidModelError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_package_config(path: str | Path) -> InferenceConfig:
    """Read and parse a package's ``inference_config.json`` (see the module docstring)."""
    path = Path(path)
    return parse_package_config(read_text(path), path)
