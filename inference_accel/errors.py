"""Exceptions with messages that name the problem.

Every user-facing failure raises a subclass of :class:`InferenceAccelError`, so
the CLI can print one clear line instead of a traceback.

>>> from inference_accel.errors import InvalidFrameError
>>> try:
...     raise InvalidFrameError("frame must be uint8, got float32")
... except InferenceAccelError as e:
...     print(e)
frame must be uint8, got float32
"""

from __future__ import annotations


class InferenceAccelError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidFrameError(InferenceAccelError, ValueError):
    """A frame has the wrong dtype, shape, channel count, or is empty."""


class UnreadableMediaError(InferenceAccelError, OSError):
    """An image or video file cannot be opened or decoded."""


class ModelNotFoundError(InferenceAccelError, FileNotFoundError):
    """A model file or package directory does not exist."""


class InvalidModelError(InferenceAccelError, ValueError):
    """A model's inputs or outputs are not RF-DETR-Seg's."""


class FlagValueError(InferenceAccelError, ValueError):
    """An environment flag or CLI option has a value we cannot parse."""


class InvalidArgumentError(InferenceAccelError, ValueError):
    """An argument of a public call is out of its allowed range or of the wrong type."""


class InvalidMaskError(InferenceAccelError, ValueError):
    """A mask, RLE or box array is malformed or inconsistent."""


class EngineBuildError(InferenceAccelError, RuntimeError):
    """A TensorRT engine cannot be built here (no builder, a failed build)."""


class MissingDependencyError(InferenceAccelError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
