"""What every engine offers the pipeline.

An engine owns ``slots`` preallocated buffer sets (two for a depth-2
pipeline): one input tensor (1, 3, H, W) that preprocessing writes into, and
the three output tensors that :meth:`Engine.run` fills. Nothing is allocated
per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from inference_accel.engine.io_spec import IOSpec


@dataclass
class Buffers:
    """One slot's tensors: ``input`` (1,3,H,W) and ``dets`` (1,Q,4), ``labels`` (1,Q,C), ``masks`` (1,Q,h,w)."""

    input: torch.Tensor
    dets: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


class Engine(Protocol):
    name: str
    spec: IOSpec
    device: torch.device
    slots: list[Buffers]

    def run(self, slot: int) -> Buffers:
        """Run the model on ``slots[slot].input``; fill and return that slot."""
        ...
