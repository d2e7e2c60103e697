"""A model package's image steps, applied to a BGR uint8 frame before our resize, as stock does.

inference-models 0.39 (``models/rfdetr/pre_processing.py`` and
``models/common/roboflow/pre_processing.py``) prepares a numpy frame for an
RF-DETR package in this order, and so do we (:meth:`PackageSteps.apply`):

1. **static crop** (``image_pre_processing.static-crop``, percent):
   ``x0 = int(x_min / 100 * width)`` (likewise ``x1``, ``y0``, ``y1``), the
   window ``frame[y0:y1, x0:x1]``. Here it is a numpy view; its offset is
   recorded.
2. **grayscale**: ``cv2.cvtColor(BGR2GRAY)`` (OpenCV's fixed-point mix),
   the one channel repeated three times.
3. **contrast** (scikit-image ``exposure``, as stock; needs the ``demo``
   extra): Adaptive Equalization ``equalize_adapthist(x / 255, clip_limit=0.03)``,
   Contrast Stretching ``rescale_intensity`` between the 2nd and 98th
   percentiles, Histogram Equalization ``equalize_hist(x / 255)``; results
   truncated to uint8 as stock does. This step runs on the host only
   (:attr:`PackageSteps.host_only_reason`).
4. **the dataset-version first step** (only when the package has
   ``dataset_version_resize_dimensions`` and a ``resize_mode`` other than
   stretch): OpenCV to that size in the package's mode:

   - ``letterbox`` and ``letterbox-reflect-edges``: ``scale = min(W / w, H / h)``,
     ``cv2.resize`` (INTER_LINEAR) to ``(int(w * scale), int(h * scale))``,
     centred (``int((W - new) / 2)``) on a canvas of ``padding_value``
     (0 when absent). **Stock pads ``letterbox-reflect-edges`` exactly like
     ``letterbox``** (its numpy handler table maps both to the letterbox
     handler), so we do too: nothing is reflected.
   - ``center-crop``: no resize; the frame's middle is cut to the size, or
     centred on a black canvas where the frame is smaller (``padding_value``
     is not used, as stock).

   ``fit-longer-edge`` never gets here: inference-models' RF-DETR classes
   replace it by ``stretch`` with a warning, and :meth:`PackageSteps.from_config`
   does the same.

Then our ``preprocess_into`` stretches the result to the model input with
Pillow's BILINEAR (fast paths exact with Pillow). Without dataset dimensions
every resize mode is that single stretch. **auto-orient**: stock applies no
orientation to an array; our ``media.read_image`` (OpenCV's ``imread``)
already applies an image file's EXIF orientation and video frames have
none, so in the pipeline the step is a no-op; :func:`apply_exif_orientation`
exists for callers who hold raw pixels and a known orientation tag.

:class:`PackageGeometry` records the composite mapping (crop offset, the
first step's padding and scale) that takes boxes and masks back to the frame.

>>> import numpy as np
>>> steps = PackageSteps(static_crop=(10, 60, 0, 100))
>>> frame = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
>>> prepared, geometry = steps.apply(frame)
>>> prepared.shape, geometry.crop, np.shares_memory(prepared, frame)
((20, 15, 3), (3, 0, 15, 20), True)
>>> geometry.boxes_to_frame(np.array([[0.0, 0.0, 15.0, 20.0]])).tolist()
[[3.0, 0.0, 18.0, 20.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference_accel.errors import InvalidArgumentError, InvalidFrameError
from inference_accel.extras import require
from inference_accel.frames import validate_frame

CONTRAST_TYPES = ("Adaptive Equalization", "Contrast Stretching", "Histogram Equalization")
FIRST_STEP_MODES = ("letterbox", "center-crop", "letterbox-reflect-edges")


# -- the single steps -----------------------------------------------------------------
def static_crop_window(frame_hw: tuple[int, int], percent: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` in pixels of a static crop given in percent ``(x_min, x_max, y_min, y_max)``.

    Stock's arithmetic: ``int(percent / 100 * size)`` in Python floats.

    >>> static_crop_window((1080, 1920), (10, 90, 25, 75))
    (192, 270, 1728, 810)
    """
    height, width = int(frame_hw[0]), int(frame_hw[1])
    x_min, x_max, y_min, y_max = percent
    return (
        int(x_min / 100 * width),
        int(y_min / 100 * height),
        int(x_max / 100 * width),
        int(y_max / 100 * height),
    )


def grayscale_bgr(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR->gray (integer arithmetic), repeated to three channels, as stock.

    >>> grayscale_bgr(np.array([[[255, 0, 0]]], np.uint8)).tolist()  # pure blue
    [[[29, 29, 29]]]
    """
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)  # OpenCV takes a crop view as it is (row stride)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)  # the same bytes as np.stack([gray] * 3, axis=2), faster


def _exposure():
    return require("skimage.exposure", "demo", "a model package's contrast step (image_pre_processing.contrast)")


def apply_contrast(frame: np.ndarray, contrast_type: str) -> np.ndarray:
    """One of the three stock contrast steps (scikit-image ``exposure``), on a uint8 (H, W, 3) frame.

    >>> out = apply_contrast(np.tile(np.arange(0, 250, 10, dtype=np.uint8), (4, 1))[..., None].repeat(3, 2),
    ...                      "Contrast Stretching")
    >>> int(out.min()), int(out.max()), out.dtype
    (0, 255, dtype('uint8'))
    """
    exposure = _exposure()
    if contrast_type == "Adaptive Equalization":
        scaled = frame.astype(np.float32) / 255
        return (exposure.equalize_adapthist(scaled, clip_limit=0.03) * 255).astype(np.uint8)
    if contrast_type == "Contrast Stretching":
        low, high = np.percentile(frame, 2), np.percentile(frame, 98)
        return exposure.rescale_intensity(frame, in_range=(low, high))
    if contrast_type == "Histogram Equalization":
        scaled = frame.astype(np.float32) / 255
        return (exposure.equalize_hist(scaled) * 255).astype(np.uint8)
    raise InvalidArgumentError(f"unknown contrast type {contrast_type!r}; expected one of {CONTRAST_TYPES}")


_EXIF_TRANSFORMS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def apply_exif_orientation(frame: np.ndarray, orientation: int) -> np.ndarray:
    """The frame as EXIF ``orientation`` (1..8) says to show it (Pillow's ``exif_transpose``).

    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, 2)
    >>> apply_exif_orientation(a, 6)[..., 0].tolist()  # rotate 90 degrees clockwise
    [[3, 0], [4, 1], [5, 2]]
    """
    if orientation not in _EXIF_TRANSFORMS:
        raise InvalidArgumentError(f"EXIF orientation must be 1..8, got {orientation!r}")
    return np.ascontiguousarray(_EXIF_TRANSFORMS[orientation](frame))


# -- the dataset-version first step -----------------------------------------------------
@dataclass(frozen=True)
class FirstStep:
    """Where the (cropped) image lands in the first step's canvas: ``pad`` = (left, top) of its
    top-left corner there (negative: cut off, centre-crop), ``scale`` = canvas px per image px."""

    canvas: np.ndarray
    pad: tuple[int, int]
    scale: tuple[float, float]
    content_hw: tuple[int, int] | None = None


def letterbox_first_step(image: np.ndarray, size_hw: tuple[int, int], padding_value: int) -> FirstStep:
    """Stock's OpenCV letterbox to ``size_hw`` (see the module docstring).

    >>> step = letterbox_first_step(np.zeros((10, 40, 3), np.uint8), (20, 20), 127)
    >>> step.canvas.shape, step.pad, step.scale, int(step.canvas[0, 0, 0])
    ((20, 20, 3), (0, 7), (0.5, 0.5), 127)
    """
    height, width = image.shape[:2]
    target_h, target_w = int(size_hw[0]), int(size_hw[1])
    scale = min(target_w / width, target_h / height)
    new_w, new_h = int(width * scale), int(height * scale)
    if new_w < 1 or new_h < 1:
        raise InvalidFrameError(
            f"a {width}x{height} image letterboxed into the package's dataset size {target_w}x{target_h} "
            f"shrinks to {new_w}x{new_h} pixels (nothing left); inference-models fails on it too"
        )
    pad_top, pad_left = int((target_h - new_h) / 2), int((target_w - new_w) / 2)
    canvas = np.full((target_h, target_w, 3), padding_value, np.uint8)
    canvas[pad_top : pad_top + new_h, pad_left : pad_left + new_w] = cv2.resize(image, (new_w, new_h))
    return FirstStep(canvas, (pad_left, pad_top), (scale, scale), (new_h, new_w))


def center_crop_first_step(image: np.ndarray, size_hw: tuple[int, int]) -> FirstStep:
    """Stock's centre crop to ``size_hw``: cut the middle, or centre on black where smaller.

    >>> step = center_crop_first_step(np.ones((10, 40, 3), np.uint8), (20, 20))
    >>> step.pad, int(step.canvas[0, 0, 0]), int(step.canvas[5, 0, 0])
    ((-10, 5), 0, 1)
    """
    height, width = image.shape[:2]
    target_h, target_w = int(size_hw[0]), int(size_hw[1])
    canvas = np.zeros((target_h, target_w, 3), np.uint8)
    pad_x, pad_y = max(target_w - width, 0), max(target_h - height, 0)
    cut_x, cut_y = max(width - target_w, 0), max(height - target_h, 0)
    left, top = pad_x // 2, pad_y // 2
    cut_left, cut_top = cut_x // 2, cut_y // 2
    canvas[top : target_h - (pad_y - top), left : target_w - (pad_x - left)] = image[
        cut_top : height - (cut_y - cut_top), cut_left : width - (cut_x - cut_left)
    ]
    return FirstStep(canvas, (left - cut_left, top - cut_top), (1.0, 1.0), (height, width))


# -- geometry back to the frame ----------------------------------------------------------
@dataclass(frozen=True)
class PackageGeometry:
    """How the prepared image (what our resize takes) maps back to the original frame.

    ``frame_hw``: original frame. ``crop``: (x0, y0, width, height) of the
    static-crop window in frame pixels (the whole frame without a crop).
    ``pad``: (left, top) of that window's top-left corner in the prepared
    image; ``scale``: prepared pixels per window pixel (x, y). ``prepared_hw``:
    the prepared image's size. ``content_hw``: the size of the window's
    image inside the prepared one (a first step's resized or cut image).
    A prepared pixel ``x`` shows frame pixel ``(x - pad[0]) / scale[0] + crop[0]``.
    """

    frame_hw: tuple[int, int]
    crop: tuple[int, int, int, int]
    pad: tuple[int, int] = (0, 0)
    scale: tuple[float, float] = (1.0, 1.0)
    prepared_hw: tuple[int, int] | None = None
    content_hw: tuple[int, int] | None = None

    @property
    def is_identity(self) -> bool:
        whole = (0, 0, self.frame_hw[1], self.frame_hw[0])
        return self.crop == whole and self.pad == (0, 0) and self.scale == (1.0, 1.0)

    @property
    def is_offset_only(self) -> bool:
        """Only a crop offset: masks move by whole pixels, no resampling."""
        return self.pad == (0, 0) and self.scale == (1.0, 1.0)

    def boxes_to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy in prepared pixels -> frame pixels, clamped to the frame (stock's arithmetic order:
        subtract the pad, divide by the scale, add the crop offset, clamp)."""
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
        boxes[:, 0::2] = (boxes[:, 0::2] - self.pad[0]) / self.scale[0] + self.crop[0]
        boxes[:, 1::2] = (boxes[:, 1::2] - self.pad[1]) / self.scale[1] + self.crop[1]
        fh, fw = self.frame_hw
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, fw)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, fh)
        return boxes

    def masks_to_frame(self, mask_logits) -> "sv.CompactMask":
        """Mask logits (N, Hm, Wm) over the model input -> masks on the frame, as stock places them.

        For a first step (stock's ``align_instance_segmentation_results``):
        the pads of the prepared image are cut from the logits at mask scale
        (``round(Hm / H_prepared * pad)``; a negative pad, centre-crop's cut,
        adds zero logits instead), the rest is upsampled bilinearly
        (``F.interpolate``, align_corners=False: our reference's arithmetic;
        stock's torchvision resize differs on a few pixels) straight to the
        crop's size, thresholded at 0 and placed at the crop's offset.

        >>> import torch
        >>> g = PackageGeometry((4, 8), (0, 0, 8, 4), pad=(0, 2), scale=(1.0, 1.0),
        ...                     prepared_hw=(8, 8), content_hw=(4, 8))
        >>> logits = torch.full((1, 4, 4), -1.0); logits[0, 1:3] = 1.0  # rows 1-2 hold the content
        >>> g.masks_to_frame(logits).to_dense()[0].all()
        np.True_
        """
        import supervision as sv
        import torch

        logits = mask_logits.detach().float().cpu()
        count, mh, mw = logits.shape
        (ph, pw), (content_h, content_w) = self.prepared_hw, self.content_hw
        left, top = self.pad
        right, bottom = pw - left - content_w, ph - top - content_h
        cut_top, cut_bottom = round(mh / ph * top), round(mh / ph * bottom)
        cut_left, cut_right = round(mw / pw * left), round(mw / pw * right)
        negative = [abs(min(v, 0)) for v in (cut_left, cut_right, cut_top, cut_bottom)]
        if any(negative):
            logits = torch.nn.functional.pad(logits, negative, "constant", 0)
        cut_top, cut_bottom, cut_left, cut_right = (max(v, 0) for v in (cut_top, cut_bottom, cut_left, cut_right))
        window = logits[:, cut_top : logits.shape[1] - cut_bottom, cut_left : logits.shape[2] - cut_right]
        x0, y0, crop_w, crop_h = self.crop
        if count == 0:
            dense = np.zeros((0, crop_h, crop_w), bool)
        else:
            upsampled = torch.nn.functional.interpolate(
                window.unsqueeze(0), size=(crop_h, crop_w), mode="bilinear", align_corners=False
            )[0]
            dense = (upsampled > 0).numpy()
        whole = np.tile(np.array([[0, 0, crop_w, crop_h]], np.float32), (count, 1))
        compact = sv.CompactMask.from_dense(dense, whole, image_shape=(crop_h, crop_w))
        return compact.with_offset(x0, y0, self.frame_hw)

    def detections_to_frame(self, detections, prepared_xyxy: np.ndarray | None = None, mask_logits=None):
        """``sv.Detections`` over the prepared image -> over the frame (boxes and ``sv.CompactMask``).

        An offset-only geometry (static crop, no first step) moves each mask
        crop by whole pixels: the pixels are those of masks upsampled straight to
        the crop, as stock. With a first step and ``mask_logits`` the masks are
        rebuilt from the logits as stock places them (:meth:`masks_to_frame`);
        without logits that is a ``ValueError``: resampling finished masks back
        through two resizes would only approximate stock's pixels.

        ``mask_logits``: the detections' mask logits (N, Hm, Wm); given with
        a first step, the masks are rebuilt from them as stock places them
        (:meth:`masks_to_frame`) instead of resampled.

        ``prepared_xyxy``: the same detections' boxes in prepared pixels
        *before* any clamping (:func:`prepared_boxes`); stock clamps boxes
        only to the whole frame, so a box may reach past the crop. Without it
        the detections' own (clamped) boxes are mapped.
        """
        import supervision as sv

        if self.is_identity:
            return detections
        fh, fw = self.frame_hw
        x0, y0, cw, ch = self.crop
        if len(detections) and detections.xyxy is not None:
            source = detections.xyxy if prepared_xyxy is None else prepared_xyxy
            if len(source) != len(detections):
                raise ValueError(f"{len(source)} unclamped boxes for {len(detections)} detections")
            detections.xyxy = self.boxes_to_frame(source).astype(detections.xyxy.dtype)
        mask = detections.mask
        if mask is None:
            return detections
        if mask_logits is not None and not self.is_offset_only:
            if len(mask_logits) != len(detections):
                raise ValueError(f"{len(mask_logits)} mask logits for {len(detections)} detections")
            detections.mask = self.masks_to_frame(mask_logits)
            return detections
        if not self.is_offset_only:
            # Resampling finished masks back through two resizes could only approximate stock's pixels.
            raise ValueError("a first step's masks are rebuilt from their logits: pass mask_logits")
        compact = mask if isinstance(mask, sv.CompactMask) else sv.CompactMask.from_dense(
            np.asarray(mask, bool), detections.xyxy, image_shape=mask.shape[1:]
        )
        detections.mask = compact.with_offset(x0, y0, (fh, fw))
        return detections


def prepared_boxes(boxes_cxcywh, prepared_hw: tuple[int, int]) -> np.ndarray:
    """Normalised cxcywh (a torch tensor (N, 4)) -> xyxy in prepared pixels, unclamped, stock's float32 order.

    >>> import torch
    >>> prepared_boxes(torch.tensor([[0.5, 0.5, 1.5, 0.5]]), (10, 20)).tolist()
    [[-5.0, 2.5, 25.0, 7.5]]
    """
    import torch

    boxes = boxes_cxcywh.detach().float().cpu()
    cxcy, wh = boxes[:, :2], boxes[:, 2:]
    xyxy = torch.cat([cxcy - 0.5 * wh, cxcy + 0.5 * wh], dim=-1)
    height, width = prepared_hw
    return (xyxy * torch.tensor([width, height, width, height])).numpy()


# -- all steps of one package ----------------------------------------------------------
@dataclass(frozen=True)
class PackageSteps:
    """The image steps of one package, built by :meth:`from_config` (defaults: no step).

    ``static_crop``: percent ``(x_min, x_max, y_min, y_max)`` or None.
    ``grayscale``: bool. ``contrast``: one of :data:`CONTRAST_TYPES` or None.
    ``auto_orient``: bool (see the module docstring). ``first_step``: one of
    :data:`FIRST_STEP_MODES` or None; ``dataset_hw``: its (H, W);
    ``padding_value``: its letterbox padding.
    """

    static_crop: tuple[int, int, int, int] | None = None
    grayscale: bool = False
    contrast: str | None = None
    auto_orient: bool = False
    first_step: str | None = None
    dataset_hw: tuple[int, int] | None = None
    padding_value: int = 0

    def __post_init__(self) -> None:
        if self.contrast is not None and self.contrast not in CONTRAST_TYPES:
            raise InvalidArgumentError(f"contrast must be one of {CONTRAST_TYPES} or None, got {self.contrast!r}")
        if (self.first_step is None) != (self.dataset_hw is None):
            raise InvalidArgumentError("first_step and dataset_hw go together (both set or both None)")
        if self.first_step is not None and self.first_step not in FIRST_STEP_MODES:
            raise InvalidArgumentError(f"first_step must be one of {FIRST_STEP_MODES}, got {self.first_step!r}")
        if not 0 <= int(self.padding_value) <= 255:
            raise InvalidArgumentError(f"padding_value must be in 0..255, got {self.padding_value!r}")

    @classmethod
    def from_config(cls, config) -> "PackageSteps":
        """From a parsed :class:`~inference_accel.models.package_config.InferenceConfig`, with stock's rules:
        a step applies when present and ``enabled``; the first step needs dataset dimensions and a
        non-stretch mode; ``fit-longer-edge`` counts as stretch (inference-models' RF-DETR substitution)."""
        pre = config.image_pre_processing
        net = config.network_input
        crop = pre.static_crop
        mode = net.resize_mode.value
        dims = net.dataset_version_resize_dimensions
        two_step = dims is not None and mode not in ("stretch", "fit-longer-edge")
        return cls(
            static_crop=(crop.x_min, crop.x_max, crop.y_min, crop.y_max) if crop and crop.enabled else None,
            grayscale=bool(pre.grayscale and pre.grayscale.enabled),
            contrast=pre.contrast.type.value if pre.contrast and pre.contrast.enabled else None,
            auto_orient=bool(pre.auto_orient and pre.auto_orient.enabled),
            first_step=mode if two_step else None,
            dataset_hw=(dims.height, dims.width) if two_step else None,
            padding_value=int(net.padding_value or 0),
        )

    @property
    def is_identity(self) -> bool:
        """No step changes the frame: it goes to our resize as it is."""
        return self.static_crop is None and not self.grayscale and self.contrast is None and self.first_step is None

    @property
    def host_only_reason(self) -> str | None:
        """Why part of this package's preparation runs on the host's reference code, or None."""
        if self.contrast is not None:
            return f"contrast ({self.contrast}) runs scikit-image's exposure on the host (reference path)"
        return None

    def describe(self) -> str:
        """One line naming the active steps (for ``doctor`` and logs)."""
        parts = []
        if self.static_crop is not None:
            parts.append("static crop {}..{} x {}..{} %".format(*self.static_crop))
        if self.grayscale:
            parts.append("grayscale (OpenCV)")
        if self.contrast is not None:
            parts.append(f"contrast {self.contrast} (scikit-image, host)")
        if self.first_step is not None:
            parts.append(f"first step {self.first_step} to {self.dataset_hw[1]}x{self.dataset_hw[0]} (OpenCV)")
        return ", ".join(parts) or "none"

    def apply(self, frame: np.ndarray, orientation: int | None = None) -> tuple[np.ndarray, PackageGeometry]:
        """The BGR uint8 image our resize takes, and its :class:`PackageGeometry`.

        ``orientation``: the EXIF orientation of an image whose pixels are
        not yet oriented (applied when the package enables auto-orient;
        None for frames already oriented and for video).
        """
        frame = validate_frame(frame)
        if orientation is not None and self.auto_orient:
            frame = apply_exif_orientation(frame, orientation)
        fh, fw = frame.shape[:2]
        image = frame
        crop = (0, 0, fw, fh)
        if self.static_crop is not None:
            x0, y0, x1, y1 = static_crop_window((fh, fw), self.static_crop)
            if x1 <= x0 or y1 <= y0:
                raise InvalidFrameError(
                    f"the package's static crop {self.static_crop} (x_min, x_max, y_min, y_max %) of a "
                    f"{fw}x{fh} frame keeps no pixel ({x1 - x0}x{y1 - y0})"
                )
            image = frame[y0:y1, x0:x1]
            crop = (x0, y0, x1 - x0, y1 - y0)
        if self.grayscale:
            image = grayscale_bgr(image)
        if self.contrast is not None:
            image = apply_contrast(image, self.contrast)
        if self.first_step is None:
            return image, PackageGeometry((fh, fw), crop, prepared_hw=image.shape[:2])
        if self.first_step == "center-crop":
            step = center_crop_first_step(image, self.dataset_hw)
        else:
            step = letterbox_first_step(image, self.dataset_hw, self.padding_value)
        content_hw = (crop[3], crop[2]) if self.first_step == "center-crop" else step.content_hw
        return step.canvas, PackageGeometry((fh, fw), crop, step.pad, step.scale, step.canvas.shape[:2], content_hw)
