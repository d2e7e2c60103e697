"""The compiled helper of the response stage: canvas painting and payload points.

``_polygons_native.c`` does three loops that dominate Roboflow's polygon
response at 1080p once contours are traced on crops: painting a mask's runs
into the canvas findContours reads, formatting the points as compact JSON,
and building the points as Python dicts. Each has a numpy/Python reference
that stays the fallback (``polygons._column_major_canvas_numpy``,
``response._points_numpy``, ``response._points_json_numpy``) and that the
tests hold it to, byte for byte.

Switch: ``INFERENCE_ACCEL_RESPONSE_NATIVE=false`` (our own flag, no Roboflow
equivalent; read in :mod:`inference_accel.flags`) forces the references
(:func:`native_reason` says why the helper is not used; ``doctor`` prints it).

>>> import numpy as np
>>> if native_reason() is None:
...     canvas = np.empty(6, np.uint8)
...     paint_intervals(np.array([1, 4]), np.array([3, 5]), 0, canvas)
...     print(canvas.tolist())
... else:
...     print([0, 1, 1, 0, 1, 0])
[0, 1, 1, 0, 1, 0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from inference_accel.flags import RESPONSE_NATIVE_FLAG, read_response_native

__all__ = ["RESPONSE_NATIVE_FLAG", "native_reason", "paint_intervals", "points_dicts", "points_json"]

try:
    from inference_accel.masks import _polygons_native
except ImportError as _exc:  # not built (no compiler at install time): the references run
    _polygons_native = None
    _IMPORT_ERROR: str | None = f"compiled helper not importable ({_exc})"
else:
    _IMPORT_ERROR = None


def native_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the compiled response helper is not used (None: it is).

    >>> native_reason({"INFERENCE_ACCEL_RESPONSE_NATIVE": "off"})
    'INFERENCE_ACCEL_RESPONSE_NATIVE=false'
    """
    if not read_response_native(environ):
        return f"{RESPONSE_NATIVE_FLAG}=false"
    return _IMPORT_ERROR


def paint_intervals(
    starts: npt.NDArray[np.int64], stops: npt.NDArray[np.int64], base: int, canvas: npt.NDArray[np.uint8]
) -> None:
    """``canvas[:] = 0``, then 1 on every ``[start - base, stop - base)`` (sorted, disjoint intervals).

    Raises ``ValueError`` for an interval outside the canvas or out of order.
    """
    _polygons_native.paint_intervals(
        np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(stops, np.int64), int(base), canvas.reshape(-1)
    )


def _packed(polygons: Sequence[np.ndarray]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Every polygon's (x, y) points as one (P, 2) int32 array, and the points per polygon."""
    counts = np.array([len(p) for p in polygons], dtype=np.int64)
    kept = [np.asarray(p).reshape(-1, 2) for p in polygons if len(p)]
    points = np.concatenate(kept).astype(np.int32, copy=False) if kept else np.empty((0, 2), np.int32)
    return np.ascontiguousarray(points), counts


def points_json(polygons: Sequence[np.ndarray]) -> list[bytes]:
    """Each polygon's ``points`` as compact JSON, brackets excluded (``{"x":1.0,"y":2.0},...``)."""
    return _polygons_native.points_json(*_packed(polygons))


def points_dicts(polygons: Sequence[np.ndarray]) -> list[list[dict[str, float]]]:
    """Each polygon's ``points`` as ``[{"x": float, "y": float}, ...]``."""
    return _polygons_native.points_dicts(*_packed(polygons))
