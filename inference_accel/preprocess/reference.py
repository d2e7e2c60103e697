"""The reference preprocessing chain, exactly as Roboflow ``inference`` serves it.

BGR uint8 frame -> RGB -> PIL image -> ``resize((w, h), BILINEAR)`` ->
``to_tensor`` (/255) -> ImageNet normalisation. Every fast path must equal it.

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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil_resize_rgb(frame_bgr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """BGR uint8 frame -> RGB -> ``PIL.Image.resize(BILINEAR)``; uint8 (h, w, 3)."""
    rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
    image = Image.fromarray(rgb)
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


def to_normalized_tensor(rgb: np.ndarray) -> torch.Tensor:
    """torchvision's ``to_tensor`` then ``normalize`` with ImageNet statistics."""
    tensor = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


def preprocess_reference(
    frame_bgr: np.ndarray, input_hw: tuple[int, int], mode: str = "stretch"
) -> tuple[torch.Tensor, Geometry]:
    """Run the reference chain; returns a (1, 3, H, W) float32 tensor and its geometry."""
    frame = validate_frame(frame_bgr)
    geometry = plan_geometry(frame.shape[:2], input_hw, mode)
    resized = pil_resize_rgb(frame, geometry.resized_hw)
    canvas = resized if geometry.is_stretch else place_on_canvas(resized, geometry)
    return to_normalized_tensor(canvas).unsqueeze(0), geometry
