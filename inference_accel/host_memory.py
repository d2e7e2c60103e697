"""How a host frame reaches the GPU: one staged copy, or read in place (Jetson).

On a discrete GPU a numpy frame is copied into pinned staging memory and
then, asynchronously, into device memory, where the preprocessing kernel
reads it. On an *integrated* GPU (Jetson Orin: CPU and GPU share the same
DRAM) that second copy moves bytes from one place in the same memory to
another. There, pinned host memory is mapped into the GPU's address space,
so the kernel can read the staging buffer in place: **zero copy**.

The decision (:func:`zero_copy_reason`) is made once per device and says why
when zero copy is not used:

- ``INFERENCE_ACCEL_ZERO_COPY_FRAMES`` (:data:`ZERO_COPY_FLAG`): ``auto``
  (default: zero copy on an integrated GPU only), ``on`` (the same, and a
  discrete GPU is an error: it would read the frame over PCIe, once per
  filter tap), or ``off`` (always copy). Any other value is a
  :class:`~inference_accel.errors.FlagValueError`;
- the device must report ``is_integrated`` (``torch.cuda.get_device_properties``);
- the driver must hand out a device address for pinned host memory
  (``cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_DEVICE_POINTER)``, the same
  call Triton's launcher makes for every pointer argument), probed once on a
  small pinned buffer.

A kernel launch that still fails on a mapped frame switches zero copy off for
the process (:func:`disable`, one warning) and the frame is copied. Results
do not depend on the choice: the kernel reads the same bytes either way
(``parity/gpu_selfcheck.py`` compares both on an integrated GPU). This has not
run on a Jetson yet; its speed there is not measured.

>>> read_zero_copy_setting({})
'auto'
>>> zero_copy_reason_for(is_integrated=False, setting="auto", mapped_pointer_reason=None)
'discrete GPU: the frame is copied to device memory once (INFERENCE_ACCEL_ZERO_COPY_FRAMES=auto)'
>>> zero_copy_reason_for(is_integrated=True, setting="auto", mapped_pointer_reason=None) is None
True
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Mapping

import torch

from inference_accel.errors import FlagValueError

logger = logging.getLogger("inference_accel")

ZERO_COPY_FLAG = "INFERENCE_ACCEL_ZERO_COPY_FRAMES"
SETTINGS = ("auto", "on", "off")
# cuda.h: CUpointer_attribute
_CU_POINTER_ATTRIBUTE_DEVICE_POINTER = 3

_lock = threading.Lock()
_decisions: dict[str, str | None] = {}
_disabled: str | None = None


def read_zero_copy_setting(environ: Mapping[str, str] | None = None) -> str:
    """``auto``, ``on`` or ``off`` from :data:`ZERO_COPY_FLAG` (empty or unset: ``auto``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ZERO_COPY_FLAG, "").strip().lower()
    if raw == "":
        return "auto"
    if raw not in SETTINGS:
        raise FlagValueError(f"{ZERO_COPY_FLAG}={env[ZERO_COPY_FLAG]!r}: use one of {', '.join(SETTINGS)}")
    return raw


def zero_copy_reason_for(*, is_integrated: bool | None, setting: str, mapped_pointer_reason: str | None) -> str | None:
    """The rule, free of any device: None when the kernel may read the pinned frame in place.

    ``is_integrated``: the device's property (None: this torch does not report it).
    ``mapped_pointer_reason``: why the driver gave no device address for pinned
    memory (None: it did). ``on`` on a device that is not integrated raises.
    """
    if setting not in SETTINGS:
        raise FlagValueError(f"{ZERO_COPY_FLAG}={setting!r}: use one of {', '.join(SETTINGS)}")
    if setting == "off":
        return f"{ZERO_COPY_FLAG}=off"
    if not is_integrated:
        what = "this torch does not report is_integrated" if is_integrated is None else "discrete GPU"
        if setting == "on":
            raise FlagValueError(
                f"{ZERO_COPY_FLAG}=on needs an integrated GPU (Jetson), but {what}: a discrete GPU would read "
                f"the frame over PCIe once per filter tap; use auto or off"
            )
        return f"{what}: the frame is copied to device memory once ({ZERO_COPY_FLAG}={setting})"
    if mapped_pointer_reason is not None:
        return f"pinned host memory is not mapped for the GPU ({mapped_pointer_reason}); the frame is copied"
    return None


def _libcuda():
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def mapped_pointer_reason(device: torch.device) -> str | None:
    """Why pinned host memory has no device address on ``device`` (None: it has one).

    Allocates 4 KiB of pinned memory and asks the driver for its device
    pointer, as Triton's launcher does for each pointer argument.
    """
    lib = _libcuda()
    if lib is None:
        return "libcuda not found"
    with torch.cuda.device(device):
        probe = torch.empty(4096, dtype=torch.uint8, pin_memory=True)
        device_pointer = ctypes.c_uint64(0)
        status = lib.cuPointerGetAttribute(
            ctypes.byref(device_pointer),
            ctypes.c_int(_CU_POINTER_ATTRIBUTE_DEVICE_POINTER),
            ctypes.c_uint64(probe.data_ptr()),
        )
    if status != 0:
        return f"cuPointerGetAttribute returned CUresult {status}"
    if device_pointer.value == 0:
        return "cuPointerGetAttribute gave a null device pointer"
    return None


def zero_copy_reason(device: torch.device) -> str | None:
    """For this CUDA device: None when frames are read in place, else why they are copied (cached)."""
    if _disabled is not None:
        return _disabled
    key = str(device)
    with _lock:
        if key in _decisions:
            return _decisions[key]
    setting = read_zero_copy_setting()
    properties = torch.cuda.get_device_properties(device)
    integrated = getattr(properties, "is_integrated", None)
    integrated = None if integrated is None else bool(integrated)
    pointer_reason = mapped_pointer_reason(device) if integrated and setting != "off" else None
    reason = zero_copy_reason_for(is_integrated=integrated, setting=setting, mapped_pointer_reason=pointer_reason)
    with _lock:
        _decisions[key] = reason
    if reason is None:
        logger.info("%s is an integrated GPU: the preprocessing kernel reads host frames in place (zero copy)", key)
    return reason


def disable(reason: str) -> None:
    """Switch zero copy off for the process (a launch on a mapped frame failed); warn once."""
    global _disabled
    with _lock:
        if _disabled is not None:
            return
        _disabled = f"zero copy switched off: {reason}"
    logger.warning("%s; host frames are copied to device memory from now on", _disabled)


def reset() -> None:
    """Forget every decision (tests, or after changing the environment)."""
    global _disabled
    with _lock:
        _decisions.clear()
        _disabled = None
