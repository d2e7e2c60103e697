"""CompactMask <-> full-image COCO RLE, computed from the runs (no dense masks).

A ``sv.CompactMask`` stores each mask as column-major runs over its bounding-box
crop. COCO RLE stores the same column-major runs over the *whole image*. The
two differ only in the canvas the stream walks, so conversion is interval
arithmetic: each crop column's foreground runs are moved onto the image
column they belong to (``x * H + y``), runs that now touch are merged, and the
gaps become background runs. The reverse decodes the counts to foreground
intervals, splits them at image columns, finds the tight bounding box and
re-slices them onto that crop. Work is O(runs + columns a run crosses); no
(H, W) array is ever built.

Both COCO forms are produced, byte for byte what ``pycocotools.mask.encode``
gives for the same dense mask:

- uncompressed: ``{'size': [h, w], 'counts': [int, ...]}``;
- compressed: ``{'size': [h, w], 'counts': b'...'}``, the string written by
  pycocotools' own encoder (``frPyObjects`` on the uncompressed dict).

>>> import numpy as np, supervision as sv, pycocotools.mask as mask_utils
>>> dense = np.zeros((1, 6, 5), dtype=bool); dense[0, 1:4, 2:4] = True
>>> cm = sv.CompactMask.from_dense(dense, np.array([[2, 1, 3, 3]]), (6, 5))
>>> to_coco_rle(cm, compressed=False)[0]
{'size': [6, 5], 'counts': [13, 3, 3, 3, 8]}
>>> to_coco_rle(cm)[0] == mask_utils.encode(np.asfortranarray(dense[0].astype(np.uint8)))
True
>>> back = from_coco_rle(to_coco_rle(cm))
>>> bool((back.to_dense() == dense).all()), back.offsets.tolist()
(True, [[2, 1]])
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
    MAX_COUNT,
    build_compact,
    check_compact,
    check_hw,
    check_int,
    check_run_counts,
    intervals_to_runs,
    runs_to_intervals,
    stream_intervals,
    stream_to_tight_crop,
)

__all__ = [
    "coco_counts",
    "decode_counts_string",
    "encode_counts_string",
    "from_coco_rle",
    "to_coco_rle",
]


def coco_counts(masks: CompactMask, index: int) -> npt.NDArray[np.int64]:
    """Uncompressed full-image COCO counts of mask ``index`` (int64 array).

    >>> import numpy as np, supervision as sv
    >>> cm = sv.CompactMask([np.array([0, 1], np.int32)], np.array([[1, 1]], np.int32),
    ...     np.array([[1, 0]], np.int32), (2, 2))
    >>> coco_counts(cm, 0).tolist()
    [2, 1, 1]
    """
    check_compact(masks)
    height, width = (int(v) for v in masks._image_shape)
    starts, stops = stream_intervals(masks, index)
    return intervals_to_runs(starts, stops, height * width)


def encode_counts_string(counts: npt.ArrayLike, height: int, width: int) -> bytes:
    """COCO's compressed counts string of uncompressed ``counts``, via pycocotools.

    >>> encode_counts_string([13, 3, 3, 3, 8], 6, 5)
    b'=3305'
    """
    height, width = check_int("height", height), check_int("width", width)
    rle = {"size": [int(height), int(width)], "counts": np.asarray(counts, np.uint32)}
    return mask_utils.frPyObjects(rle, int(height), int(width))["counts"]


def to_coco_rle(masks: CompactMask, compressed: bool = True) -> list[dict[str, Any]]:
    """Full-image COCO RLE of every mask, from the runs.

    Args:
        masks: the masks.
        compressed: ``True`` gives pycocotools' compressed ``bytes`` counts
            (what ``pycocotools.mask.encode`` returns); ``False`` gives the
            uncompressed form with a list of ints.

    Returns:
        One ``{'size': [h, w], 'counts': ...}`` dict per mask.

    >>> import numpy as np, supervision as sv
    >>> empty = sv.CompactMask.from_dense(np.zeros((1, 3, 3), bool),
    ...     np.array([[0, 0, 2, 2]]), (3, 3))
    >>> to_coco_rle(empty), to_coco_rle(empty, compressed=False)
    ([{'size': [3, 3], 'counts': b'9'}], [{'size': [3, 3], 'counts': [9]}])
    """
    check_compact(masks)
    height, width = (int(v) for v in masks._image_shape)
    size = [height, width]
    all_counts = [coco_counts(masks, i) for i in range(len(masks))]
    if not compressed:
        return [{"size": list(size), "counts": c.tolist()} for c in all_counts]
    if not all_counts:
        return []
    objs = [{"size": size, "counts": c.astype(np.uint32)} for c in all_counts]
    encoded = mask_utils.frPyObjects(objs, height, width)
    return [{"size": list(size), "counts": e["counts"]} for e in encoded]


def decode_counts_string(counts: str | bytes) -> npt.NDArray[np.int64]:
    """Decode COCO's compressed counts string to run lengths (vectorised).

    Each count is a little-endian group of 6-bit characters (offset by 48):
    5 data bits per character, 0x20 means "more follows", and 0x10 in the last
    character is the sign. From the third count on, each value is stored as a
    difference to the count two places earlier.

    Raises:
        InvalidMaskError: a character outside '0'..'o', a truncated group, a
            group too long for a 64-bit count, or a count whose delta
            decoding leaves [-2**62, 2**62] (checked, so it never wraps).

    >>> decode_counts_string(b'=3305').tolist()
    [13, 3, 3, 3, 8]
    """
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidMaskError("COCO RLE counts string is not ASCII") from exc
    if not isinstance(counts, (bytes, bytearray)):
        raise InvalidMaskError(
            f"COCO RLE counts must be str, bytes or a list of ints, got {type(counts).__name__}"
        )
    raw = np.frombuffer(bytes(counts), dtype=np.uint8).astype(np.int64) - 48
    if raw.size == 0:
        return np.empty(0, dtype=np.int64)
    if int(raw.min()) < 0 or int(raw.max()) > 63:
        bad = bytes(counts)[int(np.flatnonzero((raw < 0) | (raw > 63))[0])]
        raise InvalidMaskError(
            f"COCO RLE counts string has an invalid character {chr(bad)!r}"
        )
    more = (raw & 0x20) != 0
    if more[-1]:
        raise InvalidMaskError("COCO RLE counts string is truncated (last group unfinished)")
    ends = np.flatnonzero(~more)
    group_starts = np.concatenate(([0], ends[:-1] + 1))
    group_len = ends - group_starts + 1
    if int(group_len.max()) > 12:
        raise InvalidMaskError("COCO RLE counts string has a count too large for 64 bits")
    shift = 5 * (np.arange(raw.size) - np.repeat(group_starts, group_len))
    values = np.add.reduceat((raw & 0x1F) << shift, group_starts)
    negative = (raw[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * group_len))
    # Undo the delta coding: x[i] += x[i-2] for i > 2, i.e. running sums over
    # the odd indices (1, 3, 5, ...) and over the even indices from 2 on.
    # Each value is in [-2**60, 2**60), so while every running sum stays in
    # [-2**62, 2**62] the next one cannot wrap int64: the first running sum out
    # of that range is exact, and is refused.
    out = values.copy()
    out[1::2] = np.cumsum(values[1::2])
    out[2::2] = np.cumsum(values[2::2])
    if out.size and int(np.abs(out).max()) > MAX_COUNT:
        first = int(np.flatnonzero(np.abs(out) > MAX_COUNT)[0])
        raise InvalidMaskError(
            f"COCO RLE counts string decodes count {first} to {int(out[first])}: too large (beyond 2**62)"
        )
    return out


def _counts_array(raw: Any) -> npt.NDArray[np.int64]:
    """Run lengths of uncompressed or compressed counts, validated as integers."""
    if isinstance(raw, (str, bytes, bytearray)):
        return decode_counts_string(raw)
    if isinstance(raw, (list, tuple)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in raw
    ):
        # Python ints: numpy would make floats or objects of the ones int64 cannot hold.
        beyond = [int(v) for v in raw if not -(2**63) <= int(v) < 2**63]
        if beyond:
            raise InvalidMaskError(f"COCO RLE counts hold {beyond[0]}: too large for a 64-bit count")
        return np.array([int(v) for v in raw], dtype=np.int64)
    try:
        arr = np.asarray(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidMaskError(f"COCO RLE counts cannot be read: {exc}") from exc
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidMaskError(
            "COCO RLE counts must be a flat list of integers or a compressed string"
        )
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidMaskError(f"COCO RLE counts hold {int(arr.max())}: too large for a 64-bit count")
    return arr.astype(np.int64)


def _rle_size(rle: Any) -> tuple[int, int]:
    """Validated ``(h, w)`` of one COCO RLE mapping."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InvalidMaskError("each COCO RLE must be a mapping with 'size' and 'counts'")
    return check_hw(rle["size"], "COCO RLE size")


def from_coco_rle(
    rles: Sequence[Mapping[str, Any]], image_shape: tuple[int, int] | None = None
) -> CompactMask:
    """CompactMask of full-image COCO RLEs (either form), with tight crops.

    Each mask's crop is its tight foreground bounding box; an all-background
    mask becomes supervision's canonical 1x1 background crop at the origin.

    Args:
        rles: COCO RLE dicts, all of one size.
        image_shape: ``(h, w)``; required when ``rles`` is empty, otherwise it
            must equal every RLE's size.

    Raises:
        InvalidMaskError: malformed RLE (counts not summing to h*w, negative
            runs, a bad string), or sizes that disagree.

    >>> m = from_coco_rle([{'size': [6, 5], 'counts': b'=3305'}])
    >>> m.offsets.tolist(), m._crop_shapes.tolist(), m.area.tolist()
    ([[2, 1]], [[3, 2]], [6])
    """
    rles = list(rles)
    if image_shape is None:
        if not rles:
            raise InvalidMaskError("image_shape is required when there are no RLEs")
        image_shape = _rle_size(rles[0])
    height, width = check_hw(image_shape)
    parts = []
    for i, rle in enumerate(rles):
        size = _rle_size(rle)
        if size != (height, width):
            raise InvalidMaskError(
                f"COCO RLE {i} has size {list(size)} but the image is {[height, width]}"
            )
        counts = check_run_counts(_counts_array(rle["counts"]), height * width, f"COCO RLE {i}")
        starts, stops = runs_to_intervals(counts)
        parts.append(stream_to_tight_crop(starts, stops, height))
    return build_compact(parts, (height, width))
