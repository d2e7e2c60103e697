"""RF-DETR-Seg's I/O contract, checked for any engine before it runs.

One float input (B, 3, H, W); outputs ``dets`` (B, Q, 4), ``labels``
(B, Q, C) and ``masks`` (B, Q, H/4, W/4) sharing B and Q. A model that breaks
the contract gets one :class:`~inference_accel.errors.InvalidModelError`
listing what it has instead.

>>> spec = check_io([("input", (1, 3, 312, 312))],
...                 [("dets", (1, 100, 4)), ("labels", (1, 100, 91)), ("masks", (1, 100, 78, 78))])
>>> spec.input_hw, spec.num_queries, spec.num_classes, spec.mask_hw
((312, 312), 100, 91, (78, 78))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from inference_accel.errors import InvalidModelError

OUTPUT_NAMES = ("dets", "labels", "masks")


@dataclass(frozen=True)
class IOSpec:
    input_name: str
    input_hw: tuple[int, int]
    num_queries: int
    num_classes: int
    mask_hw: tuple[int, int]


def _describe(tensors: Sequence[tuple[str, Sequence[object]]]) -> str:
    return ", ".join(f"{name}{tuple(shape)}" for name, shape in tensors) or "none"


def check_io(
    inputs: Sequence[tuple[str, Sequence[object]]],
    outputs: Sequence[tuple[str, Sequence[object]]],
) -> IOSpec:
    """Validate names and shapes; dynamic dims may be strings, None or -1 except H, W, Q, C."""
    problem = None
    by_name = {name: tuple(shape) for name, shape in outputs}
    if len(inputs) != 1:
        problem = f"expected exactly 1 input, found {len(inputs)}"
    elif missing := [n for n in OUTPUT_NAMES if n not in by_name]:
        problem = f"missing output(s) {missing}"
    else:
        name, shape = inputs[0]
        shape = tuple(shape)
        dets, labels, masks = (by_name[n] for n in OUTPUT_NAMES)
        if len(shape) != 4 or shape[1] != 3:
            problem = f"input {name} must be (B, 3, H, W)"
        elif not all(isinstance(d, int) and d > 0 for d in shape[2:]):
            problem = f"input {name} must have a static H and W"
        elif len(dets) != 3 or dets[2] != 4:
            problem = "output dets must be (B, Q, 4)"
        elif len(labels) != 3 or len(masks) != 4:
            problem = "outputs labels must be (B, Q, C) and masks (B, Q, h, w)"
        elif not (isinstance(dets[1], int) and dets[1] == labels[1] == masks[1]):
            problem = "dets, labels and masks must share a static query count Q"
        elif not all(isinstance(d, int) and d > 0 for d in (labels[2], masks[2], masks[3])):
            problem = "labels' class count and masks' h, w must be static"
        else:
            return IOSpec(
                input_name=name,
                input_hw=(int(shape[2]), int(shape[3])),
                num_queries=int(dets[1]),
                num_classes=int(labels[2]),
                mask_hw=(int(masks[2]), int(masks[3])),
            )
    raise InvalidModelError(
        f"not an RF-DETR-Seg model: {problem} (inputs: {_describe(inputs)}; outputs: {_describe(outputs)})"
    )
