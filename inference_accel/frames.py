"""Validation of input frames, shared by every path.

>>> import numpy as np
>>> from inference_accel.frames import validate_frame
>>> validate_frame(np.zeros((4, 6, 3), np.uint8)).shape
(4, 6, 3)
"""

from __future__ import annotations

import numpy as np

from inference_accel.errors import InvalidFrameError


def validate_frame(frame: object) -> np.ndarray:
    """Check that ``frame`` is a non-empty uint8 (H, W, 3) array and return it.

    Raises :class:`InvalidFrameError` naming the problem: not an array, wrong
    dtype, wrong number of dimensions or channels, or zero height/width.
    """
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim != 3:
        raise InvalidFrameError(
            f"frame must have shape (H, W, 3), got {frame.ndim} dimension(s) {frame.shape}"
        )
    if frame.shape[2] != 3:
        raise InvalidFrameError(f"frame must have 3 channels (BGR), got {frame.shape[2]}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(f"frame is empty: shape {frame.shape}")
    return frame
