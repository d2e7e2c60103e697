"""Where the mask logits land in the frame.

The mask logits (Hm, Wm) cover the model input. Only the content part of the
input shows the frame: for letterbox the pad rows/columns are cropped out of
the logits at mask scale (as Roboflow ``inference`` does) before upsampling;
for centre-crop the logits show only the middle of the frame. The result is a
:class:`MaskPlacement`: which logit window to upsample, to what size, and
where in the frame it goes. Stretch is the identity: all logits, upsampled to
the frame, at (0, 0).

>>> from inference_accel.preprocess.geometry import plan_geometry
>>> mask_placement(plan_geometry((1080, 1920), (312, 312), "letterbox"), (78, 78))
MaskPlacement(rows=(17, 61), cols=(0, 78), out_hw=(1080, 1920), top_left=(0, 0))
"""

from __future__ import annotations

from dataclasses import dataclass

from inference_accel.preprocess.geometry import Geometry


@dataclass(frozen=True)
class MaskPlacement:
    """``rows``/``cols``: half-open logit window. ``out_hw``: size it is
    bilinearly upsampled to. ``top_left``: (y, x) of that upsampled window in
    the frame; parts outside the frame are cut."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    out_hw: tuple[int, int]
    top_left: tuple[int, int]

    @property
    def is_identity(self) -> bool:
        return self.top_left == (0, 0) and self.rows[0] == 0 and self.cols[0] == 0


def mask_placement(geometry: Geometry | None, mask_hw: tuple[int, int], frame_hw: tuple[int, int] | None = None) -> MaskPlacement:
    """Compute the :class:`MaskPlacement` for ``geometry`` (None means stretch)."""
    mh, mw = int(mask_hw[0]), int(mask_hw[1])
    if geometry is None or geometry.is_stretch:
        if frame_hw is None:
            if geometry is None:
                raise ValueError("frame_hw is required when geometry is None")
            frame_hw = geometry.frame_hw
        return MaskPlacement((0, mh), (0, mw), (int(frame_hw[0]), int(frame_hw[1])), (0, 0))
    ih, iw = geometry.input_hw
    fh, fw = geometry.frame_hw
    if geometry.mode == "letterbox":
        x0, y0, x1, y1 = geometry.content
        r0, r1 = round(y0 * mh / ih), round(y1 * mh / ih)
        c0, c1 = round(x0 * mw / iw), round(x1 * mw / iw)
        r1, c1 = max(r1, r0 + 1), max(c1, c0 + 1)
        return MaskPlacement((r0, r1), (c0, c1), (fh, fw), (0, 0))
    # centre-crop: the whole logit map shows the source window of the frame.
    sx0, sy0, sx1, sy1 = geometry.source
    top, left = round(sy0), round(sx0)
    out_h = max(1, round(sy1) - top)
    out_w = max(1, round(sx1) - left)
    return MaskPlacement((0, mh), (0, mw), (out_h, out_w), (top, left))
