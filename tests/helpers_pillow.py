"""Expected bytes from the installed Pillow, for the preprocessing tests."""

from __future__ import annotations

import numpy as np
from PIL import Image


def pil(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``Image.fromarray(image).resize((w, h), BILINEAR)`` of the installed Pillow."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((out_hw[1], out_hw[0]), Image.BILINEAR))


def forced(image: np.ndarray, out_hw: tuple[int, int], vertical: bool) -> np.ndarray:
    """Pillow's two passes in a forced order: two single-axis Pillow resizes."""
    h, w = image.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(image))
    middle = (w, out_hw[0]) if vertical else (out_hw[1], h)
    return np.asarray(img.resize(middle, Image.BILINEAR).resize((out_hw[1], out_hw[0]), Image.BILINEAR))
