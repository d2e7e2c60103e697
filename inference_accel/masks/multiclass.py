"""Multiclass RLE for (H, W) integer label maps (seed 002's format).

The COCO run-length idea extended with a value per run: a label map is read
in column-major order (COCO's order) and stored as
``{'size': [h, w], 'values': [...], 'counts': [...]}``, one entry per run of
equal labels. One pass over the map encodes every class at once, where per-class
binary COCO encoding needs a full pass (compare, Fortran copy, encode) per class.

The per-class views come straight from the runs, without a dense step:
the runs of class ``c`` are its foreground intervals on the image stream, which
give its COCO counts or its tight-crop CompactMask (see :mod:`._runs`).

>>> import numpy as np
>>> label = np.array([[0, 0, 1, 1, 0],
...                   [3, 0, 1, 1, 0],
...                   [3, 3, 1, 1, 0],
...                   [3, 3, 0, 0, 0]])
>>> rle = encode_multiclass(label)
>>> rle['size'], rle['values'].tolist(), rle['counts'].tolist()
([4, 5], [0, 3, 0, 3, 1, 0, 1, 0], [1, 3, 2, 2, 3, 1, 3, 5])
>>> bool((decode_multiclass(rle) == label).all())
True
>>> masks, class_ids = multiclass_to_compact(rle)
>>> class_ids.tolist(), masks.area.tolist()
([1, 3], [6, 5])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pycocotools.mask as mask_utils
from supervision import CompactMask

from inference_accel.errors import InvalidMaskError
from inference_accel.masks._runs import (
    build_compact,
    check_compact,
    check_hw,
    check_run_counts,
    intervals_to_runs,
    merge_touching,
    stream_intervals,
    stream_to_tight_crop,
)
from inference_accel.masks.coco_rle import _counts_array, _rle_size

__all__ = [
    "coco_to_multiclass",
    "compact_to_multiclass",
    "decode_multiclass",
    "encode_multiclass",
    "multiclass_to_coco",
    "multiclass_to_compact",
]


def encode_multiclass(label: npt.ArrayLike) -> dict[str, Any]:
    """Multiclass RLE of an (H, W) integer label map, column-major.

    Returns ``{'size': [h, w], 'values': array, 'counts': int64 array}``;
    ``values`` keeps the label map's dtype. ``.tolist()`` both arrays for JSON.

    Raises:
        InvalidMaskError: not a non-empty 2-D integer or bool array.

    >>> r = encode_multiclass(np.array([[2, 2], [2, 7]], dtype=np.uint8))
    >>> r['values'].tolist(), r['counts'].tolist()
    ([2, 7], [3, 1])
    """
    arr = np.asarray(label)
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidMaskError(f"label map must be a non-empty 2-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise InvalidMaskError(f"label map must hold integers, got {arr.dtype}")
    h, w = arr.shape
    flat = arr.ravel(order="F")
    change = np.empty(flat.size, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    counts = np.diff(starts, append=flat.size)
    return {"size": [h, w], "values": flat[starts], "counts": counts}


def _checked(rle: Mapping[str, Any]) -> tuple[int, int, np.ndarray, npt.NDArray[np.int64]]:
    """Validated ``(h, w, values, counts)`` of a multiclass RLE."""
    if not isinstance(rle, Mapping) or not {"size", "values", "counts"} <= set(rle):
        raise InvalidMaskError("multiclass RLE must be a mapping with 'size', 'values' and 'counts'")
    h, w = _rle_size(rle)
    values = np.asarray(rle["values"])
    counts = _counts_array(rle["counts"])
    if values.ndim != 1 or values.shape != counts.shape:
        raise InvalidMaskError(
            f"multiclass RLE has {values.size} values but {counts.size} counts"
        )
    if values.size and not (np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_):
        raise InvalidMaskError(f"multiclass RLE values must be integers, got {values.dtype}")
    check_run_counts(counts, h * w, "multiclass RLE")
    return h, w, values, counts


def decode_multiclass(rle: Mapping[str, Any]) -> np.ndarray:
    """The (H, W) label map (C-contiguous, dtype of ``values``) of a multiclass RLE.

    >>> decode_multiclass({'size': [2, 2], 'values': [5, 0], 'counts': [1, 3]}).tolist()
    [[5, 0], [0, 0]]
    """
    h, w, values, counts = _checked(rle)
    return np.ascontiguousarray(np.repeat(values, counts).reshape(w, h).T)


def _class_intervals(
    values: np.ndarray, counts: npt.NDArray[np.int64], background: int | None
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Per class value: its sorted foreground stream intervals."""
    keep = counts > 0
    if background is not None:
        keep &= values != background
    ends = np.cumsum(counts)
    starts = (ends - counts)[keep]
    stops = ends[keep]
    vals = values[keep]
    order = np.argsort(vals, kind="stable")
    vals_sorted = vals[order]
    classes, first = np.unique(vals_sorted, return_index=True)
    bounds = np.append(first, vals_sorted.size)
    out = {}
    for c, a, b in zip(classes.tolist(), bounds[:-1], bounds[1:]):
        idx = order[a:b]
        out[int(c)] = merge_touching(starts[idx], stops[idx])
    return out


def multiclass_to_compact(
    rle: Mapping[str, Any], background: int | None = 0
) -> tuple[CompactMask, npt.NDArray[np.int64]]:
    """One tight-crop CompactMask per class present, with the class ids (ascending).

    Args:
        background: the label that is not a class (``None``: every label is one).

    >>> rle = {'size': [2, 3], 'values': [0, 4, 0], 'counts': [2, 2, 2]}
    >>> masks, ids = multiclass_to_compact(rle)
    >>> ids.tolist(), masks.offsets.tolist(), masks.to_dense()[0].astype(int).tolist()
    ([4], [[1, 0]], [[0, 1, 0], [0, 1, 0]])
    """
    h, w, values, counts = _checked(rle)
    per_class = _class_intervals(values, counts, background)
    parts = [stream_to_tight_crop(s, e, h) for s, e in per_class.values()]
    return build_compact(parts, (h, w)), np.array(list(per_class), dtype=np.int64)


def multiclass_to_coco(
    rle: Mapping[str, Any], background: int | None = 0, compressed: bool = True
) -> dict[int, dict[str, Any]]:
    """Per-class full-image COCO RLE (as ``pycocotools.mask.encode`` gives), by class id.

    >>> multiclass_to_coco({'size': [2, 3], 'values': [0, 4, 0], 'counts': [2, 2, 2]})
    {4: {'size': [2, 3], 'counts': b'222'}}
    """
    h, w, values, counts = _checked(rle)
    per_class = _class_intervals(values, counts, background)
    coco = {c: intervals_to_runs(s, e, h * w) for c, (s, e) in per_class.items()}
    if not compressed:
        return {c: {"size": [h, w], "counts": r.tolist()} for c, r in coco.items()}
    if not coco:
        return {}
    objs = [{"size": [h, w], "counts": r.astype(np.uint32)} for r in coco.values()]
    encoded = mask_utils.frPyObjects(objs, h, w)
    return {c: {"size": [h, w], "counts": e["counts"]} for c, e in zip(coco, encoded)}


def _from_intervals(
    parts: list[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    h: int,
    w: int,
    background: int,
    dtype: npt.DTypeLike,
) -> dict[str, Any]:
    """Multiclass RLE of disjoint per-class stream intervals over a background."""
    if parts:
        labels = np.concatenate([np.full(s.size, c, dtype=np.int64) for c, s, _ in parts])
        starts = np.concatenate([s for _, s, _ in parts])
        stops = np.concatenate([e for _, _, e in parts])
    else:
        labels = starts = stops = np.empty(0, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    labels, starts, stops = labels[order], starts[order], stops[order]
    if starts.size > 1 and bool((starts[1:] < stops[:-1]).any()):
        raise InvalidMaskError("masks overlap: a multiclass label map needs disjoint masks")
    # Interleave foreground intervals with the background gaps between them.
    edges = np.empty(2 * starts.size + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, h * w
    edges[1:-1:2], edges[2:-1:2] = starts, stops
    vals = np.full(edges.size - 1, background, dtype=np.int64)
    vals[1::2] = labels
    counts = np.diff(edges)
    keep = counts > 0
    vals, counts = vals[keep], counts[keep]
    # Merge neighbouring runs of one label (e.g. two touching masks of a class).
    if vals.size:
        first = np.concatenate(([True], vals[1:] != vals[:-1]))
        idx = np.flatnonzero(first)
        counts = np.add.reduceat(counts, idx)
        vals = vals[idx]
    return {"size": [h, w], "values": vals.astype(dtype), "counts": counts}


def compact_to_multiclass(
    masks: CompactMask,
    class_ids: npt.ArrayLike,
    background: int = 0,
    dtype: npt.DTypeLike = np.int64,
) -> dict[str, Any]:
    """Multiclass RLE of non-overlapping CompactMasks labelled ``class_ids``.

    Raises:
        InvalidMaskError: the masks overlap, or ``class_ids`` has the wrong length.

    >>> import supervision as sv
    >>> cm = sv.CompactMask([np.array([0, 1], np.int32)], np.array([[1, 1]], np.int32),
    ...     np.array([[1, 0]], np.int32), (2, 2))
    >>> r = compact_to_multiclass(cm, [9])
    >>> r['values'].tolist(), r['counts'].tolist()
    ([0, 9, 0], [2, 1, 1])
    """
    check_compact(masks)
    ids = np.asarray(class_ids).reshape(-1)
    if ids.size != len(masks):
        raise InvalidMaskError(f"{ids.size} class ids for {len(masks)} masks")
    h, w = (int(v) for v in masks._image_shape)
    parts = [(int(c), *stream_intervals(masks, i)) for i, c in enumerate(ids.tolist())]
    return _from_intervals(parts, h, w, background, dtype)


def coco_to_multiclass(
    rles: Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    class_ids: npt.ArrayLike | None = None,
    background: int = 0,
    dtype: npt.DTypeLike = np.int64,
    image_shape: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Multiclass RLE of non-overlapping full-image COCO RLEs.

    Args:
        rles: ``{class_id: rle}`` or a list of RLEs with ``class_ids``.
        image_shape: ``(h, w)``; required when ``rles`` is empty.

    >>> r = coco_to_multiclass({4: {'size': [2, 3], 'counts': b'222'}})
    >>> r['values'].tolist(), r['counts'].tolist()
    ([0, 4, 0], [2, 2, 2])
    """
    if isinstance(rles, Mapping):
        if class_ids is not None:
            raise InvalidMaskError("pass class ids either as the mapping's keys or as class_ids")
        ids, items = list(rles.keys()), list(rles.values())
    else:
        items = list(rles)
        if class_ids is None:
            raise InvalidMaskError("class_ids is required with a list of RLEs")
        ids = np.asarray(class_ids).reshape(-1).tolist()
        if len(ids) != len(items):
            raise InvalidMaskError(f"{len(ids)} class ids for {len(items)} RLEs")
    if image_shape is not None:
        h, w = check_hw(image_shape)
    elif items:
        h, w = _rle_size(items[0])
    else:
        raise InvalidMaskError("no RLEs and no image_shape: the image size is unknown")
    parts = []
    for c, rle in zip(ids, items):
        if _rle_size(rle) != (h, w):
            raise InvalidMaskError(f"COCO RLE sizes differ: {list(_rle_size(rle))} vs {[h, w]}")
        counts = check_run_counts(_counts_array(rle["counts"]), h * w, f"COCO RLE of class {c}")
        ends = np.cumsum(counts)
        s, e = ends[:-1:2], ends[1::2]
        keep = e > s
        parts.append((int(c), s[keep], e[keep]))
    return _from_intervals(parts, h, w, background, dtype)
