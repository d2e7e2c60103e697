"""Integrations with other inference stacks.

``inference_accel.integrations.inference_models``: drop-in accelerated RF-DETR
instance-segmentation models for Roboflow's ``inference-models`` (the model
engine of the ``inference`` server), proven equal to the stock classes output
for output.

Importing this package is cheap and never imports ``inference_models``;
:func:`require_inference_models` checks that it is installed at a supported
version and says what to do when it is not.

>>> SUPPORTED_RANGE
'>=0.39,<0.40'
>>> parse_version("0.39.6")
(0, 39, 6)
"""

from __future__ import annotations

import importlib.metadata
import re

from inference_accel.errors import InferenceAccelError, MissingDependencyError

DISTRIBUTION = "inference-models"
# The stock internals we reproduce (pre/postprocessing of the RF-DETR
# instance-segmentation classes) were read from, and are tested against, 0.39.x.
SUPPORTED_MIN = (0, 39)
SUPPORTED_MAX = (0, 40)  # exclusive
SUPPORTED_RANGE = ">=0.39,<0.40"
INSTALL_HINT = f"pip install 'inference-models[onnx-cpu]{SUPPORTED_RANGE}'"


class InferenceModelsMissingError(MissingDependencyError):
    """``inference-models`` is not installed (or cannot be imported)."""


class UnsupportedInferenceModelsVersionError(InferenceAccelError, RuntimeError):
    """The installed ``inference-models`` is outside the supported range."""


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string (``"0.39.6rc1"`` -> ``(0, 39, 6)``)."""
    parts = []
    for piece in text.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def installed_version() -> str | None:
    """The installed ``inference-models`` version string, or None."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_problem(version: str | None) -> str | None:
    """Why ``version`` cannot be accelerated (None: it can)."""
    if version is None:
        return (
            f"inference-models is not installed; the inference-models integration needs "
            f"inference-models{SUPPORTED_RANGE} ({INSTALL_HINT})"
        )
    try:
        release = parse_version(version)
    except ValueError:
        return f"inference-models reports an unparseable version {version!r}; supported: {SUPPORTED_RANGE}"
    if not SUPPORTED_MIN <= release[:2] < SUPPORTED_MAX:
        return (
            f"inference-models {version} is installed; inference_accel's integration supports "
            f"inference-models{SUPPORTED_RANGE} only (its pre/postprocessing internals are reproduced "
            f"bit for bit and change between releases). Install a supported release ({INSTALL_HINT}) "
            f"or leave the integration off"
        )
    return None


def require_inference_models() -> str:
    """Check ``inference-models`` is installed, supported and importable; returns its version.

    Raises:
        InferenceModelsMissingError: not installed, or its import fails.
        UnsupportedInferenceModelsVersionError: outside :data:`SUPPORTED_RANGE`.
    """
    version = installed_version()
    problem = version_problem(version)
    if problem is not None:
        if version is None:
            raise InferenceModelsMissingError(problem)
        raise UnsupportedInferenceModelsVersionError(problem)
    try:
        import inference_models  # noqa: F401
    except Exception as exc:
        raise InferenceModelsMissingError(
            f"inference-models {version} is installed but cannot be imported ({type(exc).__name__}: {exc})"
        ) from exc
    return version  # type: ignore[return-value]


__all__ = [
    "InferenceModelsMissingError",
    "UnsupportedInferenceModelsVersionError",
    "SUPPORTED_RANGE",
    "installed_version",
    "parse_version",
    "require_inference_models",
    "version_problem",
]
