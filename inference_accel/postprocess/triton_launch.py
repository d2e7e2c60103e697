"""Host side of the sparse postprocessing kernels (``inference_accel.kernels.postprocess``).

:class:`TritonPostprocessor` owns every device buffer the kernels write,
sized once and reused (grown only when a bigger image, query count or
detection count arrives):

- scratch: scores (B*Q*C float32), ranks (B*Q*C int32), per-(image,
  detection, column) run counts and their inclusive prefix sum (B x max_det
  x out_w int32 each);
- the **packet**, one int32 buffer the host copies back in a single
  device-to-host copy: a header (overflow flag, total runs), one detection
  count per image, per-detection (query, class), (score, x1, y1, x2, y2) as
  float32 bits, output bounds, run ranges, then ``capacity`` runs of (x,
  y_start, y_stop) shared by the batch's images.

:meth:`TritonPostprocessor.launch_batch` postprocesses B images of one
geometry (a batched engine's outputs) with one launch of each kernel, whose
last grid axis is the image; :meth:`finish_batch` gives one ``sv.Detections``
per image. :meth:`launch` / :meth:`finish` are the batch of one.
:meth:`TritonPostprocessor.launch_masks_batch` runs only the mask kernels
for detections chosen elsewhere (inference-models' stock selection), in
rfdetr's or the stock mask semantics (``mask_mode``) on a given logit
window and canvas; :meth:`finish_masks` gives each detection's crop runs.

:meth:`TritonPostprocessor.launch` enqueues everything on torch's current
stream (``torch.sigmoid``, two selection launches, bounds, run count,
``torch.cumsum``, run emission, a few slice copies into the packet) without
reading anything back, so after one warm-up call per size it allocates
nothing and can be captured in a CUDA graph. :meth:`finish` copies the
packet and builds ``sv.Detections`` with an ``sv.CompactMask``; when the runs
overflowed the capacity it raises :class:`RunsOverflow` and the caller falls
back to the reference for that frame.

Tap tables come from ``taps.axis_table`` (torch's index and weight
arithmetic of the device being reproduced), uploaded once per (window size,
output size, arithmetic) and device. Every launch goes through its kernel's
contract (``kernels/postprocess.py``), by keyword.

Under ``TRITON_INTERPRET=1`` the same code runs on CPU tensors; that is how
the tests exercise it without a GPU.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import supervision as sv
import torch

from inference_accel.postprocess.crop_rle import CropRuns, build_compact_mask, intervals_to_crop_runs
from inference_accel.postprocess.mask_geometry import MaskPlacement, mask_placement
from inference_accel.postprocess.reference import selection_to_detections
from inference_accel.postprocess.selection import Selection
from inference_accel.postprocess.taps import CUDA, FMA, PLAIN, axis_table, torch_cpu_arith
from inference_accel.preprocess.geometry import Geometry
# interpreter_active re-exported: the API gate imports it from here.
from inference_accel.triton_common import interpreter_active, triton_type  # noqa: F401

DEFAULT_CAPACITY = 1 << 18  # runs per frame (3 MB of packet)


class RunsOverflow(RuntimeError):
    """The frame produced more runs than the buffer holds (fall back to the reference)."""


def device_arith(device: torch.device) -> int | None:
    """The kernel's ``ARITH`` for tensors on ``device`` (None: unknown order)."""
    from inference_accel.kernels import postprocess as k

    if device.type == "cuda":
        return k.ARITH_CUDA
    arith = torch_cpu_arith()
    return {FMA: k.ARITH_CPU_FMA, PLAIN: k.ARITH_CPU_PLAIN}.get(arith)


@dataclass
class _Layout:
    """Word offsets of the packet's fields for one (max_det, capacity, batch).

    Every per-detection field holds ``batch * max_det`` rows, image after image.
    """

    max_det: int
    capacity: int
    batch: int = 1

    def __post_init__(self) -> None:
        from inference_accel.kernels.postprocess import HEADER_WORDS

        d = self.max_det * self.batch
        self.counts = HEADER_WORDS
        self.det_i = self.counts + self.batch
        self.det_f = self.det_i + 2 * d
        self.bounds = self.det_f + 5 * d
        self.range_start = self.bounds + 4 * d
        self.range_end = self.range_start + d
        self.runs = self.range_end + d
        self.words = self.runs + 3 * self.capacity


@dataclass
class Pending:
    """A launched batch (of one frame, or of B): what :meth:`TritonPostprocessor.finish_batch` needs."""

    packet: torch.Tensor
    layout: _Layout
    frame_hw: tuple[int, int]
    class_names: Sequence[str] | None
    event: object = None


class TritonPostprocessor:
    """Launches the postprocessing kernels; caches tables and buffers per device.

    ``interpreter_tiles``: on CPU tensors (the interpreter) the run kernel
    takes the contract's interpreter-only tiles; False launches the GPU's
    tiles there too (tests).
    """

    interpreter_tiles: bool = True

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = int(capacity)
        self._tables: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._maps: dict[tuple, torch.Tensor] = {}
        self._buffers: dict[str, dict[str, torch.Tensor]] = {}
        self._host: dict[str, torch.Tensor] = {}
        self.lock = threading.Lock()

    # -- cached device data ----------------------------------------------------
    def tables(
        self, device: torch.device, in_size: int, out_size: int, arith: int, mode: int = 0
    ) -> tuple[torch.Tensor, ...]:
        """(i0, i1, w0, w1) of one axis on ``device``, in the order of the kernel's ``arith``.

        Stock mode (``mode=MODE_STOCK``): (first, last, weights (out, TAPS),
        the same weights again), from ``stock_cuda_model.tap_table``; the axis
        must pass ``stock_cuda_model.kernel_axis_reason`` (ValueError otherwise).
        """
        from inference_accel.kernels import postprocess as k

        key = (str(device), in_size, out_size, arith, mode)
        cached = self._tables.get(key)
        if cached is None and mode == k.MODE_STOCK:
            from inference_accel.postprocess.stock_cuda_model import tap_table

            t = tap_table(in_size, out_size)
            if np.any(np.diff(t.first) < 0) or np.any(np.diff(t.last) < 0):  # the bounds search needs both sorted
                raise ValueError(f"stock tap windows of {in_size} -> {out_size} are not monotone")
            weights = torch.from_numpy(np.ascontiguousarray(t.weights).reshape(-1).copy()).to(device)
            cached = (
                torch.from_numpy(t.first.astype(np.int32)).to(device),
                torch.from_numpy(t.last.astype(np.int32)).to(device),
                weights,
                weights,
            )
            self._tables[key] = cached
        if cached is None:
            order = {k.ARITH_CPU_FMA: FMA, k.ARITH_CPU_PLAIN: PLAIN, k.ARITH_CUDA: CUDA}[arith]
            t = axis_table(in_size, out_size, order)
            cached = (
                torch.from_numpy(t.i0.astype(np.int32)).to(device),
                torch.from_numpy(t.i1.astype(np.int32)).to(device),
                torch.from_numpy(t.w0.copy()).to(device),
                torch.from_numpy(t.w1.copy()).to(device),
            )
            self._tables[key] = cached
        return cached

    def class_map(
        self, device: torch.device, num_model_classes: int, class_mapping: np.ndarray | None, num_classes: int | None
    ) -> torch.Tensor:
        if class_mapping is not None:
            table = np.asarray(class_mapping, dtype=np.int64)
        else:
            table = np.arange(num_model_classes, dtype=np.int64)
            if num_classes is not None:
                table[table >= num_classes] = -1
        table = np.where(table < 0, -1, table).astype(np.int32)
        if table.size == 0:
            table = np.full(1, -1, np.int32)
        key = (str(device), table.tobytes())
        cached = self._maps.get(key)
        if cached is None:
            cached = torch.from_numpy(table).to(device)
            self._maps[key] = cached
        return cached

    def _buffer(self, device: torch.device, name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
        pool = self._buffers.setdefault(str(device), {})
        buf = pool.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype:
            buf = torch.empty(max(numel, 1), dtype=dtype, device=device)
            pool[name] = buf
        return buf[:numel]

    def poison(self) -> None:
        """Fill every work buffer with garbage (-1 / NaN): a check that a replay rewrites them."""
        for pool in self._buffers.values():
            for buf in pool.values():
                buf.fill_(float("nan") if buf.is_floating_point() else -1)
        for host in self._host.values():
            host.fill_(-1)

    # -- launch -----------------------------------------------------------------
    def launch(
        self,
        logits: torch.Tensor,
        boxes_cxcywh: torch.Tensor,
        mask_logits: torch.Tensor,
        geometry: Geometry | None,
        frame_hw: tuple[int, int],
        **kw,
    ) -> Pending:
        """Enqueue one image, (Q, C), (Q, 4), (Q, Hm, Wm): the batch of one (see :meth:`launch_batch`)."""
        return self.launch_batch(
            logits.unsqueeze(0), boxes_cxcywh.unsqueeze(0), mask_logits.unsqueeze(0), geometry, frame_hw, **kw
        )

    def launch_batch(
        self,
        logits: torch.Tensor,
        boxes_cxcywh: torch.Tensor,
        mask_logits: torch.Tensor,
        geometry: Geometry | None,
        frame_hw: tuple[int, int],
        *,
        threshold: float = 0.4,
        max_detections: int = 300,
        class_mapping: np.ndarray | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        arith: int | None = None,
        record_event: bool = True,
    ) -> Pending:
        """Enqueue B images of one geometry, one launch per kernel; nothing is read back (see :meth:`finish_batch`).

        ``logits`` (B, Q, C), ``boxes_cxcywh`` (B, Q, 4), ``mask_logits``
        (B, Q, Hm, Wm): a batched engine's outputs. Every image maps to a
        frame of ``frame_hw`` through ``geometry``. The images share room
        for ``B * capacity`` runs (one image may take more than its share). ``record_event=False`` (CUDA-graph
        capture): no event is recorded behind the device-to-host copy; the
        caller synchronises itself.
        """
        import triton

        from inference_accel.kernels import postprocess as k

        device = logits.device
        mode, arith = _mode_and_arith(device, "rfdetr", arith)
        batch, nq, nc = (int(n) for n in logits.shape)
        qc = nq * nc
        fh, fw = int(frame_hw[0]), int(frame_hw[1])
        max_det = max(1, min(int(max_detections), nq))
        placement = mask_placement(geometry, mask_logits.shape[-2:], (fh, fw))
        cmap = self.class_map(device, nc, class_mapping, num_classes)
        rows = batch * max_det  # (image, detection) rows of the per-detection buffers
        prob = self._buffer(device, "prob", batch * qc, torch.float32)
        rank = self._buffer(device, "rank", batch * qc, torch.int32)
        # The kernels write separate buffers, copied into the packet at the
        # end: Triton's interpreter copies each pointer argument's storage in
        # and out, so views of one buffer passed as two arguments clobber
        # each other there.
        count = self._buffer(device, "count", batch, torch.int32)
        det_i = self._buffer(device, "det_i", 2 * rows, torch.int32)
        det_f = self._buffer(device, "det_f", 5 * rows, torch.float32)

        flat_logits = logits.reshape(batch, qc)
        if flat_logits.dtype != torch.float32:
            flat_logits = flat_logits.float()
        if device.type == "cuda":
            torch.sigmoid(flat_logits, out=prob.view(batch, qc))  # elementwise on CUDA: one call for the batch
        else:
            # torch's CPU sigmoid computes a vectorised body and a scalar tail,
            # which may differ by an ulp: image by image, as the per-image
            # reference calls it.
            for image in range(batch):
                torch.sigmoid(flat_logits[image], out=prob[image * qc : (image + 1) * qc])
        boxes = boxes_cxcywh
        if boxes.dtype != torch.float32 or not boxes.is_contiguous():
            boxes = boxes.float().contiguous()
        stretch = geometry is None or geometry.is_stretch
        if stretch:
            geo = (1, 0, 0, 0, 0, 1.0, 1.0)
        else:
            ih, iw = geometry.input_hw
            x0, y0 = geometry.content[:2]
            kx, ky = (float(np.float32(scale)) for scale in geometry.content_scale)
            geo = (0, iw, ih, x0, y0, kx, ky)
        map_len = int(cmap.numel())
        sel_grid = (triton.cdiv(qc, k.SEL_BLOCK), batch)
        k.SELECT_RANK.launch(
            sel_grid,
            prob_ptr=prob, map_ptr=cmap, rank_ptr=rank,
            qc=qc, num_classes=nc, num_queries=nq, threshold=float(threshold), map_len=map_len,
            BLOCK=k.SEL_BLOCK,
        )
        k.SELECT_EMIT.launch(
            sel_grid,
            rank_ptr=rank, prob_ptr=prob, map_ptr=cmap, boxes_ptr=boxes,
            count_ptr=count, det_i_ptr=det_i, det_f_ptr=det_f,
            qc=qc, num_classes=nc, num_queries=nq, max_det=max_det, map_len=map_len,
            stretch=geo[0], frame_w=fw, frame_h=fh,
            in_w=geo[1], in_h=geo[2], content_x0=geo[3], content_y0=geo[4], kx=geo[5], ky=geo[6],
            BLOCK=k.SEL_BLOCK,
        )
        return self._enqueue_masks(
            mask_logits, count, det_i, det_f, placement, (fh, fw), mode, arith, max_det, class_names, record_event
        )

    def launch_masks_batch(
        self,
        mask_logits: torch.Tensor,
        queries: torch.Tensor,
        counts: torch.Tensor,
        placement: MaskPlacement,
        frame_hw: tuple[int, int],
        *,
        mask_mode: str = "stock",
        arith: int | None = None,
        record_event: bool = True,
    ) -> Pending:
        """Enqueue only the masks of detections chosen elsewhere: bounds and runs of B images.

        ``mask_logits`` (B, Q, Hm, Wm); ``queries`` int32 (B, D) on the same
        device: image b's detections are queries ``queries[b, :counts[b]]``
        (``counts`` int32 (B,), each <= D); the rest of a row is not read.
        ``placement``: the logit window, the size it is resized to and where
        that lands on the ``frame_hw`` canvas (parts outside are cut).
        ``mask_mode``: ``"stock"`` (inference-models' antialiased resize, torch
        CUDA's order) or ``"rfdetr"``. Fixed shapes, nothing read back: a
        warm call allocates nothing and can be captured. :meth:`finish_masks`
        gives each image's crop runs.
        """
        device = mask_logits.device
        mode, arith = _mode_and_arith(device, mask_mode, arith)
        batch, max_det = (int(n) for n in queries.shape)
        if int(mask_logits.shape[0]) != batch or counts.shape != (batch,):
            raise ValueError(
                f"queries {tuple(queries.shape)} and counts {tuple(counts.shape)} do not match "
                f"{int(mask_logits.shape[0])} images of mask logits"
            )
        max_det = max(1, max_det)
        rows = batch * max_det
        count = self._buffer(device, "count", batch, torch.int32)
        det_i = self._buffer(device, "det_i", 2 * rows, torch.int32)
        det_f = self._buffer(device, "det_f", 5 * rows, torch.float32)
        count.copy_(counts)
        pairs = det_i.view(batch, max_det, 2)
        if queries.shape[1]:
            pairs[:, :, 0].copy_(queries)
        pairs[:, :, 1].fill_(-1)  # no class: these detections were selected by the caller
        det_f.fill_(0.0)
        return self._enqueue_masks(
            mask_logits, count, det_i, det_f, placement, frame_hw, mode, arith, max_det, None, record_event
        )

    def _enqueue_masks(
        self,
        mask_logits: torch.Tensor,
        count: torch.Tensor,
        det_i: torch.Tensor,
        det_f: torch.Tensor,
        placement: MaskPlacement,
        frame_hw: tuple[int, int],
        mode: int,
        arith: int,
        max_det: int,
        class_names: Sequence[str] | None,
        record_event: bool,
    ) -> Pending:
        """Bounds, run count, prefix sum, run emission, the packet and its one copy to the host."""
        import triton

        from inference_accel.kernels import postprocess as k

        device = mask_logits.device
        batch = int(mask_logits.shape[0])
        fh, fw = int(frame_hw[0]), int(frame_hw[1])
        (r0, r1), (c0, c1) = placement.rows, placement.cols
        oh, ow = placement.out_hw
        top, left = placement.top_left
        vis = (max(0, -top), min(oh, fh - top), max(0, -left), min(ow, fw - left))
        ty0, ty1, wy0, wy1 = self.tables(device, r1 - r0, oh, arith, mode)
        tx0, tx1, wx0, wx1 = self.tables(device, c1 - c0, ow, arith, mode)
        capacity = self.capacity * batch  # the batch's images share their runs' room
        layout = _Layout(max_det, capacity, batch)
        rows = batch * max_det
        counts = self._buffer(device, "counts", rows * ow, torch.int32)
        incl = self._buffer(device, "incl", rows * ow, torch.int32)
        packet = self._buffer(device, "packet", layout.words, torch.int32)
        header = packet[: k.HEADER_WORDS]
        bounds = self._buffer(device, "bounds", 4 * rows, torch.int32)
        runs_buf = self._buffer(device, "runs", 3 * (capacity + 1), torch.int32)
        masks = mask_logits
        if triton_type(masks)[1:] not in k.MASK_DTYPES:
            masks = masks.float()  # what the reference reads; only the contract's dtypes are compiled
        window = dict(
            masks_ptr=masks, count_ptr=count, det_i_ptr=det_i,
            sm_b=masks.stride(0), sm_q=masks.stride(1), sm_h=masks.stride(2), sm_w=masks.stride(3),
            max_det=max_det, win_r0=r0, win_c0=c0,
        )
        k.MASK_BOUNDS.launch(
            (max_det, batch),
            **window,
            ty0_ptr=ty0, ty1_ptr=ty1, tx0_ptr=tx0, tx1_ptr=tx1, bounds_ptr=bounds,
            win_h=r1 - r0, win_w=c1 - c0, out_h=oh, out_w=ow,
            vis_r0=vis[0], vis_r1=vis[1], vis_c0=vis[2], vis_c1=vis[3],
            BLOCK_R=k.BOUNDS_BLOCK_R, BLOCK_W=k.MAX_MASK_SIDE, STEPS=k.SEARCH_STEPS,
        )
        # The interpreter pays per operation, not per element: big tiles there.
        if device.type == "cpu" and self.interpreter_tiles:
            block_r = block_c = k.INTERPRETER_RUNS_BLOCK
        else:
            block_r, block_c = k.RUNS_BLOCK_R, k.RUNS_BLOCK_C
        unchanged = (r1 - r0, c1 - c0) == (oh, ow)
        runs = dict(
            **window, bounds_ptr=bounds,
            ty0_ptr=ty0, ty1_ptr=ty1, wy0_ptr=wy0, wy1_ptr=wy1,
            tx0_ptr=tx0, tx1_ptr=tx1, wx0_ptr=wx0, wx1_ptr=wx1,
            counts_ptr=counts, incl_ptr=incl, runs_ptr=runs_buf,
            out_w=ow, frame_top=top, frame_left=left, capacity=capacity,
            # rfdetr: torch CUDA copies a window that is not resized (its CPU
            # kernel interpolates); stock: torchvision returns the input itself.
            copy_input=int(unchanged and (mode == k.MODE_STOCK or arith == k.ARITH_CUDA)),
            MODE=mode, ARITH=arith, BLOCK_R=block_r, BLOCK_C=block_c, TAPS=k.STOCK_TAPS,
        )
        runs_grid = (triton.cdiv(ow, block_c), max_det, batch)
        k.MASK_RUNS.launch(runs_grid, **runs, EMIT=False)
        torch.cumsum(counts, 0, dtype=torch.int32, out=incl)
        k.MASK_RUNS.launch(runs_grid, **runs, EMIT=True)
        per_det_counts = counts.view(rows, ow)
        per_det_incl = incl.view(rows, ow)
        torch.sub(
            per_det_incl[:, 0], per_det_counts[:, 0],
            out=packet[layout.range_start : layout.range_end],
        )
        packet[layout.range_end : layout.runs].copy_(per_det_incl[:, ow - 1])
        packet[layout.counts : layout.det_i].copy_(count)
        packet[layout.det_i : layout.det_f].copy_(det_i)
        packet[layout.det_f : layout.bounds].view(torch.float32).copy_(det_f)
        packet[layout.bounds : layout.range_start].copy_(bounds)
        packet[layout.runs : layout.words].copy_(runs_buf[: 3 * capacity])
        header[k.HDR_TOTAL : k.HDR_TOTAL + 1].copy_(incl[-1:])
        torch.gt(incl[-1:], capacity, out=header[k.HDR_OVERFLOW : k.HDR_OVERFLOW + 1])
        pending = Pending(packet, layout, (fh, fw), class_names)
        if device.type == "cuda":
            host = self._host.get(str(device))
            if host is None or host.numel() < layout.words:
                host = torch.empty(layout.words, dtype=torch.int32, pin_memory=True)
                self._host[str(device)] = host
            host = host[: layout.words]
            host.copy_(packet, non_blocking=True)  # the one device-to-host copy
            pending.packet = host
            if record_event:
                pending.event = torch.cuda.Event()
                pending.event.record()
        return pending

    # -- finish -----------------------------------------------------------------
    def finish(self, pending: Pending) -> sv.Detections:
        """Wait for the copy and build the one image's ``sv.Detections`` (CompactMask masks)."""
        (detections,) = self.finish_batch(pending)
        return detections

    def finish_batch(self, pending: Pending) -> list[sv.Detections]:
        """Wait for the copy and build each image's ``sv.Detections`` (CompactMask masks), in batch order.

        Raises :class:`RunsOverflow` when the batch's runs overflowed the capacity.
        """
        results = []
        for image in _read_packet(pending):
            count = image.count
            selection = Selection(
                query=torch.from_numpy(image.det_i[:count, 0].astype(np.int64)),
                class_id=torch.from_numpy(image.det_i[:count, 1].astype(np.int64)),
                confidence=torch.from_numpy(image.det_f[:count, 0].copy()),
                xyxy=torch.from_numpy(image.det_f[:count, 1:5].copy()),
            )
            mask = build_compact_mask(image.crops, pending.frame_hw)
            results.append(selection_to_detections(selection, mask, pending.class_names))
        return results

    def finish_masks(self, pending: Pending) -> list[list[CropRuns | None]]:
        """Wait for a :meth:`launch_masks_batch` copy; per image, each detection's crop runs (None: empty).

        Raises :class:`RunsOverflow` when the batch's runs overflowed the capacity.
        """
        return [image.crops for image in _read_packet(pending)]

    def finish_mask_intervals(self, pending: Pending) -> list[list[np.ndarray]]:
        """Like :meth:`finish_masks`, but each detection's raw foreground column intervals:
        int32 (k, 3) rows ``(x, y_start, y_stop)`` on the canvas, sorted by ``(x, y_start)``."""
        return [image.intervals for image in _read_packet(pending)]

    def __call__(self, *args, **kwargs) -> sv.Detections:
        """Launch and finish one image (thread-safe)."""
        with self.lock:
            pending = self.launch(*args, **kwargs)
            return self.finish(pending)

    def run_batch(self, *args, **kwargs) -> list[sv.Detections]:
        """Launch and finish a batch (thread-safe): the arguments of :meth:`launch_batch`."""
        with self.lock:
            pending = self.launch_batch(*args, **kwargs)
            return self.finish_batch(pending)


MASK_MODES = ("rfdetr", "stock")


def _mode_and_arith(device: torch.device, mask_mode: str, arith: int | None) -> tuple[int, int]:
    """The run kernel's (MODE, ARITH) for ``mask_mode`` on ``device``.

    Stock masks are torch CUDA's antialiased order wherever the kernel runs:
    ``ARITH_CUDA`` (hardware FMA) on a GPU, ``ARITH_CPU_FMA`` (the same FMA
    emulated) under the interpreter.
    """
    from inference_accel.kernels import postprocess as k

    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if mask_mode == "stock":
        if arith is None:
            arith = k.ARITH_CUDA if device.type == "cuda" else k.ARITH_CPU_FMA
        if arith not in (k.ARITH_CUDA, k.ARITH_CPU_FMA):
            raise ValueError("stock masks take ARITH_CUDA or ARITH_CPU_FMA (torch CUDA's FMA, emulated)")
        return k.MODE_STOCK, arith
    if arith is None:
        arith = device_arith(device)
        if arith is None:
            raise RuntimeError("torch's CPU bilinear arithmetic matches no known order")
    return k.MODE_RFDETR, arith


@dataclass
class _ImagePacket:
    """One image's part of a copied-back packet."""

    count: int
    det_i: np.ndarray  # (max_det, 2) int32: query, class
    det_f: np.ndarray  # (max_det, 5) float32: score, x1, y1, x2, y2
    intervals: list[np.ndarray]  # per detection, int32 (k, 3): (x, y_start, y_stop) frame pixels

    @property
    def crops(self) -> list[CropRuns | None]:
        return [intervals_to_crop_runs(r[:, 0], r[:, 1], r[:, 2]) for r in self.intervals]


def _read_packet(pending: Pending) -> list[_ImagePacket]:
    """Wait for the copy, check the overflow flag, split the packet per image."""
    from inference_accel.kernels import postprocess as k

    if pending.event is not None:
        pending.event.synchronize()
    words = pending.packet.numpy() if pending.packet.device.type == "cpu" else pending.packet.cpu().numpy()
    words = np.array(words, copy=True)
    lay = pending.layout
    total = int(words[k.HDR_TOTAL])
    if int(words[k.HDR_OVERFLOW]) or total > lay.capacity:
        raise RunsOverflow(f"{total} runs exceed the capacity of {lay.capacity}")
    rows = lay.batch * lay.max_det
    det_i = words[lay.det_i : lay.det_f].reshape(lay.batch, lay.max_det, 2)
    det_f = words[lay.det_f : lay.bounds].view(np.float32).reshape(lay.batch, lay.max_det, 5)
    starts = words[lay.range_start : lay.range_end].reshape(lay.batch, lay.max_det)
    ends = words[lay.range_end : lay.range_end + rows].reshape(lay.batch, lay.max_det)
    runs = words[lay.runs : lay.runs + 3 * max(total, 0)].reshape(-1, 3)
    images = []
    for image in range(lay.batch):
        count = int(words[lay.counts + image])
        intervals = [runs[s:e] for s, e in zip(starts[image, :count], ends[image, :count])]
        images.append(_ImagePacket(count, det_i[image], det_f[image], intervals))
    return images


_default: TritonPostprocessor | None = None


def default_postprocessor() -> TritonPostprocessor:
    global _default
    if _default is None:
        _default = TritonPostprocessor()
    return _default
