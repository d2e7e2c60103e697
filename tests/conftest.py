"""Test-wide setup.

No GPU exists on development or CI machines, so every Triton kernel runs
under the interpreter on CPU tensors. ``TRITON_INTERPRET`` must be set before
any kernel module is imported (``triton.jit`` reads it at decoration time).
AOT compilation for real GPUs runs in a subprocess with it unset.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from inference_accel import dispatch  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_dispatch_state():
    """Each test starts with no disabled fast path and no issued warning."""
    dispatch.reset_runtime_state()
    yield
    dispatch.reset_runtime_state()
