"""Checks of the arguments of public calls, done before any work starts.

A fast path is switched off for the process only for its own fault; an
invalid argument is the caller's, so it is refused up front with an
:class:`~inference_accel.errors.InvalidArgumentError` (a ``ValueError``)
that names the argument, its allowed range and the value given, and no
implementation ever sees it.

>>> check_threshold(0.25), check_positive_int("max_detections", 300)
(0.25, 300)
>>> check_positive_int("max_detections", 1.5)
Traceback (most recent call last):
...
inference_accel.errors.InvalidArgumentError: max_detections must be a positive int (>= 1), got 1.5 (float)
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from inference_accel.errors import InvalidArgumentError


def _given(value: Any) -> str:
    return f"got {value!r} ({type(value).__name__})"


def check_threshold(value: Any, name: str = "threshold") -> float:
    """``value`` as a float if it is a real number in [0, 1] (bool, NaN, strings refused).

    >>> check_threshold(1)
    1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise InvalidArgumentError(f"{name} must be a real number in [0, 1], {_given(value)}")
    return float(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 1 (bool, 1.5, 2.0, negatives refused).

    >>> check_positive_int("concurrency", np.int64(4))
    4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InvalidArgumentError(f"{name} must be a positive int (>= 1), {_given(value)}")
    return int(value)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """``None``, or :func:`check_positive_int`."""
    return None if value is None else check_positive_int(name, value)


def check_size(name: str, value: Any) -> tuple[int, int]:
    """An (H, W) pair of positive ints.

    >>> check_size("frame_hw", (1080, 1920))
    (1080, 1920)
    """
    try:
        pair = tuple(value) if not isinstance(value, (str, bytes)) else ()
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise InvalidArgumentError(f"{name} must be an (H, W) pair of positive ints, {_given(value)}")
    return check_positive_int(f"{name}[0]", pair[0]), check_positive_int(f"{name}[1]", pair[1])


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``.

    >>> check_choice("resize_mode", "letterbox", ("stretch", "letterbox"))
    'letterbox'
    """
    if not isinstance(value, str) or value not in choices:
        raise InvalidArgumentError(f"{name} must be one of {tuple(choices)}, {_given(value)}")
    return value


def check_class_mapping(value: Any) -> np.ndarray | None:
    """``None``, or a 1-D integer array (model class -> our class id, -1 drops the class)."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.ndim != 1 or not (array.dtype.kind in "iu" or array.size == 0):
        raise InvalidArgumentError(
            f"class_mapping must be a 1-D integer array (-1 drops a class), got dtype {array.dtype} "
            f"shape {array.shape}"
        )
    return array


def check_class_names(value: Any) -> Sequence[str] | None:
    """``None``, or a sequence of strings."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
        isinstance(n, str) for n in value
    ):
        raise InvalidArgumentError(f"class_names must be a sequence of str or None, {_given(value)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name} must be True or False, {_given(value)}")
    return bool(value)

