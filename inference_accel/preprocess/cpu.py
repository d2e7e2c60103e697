"""The CPU fast path: Pillow-exact preprocessing straight into the model input.

Same result as the reference chain (``reference.py``), with less work:

- **No BGR->RGB copy.** Pillow resizes each channel independently with the
  same tables, so resizing the BGR frame as if it were RGB gives the same
  bytes per channel; the swap happens for free when the output is written.
- **No full-frame copy of our own.** The frame goes into Pillow band by band
  (``Image.fromarray`` on contiguous row bands, ``Image.frombuffer`` with a
  row stride on column bands); Pillow's own unpack into its image memory is
  the only full-frame copy, and it runs on all usable cores.
- **Both passes on all usable cores** (2 on the measured 2-core machine;
  :func:`_parts` sizes the bands, :mod:`inference_accel.workers` counts the cores). Pillow's two passes are separable: the
  horizontal pass of a row band, or the vertical pass of a column band, is
  Pillow's own resize of that band with the other axis unchanged (Pillow
  skips a pass whose size does not change), so each band is byte-exact.
  Pillow releases the GIL while it resamples, so N threads run N bands
  at once. The pass order is the installed Pillow's
  (``pillow_resize.pass_sizes``).
- **One fused write.** ``/ 255``, the scale and the mean/std normalisation
  (a :class:`~inference_accel.preprocess.normalization.Normalization`,
  default ImageNet) become a 256-entry float table per channel, computed
  with the reference's own float32 operations (bit-identical), applied with
  ``np.take`` directly into ``out[index, c]`` (fp32 or fp16) for the canvas
  region, by the same threads. The colour order picks each plane's source
  channel.

>>> import numpy as np, torch
>>> from inference_accel.preprocess.geometry import plan_geometry
>>> frame = np.zeros((48, 64, 3), np.uint8)
>>> out = torch.empty(2, 3, 16, 16)
>>> preprocess_cpu(frame, out, 1, plan_geometry(frame.shape[:2], (16, 16)))
>>> round(float(out[1, 0, 0, 0]), 4)
-2.1179
"""

from __future__ import annotations


import functools

import numpy as np
import torch
from PIL import Image

from inference_accel.preprocess import pillow_resize
from inference_accel.preprocess.geometry import Geometry
from inference_accel.preprocess.normalization import Normalization
from inference_accel.preprocess.normalization import resolve as resolve_normalization
from inference_accel.workers import CPU_THREADS, pool

OUT_DTYPES = (torch.float32, torch.float16)
# Below this many source pixels a second thread costs more than it saves.
PARALLEL_MIN_PIXELS = 1 << 16
# Default threads: the usable CPUs (see inference_accel.workers).
THREADS = CPU_THREADS
POOL = "preprocess-cpu"  # shared with the compiled path (native.py): one pool, one size


def _run(tasks: list) -> list:
    """Run zero-argument callables, the first on this thread, the rest on the pool."""
    if len(tasks) == 1:
        return [tasks[0]()]
    futures = [pool(POOL, THREADS).submit(task) for task in tasks[1:]]
    first = tasks[0]()
    return [first] + [f.result() for f in futures]


def normalization_lut(dtype: torch.dtype = torch.float32, normalization: Normalization | None = None) -> np.ndarray:
    """(3, 256) table of ``dtype``: normalised value of byte ``v`` in model plane ``c``.

    Computed with the reference's float32 operations (``/ 255``, the scale,
    ``- mean``, ``/ std``; ``triton_common.normalization_lut``), then cast to
    ``dtype`` (fp16 rounds to nearest even, as ``tensor.half()`` does).
    ``normalization``: None is ImageNet. Cached per (dtype, normalization); read-only.

    >>> normalization_lut(torch.float16).dtype, normalization_lut().flags.writeable
    (dtype('float16'), False)
    """
    return _cached_lut(dtype, resolve_normalization(normalization))


@functools.lru_cache(maxsize=32)
def _cached_lut(dtype: torch.dtype, normalization: Normalization) -> np.ndarray:
    from inference_accel.triton_common import normalization_lut as torch_lut

    lut = np.ascontiguousarray(torch_lut("cpu", normalization).to(dtype).numpy())
    lut.setflags(write=False)
    return lut


def _parts(threads: int, pixels: int, min_pixels: int) -> int:
    """Bands for ``pixels`` of work on up to ``threads`` threads.

    Measured on 2 cores: two bands pay from ``min_pixels`` pixels on (the
    thresholds below). With more threads each band beyond the second also
    gets at least ``min_pixels`` pixels, so a small frame is not cut into
    slivers whose dispatch costs more than their work; on 2 cores this is
    exactly the measured rule (2 bands from ``min_pixels`` on, else 1).

    >>> _parts(2, 70_000, 1 << 16), _parts(16, 70_000, 1 << 16), _parts(16, 2_073_600, 1 << 16)
    (2, 2, 16)
    """
    if threads <= 1 or pixels < min_pixels:
        return 1
    return min(threads, max(2, pixels // min_pixels))


def threads_rule() -> str:
    """The default thread count in words, for ``inference-accel doctor``."""
    return (
        f"up to {THREADS} thread(s): 2 bands from {PARALLEL_MIN_PIXELS} source pixels on, "
        f"then 1 more band per {PARALLEL_MIN_PIXELS} pixels"
    )


def _bands(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    edges = [n * k // parts for k in range(parts + 1)]
    return [(edges[k], edges[k + 1]) for k in range(parts)]


def _column_band(frame: np.ndarray, c0: int, c1: int) -> Image.Image:
    """Columns ``c0:c1`` of ``frame`` as a Pillow image, unpacked once from the frame's memory."""
    h, w, _ = frame.shape
    if frame.flags.c_contiguous:
        data = memoryview(frame.reshape(-1))[c0 * 3 :]
        return Image.frombuffer("RGB", (c1 - c0, h), data, "raw", "RGB", w * 3, 1)
    return Image.fromarray(np.ascontiguousarray(frame[:, c0:c1]))


def _row_band(frame: np.ndarray, r0: int, r1: int) -> Image.Image:
    return Image.fromarray(frame[r0:r1])


def resize_frame(frame: np.ndarray, out_hw: tuple[int, int], threads: int = THREADS) -> np.ndarray:
    """Pillow's BILINEAR resize of a uint8 (H, W, 3) frame, channel order kept.

    Byte-identical to ``Image.fromarray(frame).resize((w, h), BILINEAR)`` of
    the installed Pillow; the passes run band-parallel on ``threads`` threads.
    Returns a uint8 (out_h, out_w, 3) array (the frame itself if the size is
    unchanged).
    """
    in_h, in_w = frame.shape[:2]
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    passes = pillow_resize.pass_sizes((in_h, in_w), (out_h, out_w))
    if not passes:
        return frame
    parts = _parts(threads, in_h * in_w, PARALLEL_MIN_PIXELS)

    # First pass: read the frame band by band.
    if passes[0] == "h":
        mid_size = (out_w, in_h)

        def first(r0: int, r1: int) -> tuple[Image.Image, tuple[int, int]]:
            return _row_band(frame, r0, r1).resize((out_w, r1 - r0), Image.BILINEAR), (0, r0)

        bands = _bands(in_h, parts)
    else:
        mid_size = (in_w, out_h)

        def first(c0: int, c1: int) -> tuple[Image.Image, tuple[int, int]]:
            return _column_band(frame, c0, c1).resize((c1 - c0, out_h), Image.BILINEAR), (c0, 0)

        bands = _bands(in_w, parts)
    pieces = _run([lambda b=b: first(*b) for b in bands])
    if len(pieces) == 1:
        mid = pieces[0][0]
    else:
        mid = Image.new("RGB", mid_size)
        for piece, at in pieces:
            mid.paste(piece, at)
    if len(passes) == 1:
        return np.asarray(mid)

    # Second pass on the (smaller) intermediate, split along the other axis.
    mw, mh = mid.size
    second_parts = _parts(parts, mw * mh, PARALLEL_MIN_PIXELS // 4)
    if passes[1] == "v":

        def second(c0: int, c1: int) -> tuple[Image.Image, tuple[int, int]]:
            band = mid if (c0, c1) == (0, mw) else mid.crop((c0, 0, c1, mh))
            return band.resize((c1 - c0, out_h), Image.BILINEAR), (c0, 0)

        bands = _bands(mw, second_parts)
    else:

        def second(r0: int, r1: int) -> tuple[Image.Image, tuple[int, int]]:
            band = mid if (r0, r1) == (0, mh) else mid.crop((0, r0, mw, r1))
            return band.resize((out_w, r1 - r0), Image.BILINEAR), (0, r0)

        bands = _bands(mh, second_parts)
    pieces = _run([lambda b=b: second(*b) for b in bands])
    if len(pieces) == 1:
        return np.asarray(pieces[0][0])
    result = Image.new("RGB", (out_w, out_h))
    for piece, at in pieces:
        result.paste(piece, at)
    return np.asarray(result)


def check_cpu_out(out: torch.Tensor) -> None:
    """``out`` must be a float32/float16 CPU tensor (the CPU paths' output contract)."""
    if out.dtype not in OUT_DTYPES:
        raise ValueError(f"out must be float32 or float16, got {out.dtype}")
    if out.device.type != "cpu":
        raise ValueError(f"out must be a CPU tensor, got {out.device}")


def visible_content(geometry: Geometry) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of ``geometry.content`` inside the canvas.

    >>> from inference_accel.preprocess.geometry import plan_geometry
    >>> visible_content(plan_geometry((48, 64), (16, 16), "letterbox"))
    (0, 2, 16, 14)
    """
    ih, iw = geometry.input_hw
    x0, y0, x1, y1 = geometry.content
    return max(x0, 0), max(y0, 0), min(x1, iw), min(y1, ih)


def fill_padding(target: np.ndarray, lut: np.ndarray, visible: tuple[int, int, int, int]) -> None:
    """Write a black pixel's normalised value into ``target`` (3, H, W) outside ``visible``."""
    cx0, cy0, cx1, cy1 = visible
    if (cx0, cy0, cx1, cy1) == (0, 0, target.shape[2], target.shape[1]):
        return
    for c in range(3):
        plane, pad = target[c], lut[c, 0]
        plane[:cy0] = pad
        plane[cy1:] = pad
        plane[cy0:cy1, :cx0] = pad
        plane[cy0:cy1, cx1:] = pad


def write_normalized(
    resized: np.ndarray,
    out: torch.Tensor,
    index: int,
    geometry: Geometry,
    bgr: bool = True,
    threads: int = THREADS,
    normalization: Normalization | None = None,
) -> None:
    """Reorder, scale and normalise ``resized`` into ``out[index]`` at ``geometry.content``.

    ``resized``: uint8 (rh, rw, 3), BGR if ``bgr`` (else RGB).
    ``normalization``: the model's constants and channel order (None:
    ImageNet, RGB). Canvas pixels outside the content (letterbox) get the
    value of a black pixel; content outside the canvas (centre-crop) is skipped.
    """
    normalization = resolve_normalization(normalization)
    lut = normalization_lut(out.dtype, normalization)
    reverse = normalization.reverses(bgr)
    target = out.detach()[index].numpy()  # (3, H, W) view of the caller's buffer
    x0, y0 = geometry.content[:2]
    cx0, cy0, cx1, cy1 = visible_content(geometry)
    rows = _bands(cy1 - cy0, _parts(threads, (cy1 - cy0) * (cx1 - cx0), 1 << 15))

    def write(r0: int, r1: int) -> None:
        for c in range(3):
            src = resized[cy0 - y0 + r0 : cy0 - y0 + r1, cx0 - x0 : cx1 - x0, (2 - c) if reverse else c]
            np.take(lut[c], src, out=target[c, cy0 + r0 : cy0 + r1, cx0:cx1], mode="clip")

    fill_padding(target, lut, (cx0, cy0, cx1, cy1))
    _run([lambda b=b: write(*b) for b in rows])


def preprocess_cpu(
    frame: np.ndarray,
    out: torch.Tensor,
    index: int,
    geometry: Geometry,
    bgr: bool = True,
    threads: int = THREADS,
    normalization: Normalization | None = None,
) -> None:
    """Preprocess a uint8 (H, W, 3) frame into ``out[index]`` (CPU, fp32/fp16).

    ``bgr``: the frame's order; ``normalization``: the model's constants and
    channel order (None: ImageNet, RGB). Preconditions (checked by
    ``api.preprocess_into``): ``frame`` a validated uint8 HWC array whose
    size is ``geometry.frame_hw``; ``out`` a CPU float32/float16 tensor of
    shape (N, 3, H, W) with (H, W) == ``geometry.input_hw``.
    """
    check_cpu_out(out)
    resized = resize_frame(frame, geometry.resized_hw, threads)
    write_normalized(resized, out, index, geometry, bgr, threads, normalization)
