"""Compare two ``sv.Detections`` the way our parity claims are stated.

Boxes, scores and class ids identical; masks identical in every pixel. Masks
are compared one detection at a time (a dense array or a ``CompactMask``
each give one (H, W) plane per index), so an 8K frame never needs an
(N, H, W) array.

>>> import numpy as np, supervision as sv
>>> a = sv.Detections(xyxy=np.zeros((1, 4)), confidence=np.ones(1), class_id=np.zeros(1, int))
>>> compare_detections(a, a)
[]
"""

from __future__ import annotations

import numpy as np
import supervision as sv


def _mask_plane(mask: object, index: int) -> np.ndarray:
    return np.asarray(mask[index], dtype=bool)


def compare_detections(a: sv.Detections, b: sv.Detections, limit: int = 5) -> list[str]:
    """Differences between ``a`` and ``b`` as readable lines (empty list: identical)."""
    problems: list[str] = []
    if len(a) != len(b):
        return [f"detection count differs: {len(a)} vs {len(b)}"]
    for field in ("xyxy", "confidence", "class_id"):
        left, right = getattr(a, field), getattr(b, field)
        if (left is None) != (right is None):
            problems.append(f"{field} present in only one")
        elif left is not None and not np.array_equal(left, right):
            bad = np.argwhere(np.asarray(left) != np.asarray(right))[:limit]
            problems.append(f"{field} differs at {bad.tolist()}")
    if (a.mask is None) != (b.mask is None):
        problems.append("mask present in only one")
    elif a.mask is not None:
        for i in range(len(a)):
            pa, pb = _mask_plane(a.mask, i), _mask_plane(b.mask, i)
            if pa.shape != pb.shape:
                problems.append(f"mask {i} shape differs: {pa.shape} vs {pb.shape}")
            elif not np.array_equal(pa, pb):
                diff = int(np.count_nonzero(pa != pb))
                problems.append(f"mask {i}: {diff} pixel(s) differ")
            if len(problems) >= limit:
                break
    return problems
