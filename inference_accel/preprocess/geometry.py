"""Resize modes and the metadata that maps model results back to the frame.

Three modes, as Roboflow's ``inference`` serves RF-DETR:

- ``stretch``: the whole frame is resized to the model input, aspect ratio
  ignored.
- ``letterbox``: the frame is resized to fit inside the input keeping its
  aspect ratio, and centred on a black (0, 0, 0) canvas.
- ``center-crop``: the frame is resized to cover the input keeping its aspect
  ratio, and the centre of the result is kept.

:class:`Geometry` records, for one frame, which part of the model input holds
image content (``content``, input pixels) and which part of the original
frame that content shows (``source``, frame pixels). Stretch is the identity
case: content is the whole input and source the whole frame.

>>> g = plan_geometry((1080, 1920), (312, 312), "letterbox")
>>> g.resized_hw, g.content
((176, 312), (0, 68, 312, 244))
"""

from __future__ import annotations

from dataclasses import dataclass

from inference_accel.errors import InvalidFrameError

RESIZE_MODES = ("stretch", "letterbox", "center-crop")


@dataclass(frozen=True)
class Geometry:
    """How one frame maps onto the model input.

    ``frame_hw``: original frame (H, W). ``input_hw``: model input (H, W).
    ``resized_hw``: size the frame is PIL-resized to. ``content``: (x0, y0,
    x1, y1) of the resized image inside the input canvas (letterbox pads;
    centre-crop may start at negative offsets, the part outside is cut).
    ``source``: (x0, y0, x1, y1) in frame pixels of what the input shows.
    """

    mode: str
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    content: tuple[int, int, int, int]
    source: tuple[float, float, float, float]

    @property
    def is_stretch(self) -> bool:
        return self.resized_hw == self.input_hw and self.content == (
            0,
            0,
            self.input_hw[1],
            self.input_hw[0],
        )

    @property
    def content_scale(self) -> tuple[float, float]:
        """(kx, ky): frame pixels per model-input pixel of the content.

        The content rectangle is the whole frame resized (letterbox pads
        around it, centre-crop cuts it), so input pixel ``x`` shows frame
        pixel ``(x - content[0]) * kx`` in every mode.

        >>> plan_geometry((100, 200), (64, 64), "center-crop").content_scale
        (1.5625, 1.5625)
        """
        x0, y0, x1, y1 = self.content
        return self.frame_hw[1] / (x1 - x0), self.frame_hw[0] / (y1 - y0)


def plan_geometry(
    frame_hw: tuple[int, int], input_hw: tuple[int, int], mode: str = "stretch"
) -> Geometry:
    """Compute the :class:`Geometry` of a ``frame_hw`` frame for ``mode``."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {RESIZE_MODES}")
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    ih, iw = int(input_hw[0]), int(input_hw[1])
    if fh <= 0 or fw <= 0:
        raise InvalidFrameError(f"frame is empty: size {frame_hw}")
    full_source = (0.0, 0.0, float(fw), float(fh))
    if mode == "stretch":
        return Geometry(mode, (fh, fw), (ih, iw), (ih, iw), (0, 0, iw, ih), full_source)
    if mode == "letterbox":
        scale = min(iw / fw, ih / fh)
        rw = max(1, min(iw, round(fw * scale)))
        rh = max(1, min(ih, round(fh * scale)))
        x0, y0 = (iw - rw) // 2, (ih - rh) // 2
        return Geometry(mode, (fh, fw), (ih, iw), (rh, rw), (x0, y0, x0 + rw, y0 + rh), full_source)
    # center-crop: cover the input, keep the middle.
    scale = max(iw / fw, ih / fh)
    rw = max(iw, round(fw * scale))
    rh = max(ih, round(fh * scale))
    cx, cy = (rw - iw) // 2, (rh - ih) // 2
    sx, sy = fw / rw, fh / rh
    source = (cx * sx, cy * sy, (cx + iw) * sx, (cy + ih) * sy)
    return Geometry(mode, (fh, fw), (ih, iw), (rh, rw), (-cx, -cy, rw - cx, rh - cy), source)
