"""Sample media: real photographs, real camera moves, real video files.

The photographs ship inside scikit-image (``skimage.data``): no download, no
synthetic noise. They are laid out as a panorama and a virtual camera pans and
zooms across it, rendered at the sizes our users run: 312p, 720p, 1080p and
portrait 1080x1920. Videos are written once into the cache directory.

>>> SAMPLE_SIZES["1080p"]
(1080, 1920)
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from inference_accel import extras
from inference_accel.errors import UnreadableMediaError
from inference_accel.models.cache import cache_dir

logger = logging.getLogger("inference_accel")

# name -> (height, width)
SAMPLE_SIZES: dict[str, tuple[int, int]] = {
    "312p": (312, 556),
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "portrait": (1920, 1080),
}
DEFAULT_SAMPLE = "1080p"
SAMPLE_FRAMES = 60
SAMPLE_FPS = 30
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "camera")


def _photo(name: str) -> np.ndarray:
    data = extras.require("skimage.data", "demo", "the bundled sample media")
    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)


def panorama(tile_hw: tuple[int, int] = (1080, 1440)) -> np.ndarray:
    """A 2 x 3 mosaic of skimage's photographs, BGR uint8."""
    tiles = [cv2.resize(_photo(n), (tile_hw[1], tile_hw[0]), interpolation=cv2.INTER_CUBIC) for n in _PHOTOS]
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in (0, 3)]
    return np.concatenate(rows, axis=0)


def camera_frames(size_hw: tuple[int, int], count: int = SAMPLE_FRAMES):
    """Yield ``count`` BGR frames of a camera panning and zooming over the panorama."""
    scene = panorama()
    sh, sw = scene.shape[:2]
    out_h, out_w = size_hw
    aspect = out_w / out_h
    for i in range(count):
        t = i / max(count - 1, 1)
        zoom = 1.0 + 0.8 * np.sin(np.pi * t)  # zoom in, then back out
        view_h = min(sh, sw / aspect) / zoom
        view_w = view_h * aspect
        cx = view_w / 2 + (sw - view_w) * t  # pan left to right
        cy = view_h / 2 + (sh - view_h) * (0.5 + 0.4 * np.sin(2 * np.pi * t))
        x0, y0 = cx - view_w / 2, cy - view_h / 2
        matrix = np.array([[out_w / view_w, 0, -x0 * out_w / view_w], [0, out_h / view_h, -y0 * out_h / view_h]])
        yield cv2.warpAffine(scene, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def sample_video_path(name: str = DEFAULT_SAMPLE) -> Path:
    return cache_dir() / "media" / f"sample-{name}.mp4"


def build_sample_video(name: str = DEFAULT_SAMPLE, frames: int = SAMPLE_FRAMES, force: bool = False) -> Path:
    """Write (once) and return the sample video ``name`` (see :data:`SAMPLE_SIZES`)."""
    if name not in SAMPLE_SIZES:
        raise ValueError(f"unknown sample {name!r}; choose one of {sorted(SAMPLE_SIZES)}")
    path = sample_video_path(name)
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = SAMPLE_SIZES[name]
    logger.info("rendering sample video %s (%d frames, %dx%d; once) -> %s", name, frames, w, h, path)
    partial = path.with_suffix(".partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), SAMPLE_FPS, (w, h))
    if not writer.isOpened():
        raise UnreadableMediaError(f"OpenCV cannot write mp4 video to {partial}")
    for frame in camera_frames((h, w), frames):
        writer.write(frame)
    writer.release()
    partial.replace(path)
    return path


def resolve_source(source: str | None) -> Path:
    """A sample name (``312p``...) or None -> the sample video; anything else is a path."""
    if source is None or source in SAMPLE_SIZES:
        return build_sample_video(source or DEFAULT_SAMPLE)
    path = Path(source)
    if not path.exists():
        raise UnreadableMediaError(f"no such file: {path}")
    return path


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def read_image(path: str | Path) -> np.ndarray:
    """Read a BGR uint8 image or raise :class:`UnreadableMediaError`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableMediaError(f"cannot read image {path}: missing, not an image, or corrupt")
    return image


class VideoFrames:
    """Iterate the BGR frames of a video; raises :class:`UnreadableMediaError` if it cannot be decoded.

    >>> # for frame in VideoFrames("clip.mp4", limit=10): ...
    """

    def __init__(self, path: str | Path, limit: int | None = None):
        self.path = Path(path)
        self.capture = cv2.VideoCapture(str(self.path))
        if not self.capture.isOpened():
            raise UnreadableMediaError(f"cannot open video {self.path}: missing, not a video, or corrupt")
        ok, first = self.capture.read()
        if not ok or first is None:
            self.capture.release()
            raise UnreadableMediaError(f"cannot decode any frame of video {self.path}")
        self._first: np.ndarray | None = first
        total = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total = total if total > 0 else None
        self.limit = limit
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or SAMPLE_FPS
        self.size_hw = first.shape[:2]
        self.stopped_early: int | None = None  # frames produced when the decoder failed early

    def __len__(self) -> int:
        counts = [c for c in (self.total, self.limit) if c is not None]
        return min(counts) if counts else 0

    def __iter__(self):
        produced = 0
        while self.limit is None or produced < self.limit:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                ok, frame = self.capture.read()
                if not ok:
                    self._warn_if_short(produced)
                    break
            produced += 1
            yield frame
        self.capture.release()

    def _warn_if_short(self, produced: int) -> None:
        """The decoder stopped before the container's frame count: say so, never drop frames silently."""
        expected = min(c for c in (self.total, self.limit) if c is not None) if self.total else None
        if expected is not None and produced < expected:
            self.stopped_early = produced
            logger.warning(
                "video %s: the decoder stopped after %d of %d frames (truncated or corrupt file)",
                self.path, produced, expected,
            )
