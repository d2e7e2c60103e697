"""A model's input normalisation: scaling factor, per-channel mean and std, colour order.

Roboflow packages describe it in ``inference_config.json`` (``network_input``:
``scaling_factor``, ``normalization`` = [mean list, std list], ``color_mode``).
Every preprocessing path takes one :class:`Normalization` as runtime constants;
``Normalization.imagenet()`` is RF-DETR's default (mean/std of ImageNet, /255, RGB).

**The arithmetic** (:func:`normalize_channels`, the one definition every path
uses, the fast paths through a 256-entry table per channel) is inference-models'
RF-DETR chain (``models/rfdetr/pre_processing.py``), operation by operation,
all in float32:

1. ``to_tensor``: ``byte.float().div(255)``, always 255;
2. only when ``scale != 255``: ``* (255.0 / scale)``, a Python float that torch
   rounds to float32 before the multiply (stock's ``tensor * (255.0 /
   scaling_factor)``); so a scale is a multiply by ``255/scale``, not a division;
3. ``normalize``: ``- mean`` then ``/ std``, mean and std rounded to float32
   (torchvision's ``tensor.sub_(mean).div_(std)``); for mean 0 and std 1 both
   are exact identities, which is stock's "no normalization".

**Channel order.** Frames are BGR. ``channel_order`` is the order of the
model input's planes: ``"rgb"`` reverses the frame's channels, ``"bgr"``
keeps them. ``mean[c]``/``std[c]`` apply to plane ``c`` of the model input.
:func:`from_stock_config` turns a package's values into the Normalization the
stock path applies (including its rules for when it swaps and when it ignores
``scaling_factor``).

>>> from inference_accel.preprocess.normalization import Normalization
>>> Normalization.imagenet()
Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=255.0, channel_order='rgb')
>>> Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="bgr").channel_order
'bgr'
>>> Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.0, 0.5))
Traceback (most recent call last):
...
inference_accel.errors.InvalidArgumentError: Normalization.std[1] must be non-zero, got 0.0
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from inference_accel.errors import InvalidArgumentError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SCALE = 255.0
CHANNEL_ORDERS = ("rgb", "bgr")


def _number(field: str, value: object) -> float:
    """``value`` as a float if it is a real number (not a bool, not a string), else an error naming ``field``."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"Normalization.{field} must be a number, got a bool")
    if not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"Normalization.{field} must be a number, got {value!r}")
    return float(value)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as torch stores mean, std and the scale factor."""
    return float(torch.tensor(value, dtype=torch.float32))


def _three_finite_floats(field: str, value: object) -> tuple[float, float, float]:
    """``value`` as a tuple of three finite floats, or an error naming ``field``."""
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentError(f"Normalization.{field} must be three numbers, got {value!r}")
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError(
            f"Normalization.{field} must be three numbers, got {type(value).__name__}"
        ) from None
    if len(items) != 3:
        raise InvalidArgumentError(f"Normalization.{field} must have 3 values, got {len(items)}")
    floats = []
    for i, item in enumerate(items):
        number = _number(f"{field}[{i}]", item)
        if not math.isfinite(number):
            raise InvalidArgumentError(f"Normalization.{field}[{i}] must be finite, got {number}")
        if not math.isfinite(_float32(number)):
            raise InvalidArgumentError(f"Normalization.{field}[{i}] overflows float32: {number}")
        floats.append(number)
    return floats[0], floats[1], floats[2]


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(pixel / scale - mean) / std``; ``channel_order``: the model's input order.

    ``mean`` and ``std`` are in the model's channel order (for ``"bgr"``,
    ``mean[0]`` applies to blue). ``scale`` is what uint8 pixels are divided
    by (255.0: pixels in [0, 1]; 1.0: raw 0..255). Values are validated and
    stored as Python floats; a bad value raises
    :class:`~inference_accel.errors.InvalidArgumentError` naming the field.

    >>> n = Normalization(mean=[0, 0, 0], std=[1, 1, 1], scale=1.0)
    >>> n.mean, n.scale, n.is_imagenet
    ((0.0, 0.0, 0.0), 1.0, False)
    >>> Normalization(IMAGENET_MEAN, IMAGENET_STD).is_imagenet
    True
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = DEFAULT_SCALE
    channel_order: str = "rgb"

    def __post_init__(self) -> None:
        mean = _three_finite_floats("mean", self.mean)
        std = _three_finite_floats("std", self.std)
        for i, value in enumerate(std):
            if value == 0.0:
                raise InvalidArgumentError(f"Normalization.std[{i}] must be non-zero, got {value}")
            if _float32(value) == 0.0:
                raise InvalidArgumentError(f"Normalization.std[{i}] is 0 in float32: {value}")
        scale = _number("scale", self.scale)
        if not (math.isfinite(scale) and scale > 0.0):
            raise InvalidArgumentError(f"Normalization.scale must be finite and > 0, got {scale}")
        factor = _float32(DEFAULT_SCALE / scale)  # what the pixels are multiplied by (see normalize_channels)
        if not (math.isfinite(factor) and factor > 0.0):
            raise InvalidArgumentError(f"Normalization.scale {scale} makes 255 / scale leave float32's range")
        order = self.channel_order
        if not isinstance(order, str) or order.lower() not in CHANNEL_ORDERS:
            raise InvalidArgumentError(
                f"Normalization.channel_order must be one of {CHANNEL_ORDERS}, got {order!r}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "channel_order", order.lower())

    @classmethod
    def imagenet(cls) -> "Normalization":
        """RF-DETR's default: ImageNet mean and std, pixels / 255, RGB order.

        >>> Normalization.imagenet() == Normalization(IMAGENET_MEAN, IMAGENET_STD, 255.0, "rgb")
        True
        """
        return cls(IMAGENET_MEAN, IMAGENET_STD, DEFAULT_SCALE, "rgb")

    @property
    def is_imagenet(self) -> bool:
        """True when this equals :meth:`imagenet` (today's hard-coded behaviour)."""
        return self == Normalization.imagenet()

    @property
    def is_bgr(self) -> bool:
        """True when the model takes channels in B, G, R order."""
        return self.channel_order == "bgr"

    def reverses(self, frame_bgr: bool = True) -> bool:
        """Whether model plane ``c`` reads frame channel ``2 - c`` (else ``c``).

        ``frame_bgr``: the frame's own order (BGR, or RGB when False).

        >>> Normalization.imagenet().reverses(), Normalization.imagenet().reverses(frame_bgr=False)
        (True, False)
        """
        return bool(frame_bgr) != self.is_bgr


IMAGENET = Normalization.imagenet()  # what None means, built once


def resolve(normalization: Normalization | None) -> Normalization:
    """``None`` -> :meth:`Normalization.imagenet`; a Normalization passes; anything else is an error.

    >>> resolve(None).is_imagenet
    True
    >>> resolve("imagenet")
    Traceback (most recent call last):
    ...
    inference_accel.errors.InvalidArgumentError: normalization must be a Normalization or None, got str
    """
    if normalization is None:
        return IMAGENET
    if not isinstance(normalization, Normalization):
        raise InvalidArgumentError(
            f"normalization must be a Normalization or None, got {type(normalization).__name__}"
        )
    return normalization


def normalize_channels(pixels: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """float32 ``pixels`` (3, ...) holding byte values 0..255 -> the model's normalised floats.

    Plane ``c`` of ``pixels`` is plane ``c`` of the model input (the channel
    order is already applied). The stock operations in their order (see the
    module docstring): ``/ 255``, ``* (255 / scale)`` unless scale is 255,
    ``- mean``, ``/ std``, all float32 on the CPU.

    >>> x = torch.tensor([0.0, 255.0]).view(1, 2).expand(3, 2)
    >>> normalize_channels(x, Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))[0].tolist()
    [-1.0, 1.0]
    >>> normalize_channels(x, Normalization((0, 0, 0), (1, 1, 1), scale=1.0))[2].tolist()
    [0.0, 255.0]
    """
    if pixels.dtype != torch.float32 or pixels.ndim < 1 or pixels.shape[0] != 3:
        raise InvalidArgumentError(
            f"pixels must be float32 of shape (3, ...), got {pixels.dtype} {tuple(pixels.shape)}"
        )
    values = pixels.div(255)
    if normalization.scale != DEFAULT_SCALE:
        values = values * (DEFAULT_SCALE / normalization.scale)
    view = (3,) + (1,) * (pixels.ndim - 1)
    mean = torch.tensor(normalization.mean, dtype=torch.float32).view(view)
    std = torch.tensor(normalization.std, dtype=torch.float32).view(view)
    return (values - mean) / std


def _color(value: object) -> str | None:
    """A colour mode as ``"rgb"``/``"bgr"`` (an enum's value, any case), None kept."""
    if value is None:
        return None
    text = getattr(value, "value", value)
    if not isinstance(text, str) or text.lower() not in CHANNEL_ORDERS:
        raise InvalidArgumentError(f"colour mode must be one of {CHANNEL_ORDERS}, got {value!r}")
    return text.lower()


def from_stock_config(
    scaling_factor: float | None,
    normalization: object,
    color_mode: object,
    input_color_mode: object = None,
) -> Normalization:
    """The Normalization inference-models' RF-DETR path applies to a numpy frame.

    ``scaling_factor``, ``normalization`` (``[mean list, std list]`` or None)
    and ``color_mode``: the package's ``network_input`` values;
    ``input_color_mode``: the caller's ``input_color_format`` (None when not
    given). Stock rules reproduced (``_apply_normalization``, ``_pre_process_numpy``):

    - a normalization present: its mean/std, and ``scaling_factor`` is
      **ignored** (stock only divides by 255);
    - none: mean 0, std 1, and a ``scaling_factor`` other than None and 255
      becomes ``scale``;
    - stock swaps R and B when ``input_color_mode != color_mode``, where an
      input mode of None never equals (so a ``bgr`` package with no input
      format gets RGB planes: stock's behaviour, kept). The frame given to
      ``preprocess_into`` is in the input order, so ``channel_order`` is
      ``"rgb"`` (reverse) when stock swaps and ``"bgr"`` (keep) when not.

    >>> from_stock_config(255, [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]], "rgb").is_imagenet
    True
    >>> n = from_stock_config(1, None, "bgr", input_color_mode="bgr")
    >>> n.mean, n.std, n.scale, n.channel_order
    ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0, 'bgr')
    >>> from_stock_config(127.5, [[0.5] * 3, [0.5] * 3], "bgr").scale  # stock ignores it here
    255.0
    """
    model_order = _color(color_mode)
    if model_order is None:
        raise InvalidArgumentError("color_mode must be 'rgb' or 'bgr', got None")
    swap = _color(input_color_mode) != model_order
    order = "rgb" if swap else "bgr"
    if normalization:
        try:
            mean, std = normalization  # type: ignore[misc]
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"normalization must be [mean list, std list], got {normalization!r}"
            ) from None
        return Normalization(mean, std, DEFAULT_SCALE, order)
    scale = DEFAULT_SCALE
    if scaling_factor is not None and scaling_factor != DEFAULT_SCALE:
        scale = scaling_factor  # validated by Normalization (finite, > 0)
    return Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scale, order)
