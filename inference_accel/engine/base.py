"""What every engine offers the pipeline.

An engine owns ``slots`` preallocated buffer sets (two for a depth-2
pipeline): one input tensor (N, 3, H, W) that preprocessing writes into, one
frame per batch index, and the three output tensors that :meth:`Engine.run`
fills. N is the engine's ``batch_size``, chosen when it opens and checked
against what the model takes (``spec.batch``); every call runs all N
indices (a caller with fewer frames leaves the rest stale and ignores their
outputs). Nothing is allocated per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from inference_accel.engine.io_spec import IOSpec


@dataclass
class Buffers:
    """One slot's tensors: ``input`` (N,3,H,W) and ``dets`` (N,Q,4), ``labels`` (N,Q,C), ``masks`` (N,Q,h,w)."""

    input: torch.Tensor
    dets: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


class Engine(Protocol):
    name: str
    spec: IOSpec
    device: torch.device
    batch_size: int
    slots: list[Buffers]

    def run(self, slot: int) -> Buffers:
        """Run the model on all ``batch_size`` frames of ``slots[slot].input``; fill and return that slot."""
        ...
