"""Host side of the fused Triton preprocessing kernel.

:class:`TritonPreprocessor` owns what a launch needs besides the frame and the
output:

- the Pillow coefficient tables of each axis, uploaded once per (source size,
  resized size) and per device, then reused (``pillow_resize.coefficients``
  computes them in float64 on the host);
- the 3 x 256 normalisation table of each
  :class:`~inference_accel.preprocess.normalization.Normalization` (scale,
  mean/std; default ImageNet), computed with torch's float32 ops exactly as
  the reference (``to_tensor``, scale, ``normalize``), per device; the
  colour order is the kernel's ``src_bgr`` (plane ``c`` reads channel ``2 - c``);
- for host (numpy) frames on a CUDA device: one pinned staging buffer and one
  device buffer, grown only when a bigger frame arrives, and an asynchronous
  host-to-device copy on torch's current stream; on an integrated GPU (Jetson)
  the kernel reads the pinned staging buffer in place instead
  (:mod:`inference_accel.host_memory`).

The launch goes on torch's current stream, so it can be captured in a CUDA
graph once every table for the frame size is cached (call it once before
capturing; the first call per size allocates and uploads). After warm-up a
frame of a known size allocates nothing.

Under ``TRITON_INTERPRET=1`` the same code runs on CPU tensors (no pinned
memory, no copy: the kernel reads the numpy frame in place). That is how the
tests exercise it on machines without a GPU.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from inference_accel import host_memory
from inference_accel.preprocess import pillow_resize
from inference_accel.preprocess.geometry import Geometry
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.normalization import resolve as resolve_normalization
# Re-exported for existing importers (the API gate); their home is triton_common.
from inference_accel.triton_common import interpreter_active, normalization_lut  # noqa: F401

OUT_DTYPES = (torch.float32, torch.float16)


def packed_table(in_size: int, out_size: int) -> np.ndarray:
    """int32 (out_size, 2 + taps): ``[xmin, xsize, coef...]`` per output index.

    The kernel's table layout. ``taps`` is the widest row (``max xsize``);
    shorter rows are zero-padded.
    """
    tables = pillow_resize.coefficients(in_size, out_size)
    taps = tables.max_taps
    packed = np.zeros((out_size, 2 + taps), np.int32)
    packed[:, 0] = tables.xmin
    packed[:, 1] = tables.xsize
    packed[:, 2:] = tables.coef[:, :taps]
    return packed


class _Slot:
    """One pinned staging buffer, its device twin, and the event behind their last use."""

    def __init__(self) -> None:
        self.staging: torch.Tensor | None = None  # pinned, flat uint8
        self.device_frame: torch.Tensor | None = None  # flat uint8 on the device
        self.done = None  # torch.cuda.Event recorded after the kernel that read them


class TritonPreprocessor:
    """Launches ``pil_resize_normalize_kernel``; caches tables and staging buffers.

    One instance serves any number of frame sizes. Not thread-safe for
    concurrent calls on the same instance (the staging buffer is shared); the
    module-level :func:`default_preprocessor` is guarded by a lock in
    :func:`launch`.
    """

    def __init__(self) -> None:
        self._tables: dict[tuple[str, int, int], torch.Tensor] = {}
        self._luts: dict[tuple[str, Normalization], torch.Tensor] = {}
        self._slots = (_Slot(), _Slot())
        self._next_slot = 0
        self._pending: _Slot | None = None  # slot used by the launch in progress
        self.read_in_place = False  # the last upload handed the kernel mapped pinned memory (zero copy)
        self.lock = threading.Lock()

    # -- cached device data ------------------------------------------------
    def table(self, device: torch.device, in_size: int, out_size: int) -> torch.Tensor:
        key = (str(device), int(in_size), int(out_size))
        cached = self._tables.get(key)
        if cached is None:
            cached = torch.from_numpy(packed_table(in_size, out_size)).to(device)
            self._tables[key] = cached
        return cached

    def lut(self, device: torch.device, normalization: Normalization | None = None) -> torch.Tensor:
        """float32 (3, 256) table of ``normalization`` (None: ImageNet) on ``device``, cached."""
        normalization = resolve_normalization(normalization)
        key = (str(device), normalization)
        cached = self._luts.get(key)
        if cached is None:
            cached = normalization_lut(device, normalization)
            self._luts[key] = cached
        return cached

    # -- frame upload ------------------------------------------------------
    def upload(self, frame: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
        """The frame as a uint8 (H, W, 3) tensor on ``device``.

        A tensor already on ``device`` is used as is (any strides). A numpy
        frame goes to a CPU device without a copy (interpreter), or to a CUDA
        device through a pinned staging slot and an async copy on the current
        stream. Two slots alternate, so the host fills one while the copy and
        kernel of the previous frame may still be queued; a slot is reused
        only after the event recorded behind its last kernel has completed.
        """
        self._pending = None
        self.read_in_place = False
        if isinstance(frame, torch.Tensor):
            if frame.device != device:
                raise ValueError(f"frame tensor is on {frame.device}, output on {device}")
            return frame
        if device.type == "cpu":
            if any(s < 0 for s in frame.strides):
                frame = np.ascontiguousarray(frame)
            return torch.from_numpy(frame)
        nbytes = int(frame.size)
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        if slot.done is not None:
            slot.done.synchronize()  # its last copy and kernel are finished
        if slot.staging is None or slot.staging.numel() < nbytes:
            slot.staging = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        if slot.done is None:
            slot.done = torch.cuda.Event()
        if host_memory.zero_copy_reason(device) is None:  # integrated GPU: read the pinned frame in place
            staging = slot.staging[:nbytes]
            np.copyto(staging.numpy().reshape(frame.shape), frame)
            self._pending = slot
            self.read_in_place = True
            return staging.view(frame.shape)
        if slot.device_frame is None or slot.device_frame.numel() < nbytes or slot.device_frame.device != device:
            slot.device_frame = torch.empty(nbytes, dtype=torch.uint8, device=device)
        staging = slot.staging[:nbytes]
        np.copyto(staging.numpy().reshape(frame.shape), frame)
        device_frame = slot.device_frame[:nbytes]
        device_frame.copy_(staging, non_blocking=True)  # on the current stream
        self._pending = slot
        return device_frame.view(frame.shape)

    # -- launch ------------------------------------------------------------
    def __call__(
        self,
        frame: np.ndarray | torch.Tensor,
        out: torch.Tensor,
        index: int,
        geometry: Geometry,
        bgr: bool = True,
        vertical_first: bool | None = None,
        normalization: Normalization | None = None,
    ) -> None:
        """Preprocess ``frame`` into ``out[index]`` (``out``: (N, 3, H, W) fp32/fp16).

        ``geometry`` places the resized frame on the canvas (any mode).
        ``bgr``: the frame's order; ``normalization``: the model's constants
        and channel order (None: ImageNet, RGB).
        ``vertical_first`` overrides the installed Pillow's pass order (tests).
        """
        import triton

        from inference_accel.kernels.preprocess import BLOCK_X, BLOCK_Y, PIL_RESIZE_NORMALIZE, PRECISION_BITS

        if out.dtype not in OUT_DTYPES:
            raise ValueError(f"out must be float32 or float16, got {out.dtype}")
        device = out.device
        frame_hw = tuple(int(s) for s in frame.shape[:2])
        rh, rw = geometry.resized_hw
        ch, cw = geometry.input_hw
        if vertical_first is None:
            vertical_first = pillow_resize.vertical_first(frame_hw, (rh, rw))
        src = self.upload(frame, device)
        xtab = self.table(device, frame_hw[1], rw)
        ytab = self.table(device, frame_hw[0], rh)
        normalization = resolve_normalization(normalization)
        lut = self.lut(device, normalization)
        x0, y0 = geometry.content[0], geometry.content[1]
        PIL_RESIZE_NORMALIZE.launch(
            (triton.cdiv(cw, BLOCK_X), triton.cdiv(ch, BLOCK_Y)),
            src_ptr=src, xtab_ptr=xtab, ytab_ptr=ytab, lut_ptr=lut, out_ptr=out,
            src_sh=src.stride(0), src_sw=src.stride(1), src_sc=src.stride(2),
            resized_h=rh, resized_w=rw,
            taps_x=xtab.shape[1] - 2, taps_y=ytab.shape[1] - 2,
            canvas_h=ch, canvas_w=cw,
            off_y=y0, off_x=x0,
            out_sn=out.stride(0), out_sc=out.stride(1), out_sh=out.stride(2), out_sw=out.stride(3),
            index=int(index),
            src_bgr=1 if normalization.reverses(bgr) else 0,
            VERTICAL_FIRST=bool(vertical_first), BLOCK_Y=BLOCK_Y, BLOCK_X=BLOCK_X, PRECISION=PRECISION_BITS,
        )
        if self._pending is not None:
            self._pending.done.record(torch.cuda.current_stream(device))
            self._pending = None


_default: TritonPreprocessor | None = None
_default_lock = threading.Lock()


def default_preprocessor() -> TritonPreprocessor:
    """The process-wide :class:`TritonPreprocessor` (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TritonPreprocessor()
        return _default


def launch(
    frame: np.ndarray | torch.Tensor,
    out: torch.Tensor,
    index: int,
    geometry: Geometry,
    bgr: bool = True,
    vertical_first: bool | None = None,
    normalization: Normalization | None = None,
) -> None:
    """Run the kernel through the shared :class:`TritonPreprocessor` (thread-safe)."""
    pre = default_preprocessor()
    with pre.lock:
        try:
            pre(frame, out, index, geometry, bgr=bgr, vertical_first=vertical_first, normalization=normalization)
        except Exception as exc:
            if not pre.read_in_place:
                raise
            # The kernel could not read mapped pinned memory: copy from now on, and redo this frame.
            host_memory.disable(f"the preprocessing kernel failed on a mapped host frame ({type(exc).__name__}: {exc})")
            pre(frame, out, index, geometry, bgr=bgr, vertical_first=vertical_first, normalization=normalization)
