"""Host side of the stock-mask Triton kernel (``inference_accel.kernels.stock_masks``).

The stock inference-models path turns each selected mask's logits into a
binary mask with ``torchvision...resize(logits, (H, W), BILINEAR) >
threshold``. On a CUDA tensor that resize is torch CUDA's antialiased kernel,
whose arithmetic :mod:`~inference_accel.postprocess.stock_cuda_model` models;
:func:`threshold_upsampled_triton` evaluates it with the Triton kernel, only
inside a crop of each mask, and returns the same
:class:`~inference_accel.integrations.stock_masks.Crop` objects as the CPU
module, so the integration pastes or RLE-encodes either alike.

Steps (all on the logits' device, two host syncs: the crop sizes, the result):

1. the crop of each mask: for ``threshold >= 0`` a pixel can exceed the
   threshold only if a logit of its tap window is ``> 0`` (weights are
   ``>= 0``; NaN and ``0 * inf`` give NaN, never above), so the crop is the
   output rows and columns whose windows meet the bounding box of the
   positive logits (the tables' windows are monotone: two searches per
   axis). A negative threshold takes the whole grid, a NaN one no pixel;
2. one launch over (column tiles, row tiles, masks) writes every crop's
   bytes into one packed uint8 buffer;
3. one copy back; each crop becomes a bool array, an all-zero crop None.

Equal sizes on both axes: torchvision returns the input itself, so the
mask is ``logits > threshold`` (a torch comparison, no kernel). Downsampling
on an axis is not reproduced (:func:`unsupported_reason`): the caller runs
the stock code and says why.

Not verified on a GPU: the kernel equals the CPU model of torch CUDA's
order bit for bit under Triton's interpreter (``tests/test_stock_masks_triton.py``);
that the model equals torch CUDA is read from its source and SASS, and
tested only where a GPU runs the ``gpu``-marked test.

The example takes the equal-size path, which launches no kernel (it runs anywhere):

>>> import torch
>>> crops = threshold_upsampled_triton(torch.tensor([[[-1.0, 2.0], [3.0, -4.0]]]), (2, 2))
>>> crops[0].y0, crops[0].x0, crops[0].rows.tolist()
(0, 0, [[False, True], [True, False]])
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from inference_accel.errors import InvalidArgumentError, InvalidMaskError
from inference_accel.integrations.stock_masks import Crop
from inference_accel.postprocess.stock_cuda_model import TapTable, kernel_axis_reason, tap_table
from inference_accel.triton_common import interpreter_active

_tables_lock = threading.Lock()
_device_tables: dict[tuple[str, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def unsupported_reason(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str | None:
    """Why the Triton path does not take a ``(h, w) -> (H, W)`` resize (None: it does).

    >>> unsupported_reason((78, 78), (1080, 1920)) is None
    True
    >>> unsupported_reason((78, 78), (40, 1920)).startswith("mask logits are downsampled")
    True
    """
    (h, w), (oh, ow) = in_hw, out_hw
    if (h, w) == (oh, ow):
        return None if min(h, w) >= 1 else f"empty resize {h}x{w} -> {oh}x{ow}"
    return kernel_axis_reason(int(h), int(oh)) or kernel_axis_reason(int(w), int(ow))


def _tables(device: torch.device, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first int32, count int32, weights float32 (out, TAPS)) of one axis on ``device``, cached."""
    key = (str(device), in_size, out_size)
    with _tables_lock:
        cached = _device_tables.get(key)
        if cached is None:
            t = tap_table(in_size, out_size)
            cached = tuple(torch.from_numpy(np.array(a)).to(device) for a in (t.first, t.count, t.weights))
            _device_tables[key] = cached
        return cached


def _window(table: TapTable, lo: int, hi: int) -> tuple[int, int]:
    """Output indices ``[a, b)`` whose tap windows meet source indices ``lo..hi`` (inclusive)."""
    a = int(np.searchsorted(table.last, lo, side="left"))  # first window ending at or after lo
    b = int(np.searchsorted(table.first, hi, side="right"))  # windows starting at or before hi
    return a, max(a, b)


def _check(logits: torch.Tensor, out_hw: tuple[int, int], threshold: float) -> tuple[int, int, float]:
    if not isinstance(logits, torch.Tensor):
        raise InvalidMaskError(f"mask logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype != torch.float32 or logits.ndim != 3:
        raise InvalidMaskError(f"mask logits must be (N, h, w) float32, got {tuple(logits.shape)} {logits.dtype}")
    try:
        oh, ow = (int(v) for v in out_hw)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"out_hw must be (height, width) integers, got {out_hw!r}") from None
    if oh < 1 or ow < 1:
        raise InvalidArgumentError(f"out_hw must be positive, got {(oh, ow)}")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise InvalidArgumentError(f"threshold must be a real number, got {threshold!r}")
    # torch compares a float32 tensor with a Python scalar in float32
    return oh, ow, float(np.float32(threshold))


def _host_crops(flags: np.ndarray, boxes: list[tuple[int, int, int, int] | None]) -> list[Crop | None]:
    """Split the packed bytes into Crop objects (an all-zero crop is None)."""
    crops: list[Crop | None] = []
    offset = 0
    for box in boxes:
        if box is None:
            crops.append(None)
            continue
        y0, y1, x0, x1 = box
        size = (y1 - y0) * (x1 - x0)
        mask = flags[offset : offset + size].reshape(y1 - y0, x1 - x0).view(bool)
        offset += size
        crops.append(Crop(y0, x0, mask) if mask.any() else None)
    return crops


def threshold_upsampled_triton(
    logits: torch.Tensor, out_hw: tuple[int, int], threshold: float = 0.0, *, gpu_variant: bool = False
) -> list[Crop | None]:
    """``resize(logits, out_hw) > threshold`` per mask as torch CUDA computes it, as crops.

    ``logits``: (N, h, w) float32 on the device that runs the kernel (a CUDA
    tensor; a CPU tensor under ``TRITON_INTERPRET=1``). ``out_hw`` must pass
    :func:`unsupported_reason` (ValueError otherwise). ``threshold``: the
    stock binarization threshold, compared in float32 as torch does.
    ``gpu_variant``: under the interpreter, launch the GPU's own variant
    (its tiles and ``tl.fma``, which the interpreter does not fuse: for launch
    and binding tests only, not for pixels). Returns one ``Crop`` (row-major, host bool
    array) or None (no pixel above the threshold) per mask.
    """
    oh, ow, thr = _check(logits, out_hw, threshold)
    n, h, w = (int(s) for s in logits.shape)
    reason = unsupported_reason((h, w), (oh, ow))
    if reason is not None:
        raise ValueError(reason)
    if n == 0:
        return []
    if math.isnan(thr):
        return [None] * n
    if (h, w) == (oh, ow):  # torchvision returns the input: the mask is the comparison itself
        dense = (logits > thr).cpu().numpy()
        return [_tight(dense[i]) for i in range(n)]
    ty, tx = tap_table(h, oh), tap_table(w, ow)
    boxes: list[tuple[int, int, int, int] | None] = []
    if thr >= 0:
        positive = logits > 0
        rows_any = positive.any(dim=2).cpu().numpy()
        cols_any = positive.any(dim=1).cpu().numpy()
        for i in range(n):
            r, c = np.flatnonzero(rows_any[i]), np.flatnonzero(cols_any[i])
            if r.size == 0:
                boxes.append(None)
                continue
            y0, y1 = _window(ty, int(r[0]), int(r[-1]))
            x0, x1 = _window(tx, int(c[0]), int(c[-1]))
            boxes.append((y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None)
    else:
        boxes = [(0, oh, 0, ow)] * n
    sizes = [0 if b is None else (b[1] - b[0]) * (b[3] - b[2]) for b in boxes]
    total = int(sum(sizes))
    if total == 0:
        return [None] * n
    return _host_crops(_launch(logits, boxes, sizes, total, (oh, ow), thr, gpu_variant), boxes)


# Probes of the self-check: (logits kind, N, in_hw, out_hw). The cancelling
# probe's signs depend on the arithmetic order (FMA or not, CPU or CUDA
# weights), 5 -> 27 has a three-tap window, 12 -> 12 an unchanged axis.
_PROBES = (("cancelling", 8, (12, 12), (97, 131)), ("random", 2, (5, 12), (27, 12)))


def _probe_logits(kind: str, n: int, in_hw: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, *in_hw)
    if kind == "cancelling":  # +-1 with a few ulps: exact zeros and one-ulp results decide the signs
        sign = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
        return (sign * (1.0 + rng.integers(0, 4, shape) * 2.0**-22)).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def device_self_check(device: torch.device | str) -> str | None:
    """Compare the kernel with torchvision's own resize on ``device``; None when every pixel agrees.

    The first-use gate on a GPU: a reason string (the caller switches the
    Triton path off and runs the stock code) when any probe pixel differs.
    On the CPU (interpreter) torchvision runs torch's CPU kernel, another
    order, so the check reports a difference there: that is how the tests
    show it can tell two orders apart.
    """
    from torchvision.transforms import functional as TF

    device = torch.device(device)
    for seed, (kind, n, in_hw, out_hw) in enumerate(_PROBES):
        logits = torch.from_numpy(_probe_logits(kind, n, in_hw, seed + 1)).to(device)
        stock = TF.resize(logits, list(out_hw), interpolation=TF.InterpolationMode.BILINEAR) > 0
        crops = threshold_upsampled_triton(logits, out_hw)
        ours = np.zeros((n, *out_hw), bool)
        for i, crop in enumerate(crops):
            if crop is not None:
                h, w = crop.rows.shape
                ours[i, crop.y0 : crop.y0 + h, crop.x0 : crop.x0 + w] = crop.rows
        for kernel, result in (("dense stock-mask", ours), ("stock-mode run", _runs_dense(logits, out_hw))):
            differ = int((result != stock.cpu().numpy()).sum())
            if differ:
                return (
                    f"the {kernel} Triton kernel differs from torchvision's resize on {device} in {differ} pixels "
                    f"of a {in_hw} -> {out_hw} probe ({kind} logits)"
                )
    return None


def _runs_dense(logits: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool: the run kernels' stock mode on (N, h, w) logits, decoded (the self-check's second kernel)."""
    from inference_accel.postprocess.crop_rle import build_compact_mask
    from inference_accel.postprocess.mask_geometry import MaskPlacement
    from inference_accel.postprocess.triton_launch import TritonPostprocessor

    n, h, w = (int(v) for v in logits.shape)
    post = TritonPostprocessor(capacity=1 << 16)
    pending = post.launch_masks_batch(
        logits[None],
        torch.arange(n, dtype=torch.int32, device=logits.device)[None],
        torch.full((1,), n, dtype=torch.int32, device=logits.device),
        MaskPlacement((0, h), (0, w), tuple(out_hw), (0, 0)),
        tuple(out_hw),
    )
    (crops,) = post.finish_masks(pending)
    return build_compact_mask(crops, out_hw).to_dense()


def _tight(mask: np.ndarray) -> Crop | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Crop(y0, x0, np.ascontiguousarray(mask[y0:y1, x0:x1]))


def _launch(
    logits: torch.Tensor,
    boxes: list[tuple[int, int, int, int] | None],
    sizes: list[int],
    total: int,
    out_hw: tuple[int, int],
    threshold: float,
    gpu_variant: bool,
) -> np.ndarray:
    """One kernel launch over every crop; the packed bytes on the host."""
    import triton

    from inference_accel.kernels import stock_masks as k

    device = logits.device
    n, h, w = (int(s) for s in logits.shape)
    oh, ow = out_hw
    crops = np.zeros((n, 4), np.int32)
    for i, b in enumerate(boxes):
        if b is not None:
            crops[i] = b
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    # Under the interpreter: big tiles and the exact FMA emulation, unless the GPU variant is asked for.
    interpreted = interpreter_active() and not gpu_variant
    if interpreted:
        block_r, block_c = k.INTERPRETER_BLOCK_R, k.INTERPRETER_BLOCK_C
    else:
        block_r, block_c = k.BLOCK_R, k.BLOCK_C
    ty_first, ty_count, wy = _tables(device, h, oh)
    tx_first, tx_count, wx = _tables(device, w, ow)
    out = torch.empty(total, dtype=torch.uint8, device=device)
    heights = crops[:, 1] - crops[:, 0]
    widths = crops[:, 3] - crops[:, 2]
    grid = (triton.cdiv(int(widths.max()), block_c), triton.cdiv(int(heights.max()), block_r), n)
    k.STOCK_THRESHOLD.launch(
        grid,
        logits_ptr=logits,
        crops_ptr=torch.from_numpy(crops).to(device),
        offsets_ptr=torch.from_numpy(offsets).to(device),
        ty_first_ptr=ty_first, ty_count_ptr=ty_count, wy_ptr=wy,
        tx_first_ptr=tx_first, tx_count_ptr=tx_count, wx_ptr=wx,
        out_ptr=out,
        s_n=int(logits.stride(0)), s_h=int(logits.stride(1)), s_w=int(logits.stride(2)),
        threshold=threshold,
        EXACT_FMA=interpreted,
        BLOCK_R=block_r, BLOCK_C=block_c, TAPS=k.TAPS,
    )
    return out.cpu().numpy()
