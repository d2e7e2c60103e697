"""The reference preprocessing chain, exactly as Roboflow ``inference`` serves it.

BGR uint8 frame -> model channel order -> PIL image -> ``resize((w, h), BILINEAR)``
-> ``to_tensor`` (/255) -> the package's scaling and mean/std normalisation
(:func:`~inference_accel.preprocess.normalization.normalize_channels`; default
ImageNet, RGB). Every fast path must equal it.

Pillow resizes each channel with the same tables, so reordering channels
before or after the resize gives the same bytes; inference-models swaps after.

>>> import numpy as np
>>> from inference_accel.preprocess.reference import preprocess_reference
>>> x, geometry = preprocess_reference(np.zeros((20, 30, 3), np.uint8), (8, 8))
>>> tuple(x.shape), x.dtype
((1, 3, 8, 8), torch.float32)
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from inference_accel.frames import validate_frame
from inference_accel.preprocess.geometry import Geometry, plan_geometry
from inference_accel.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 (re-exported)
from inference_accel.preprocess.normalization import Normalization, normalize_channels
from inference_accel.preprocess.normalization import resolve as resolve_normalization


def pil_resize_rgb(frame_bgr: np.ndarray, size_hw: tuple[int, int], channel_order: str = "rgb") -> np.ndarray:
    """BGR uint8 frame -> ``channel_order`` (rgb: reversed, bgr: kept) -> ``PIL.Image.resize(BILINEAR)``."""
    ordered = frame_bgr[:, :, ::-1] if channel_order == "rgb" else frame_bgr
    image = Image.fromarray(np.ascontiguousarray(ordered))
    if image.size != (size_hw[1], size_hw[0]):
        image = image.resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    return np.asarray(image)


def place_on_canvas(resized: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Place the resized RGB image on the input canvas (pad with 0 or crop)."""
    ih, iw = geometry.input_hw
    x0, y0, x1, y1 = geometry.content
    canvas = np.zeros((ih, iw, 3), np.uint8)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, iw), min(y1, ih)
    canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return canvas


def to_normalized_tensor(image: np.ndarray, normalization: Normalization | None = None) -> torch.Tensor:
    """torchvision's ``to_tensor`` then the stock scaling and ``normalize`` (default ImageNet).

    ``image``: uint8 (H, W, 3) already in the model's channel order.
    """
    pixels = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float()
    return normalize_channels(pixels, resolve_normalization(normalization))


def preprocess_reference(
    frame_bgr: np.ndarray,
    input_hw: tuple[int, int],
    mode: str = "stretch",
    normalization: Normalization | None = None,
) -> tuple[torch.Tensor, Geometry]:
    """Run the reference chain; returns a (1, 3, H, W) float32 tensor and its geometry.

    ``normalization``: None is :meth:`Normalization.imagenet` (RGB planes).
    """
    frame = validate_frame(frame_bgr)
    normalization = resolve_normalization(normalization)
    geometry = plan_geometry(frame.shape[:2], input_hw, mode)
    resized = pil_resize_rgb(frame, geometry.resized_hw, normalization.channel_order)
    canvas = resized if geometry.is_stretch else place_on_canvas(resized, geometry)
    return to_normalized_tensor(canvas, normalization).unsqueeze(0), geometry
