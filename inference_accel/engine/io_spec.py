"""RF-DETR-Seg's I/O contract, checked for any engine before it runs.

One float input (B, 3, H, W); outputs ``dets`` (B, Q, 4), ``labels``
(B, Q, C) and ``masks`` (B, Q, H/4, W/4) sharing B and Q. A model that breaks
the contract gets one :class:`~inference_accel.errors.InvalidModelError`
listing what it has instead.

The batch dimension B is read from the input: a positive int is a fixed
batch; a symbolic name, None or -1 a dynamic one (any size from 1 up; a
TensorRT engine narrows it to its optimisation profile's range, see
:func:`~inference_accel.engine.tensorrt_engine.profile_batch_range`). An
output whose B is fixed must equal a fixed input B. :meth:`BatchRange.check`
refuses a batch size the model does not take, naming both.

>>> spec = check_io([("input", (1, 3, 312, 312))],
...                 [("dets", (1, 100, 4)), ("labels", (1, 100, 91)), ("masks", (1, 100, 78, 78))])
>>> spec.input_hw, spec.num_queries, spec.num_classes, spec.mask_hw, spec.batch.describe()
((312, 312), 100, 91, (78, 78), 'fixed batch 1')
>>> dynamic = check_io([("input", ("batch", 3, 32, 32))],
...                    [("dets", ("batch", 5, 4)), ("labels", ("batch", 5, 4)), ("masks", ("batch", 5, 8, 8))])
>>> dynamic.batch.describe(), dynamic.batch.check(4)
('dynamic batch (1 or more)', 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from inference_accel.arguments import check_positive_int
from inference_accel.errors import InvalidArgumentError, InvalidModelError

OUTPUT_NAMES = ("dets", "labels", "masks")


@dataclass(frozen=True)
class BatchRange:
    """The batch sizes a model takes: ``minimum`` to ``maximum`` (None: no upper bound).

    Fixed when ``minimum == maximum``; ``optimal`` is a TensorRT profile's
    ``opt`` (None elsewhere).

    >>> BatchRange(1, 1).check(2)
    Traceback (most recent call last):
    ...
    inference_accel.errors.InvalidArgumentError: batch_size 2 is not accepted by this model: it has a fixed batch 1; use batch_size=1, or export the model with a dynamic batch
    >>> BatchRange(1, 8, optimal=4).describe()
    'dynamic batch 1 to 8 (optimal 4)'
    """

    minimum: int
    maximum: int | None
    optimal: int | None = None

    @property
    def fixed(self) -> bool:
        return self.maximum == self.minimum

    def describe(self) -> str:
        if self.fixed:
            return f"fixed batch {self.minimum}"
        if self.maximum is None:
            return f"dynamic batch ({self.minimum} or more)"
        opt = f" (optimal {self.optimal})" if self.optimal is not None else ""
        return f"dynamic batch {self.minimum} to {self.maximum}{opt}"

    def check(self, batch_size: object) -> int:
        """``batch_size`` as an int if the model takes it, else InvalidArgumentError naming both."""
        n = check_positive_int("batch_size", batch_size)
        if n < self.minimum or (self.maximum is not None and n > self.maximum):
            hint = f"; use batch_size={self.minimum}, or export the model with a dynamic batch" if self.fixed else ""
            raise InvalidArgumentError(
                f"batch_size {n} is not accepted by this model: it has a {self.describe()}{hint}"
            )
        return n


def _batch_dim(dim: object) -> int | None:
    """A fixed batch dimension as an int; None when it is dynamic (a name, None, -1, "dynamic")."""
    return int(dim) if isinstance(dim, int) and dim > 0 else None


@dataclass(frozen=True)
class IOSpec:
    input_name: str
    input_hw: tuple[int, int]
    num_queries: int
    num_classes: int
    mask_hw: tuple[int, int]
    batch: BatchRange = BatchRange(1, 1)


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
        elif (fixed := _batch_dim(shape[0])) is not None and any(
            _batch_dim(out[0]) not in (None, fixed) for out in (dets, labels, masks)
        ):
            problem = f"the outputs' batch dimension must equal the input's fixed batch {fixed}"
        else:
            fixed = _batch_dim(shape[0])
            return IOSpec(
                input_name=name,
                input_hw=(int(shape[2]), int(shape[3])),
                num_queries=int(dets[1]),
                num_classes=int(labels[2]),
                mask_hw=(int(masks[2]), int(masks[3])),
                batch=BatchRange(fixed, fixed) if fixed is not None else BatchRange(1, None),
            )
    raise InvalidModelError(
        f"not an RF-DETR-Seg model: {problem} (inputs: {_describe(inputs)}; outputs: {_describe(outputs)})"
    )
