"""Sample media: real photographs, real camera moves, real video files.

The photographs ship inside scikit-image (``skimage.data``): no download, no
synthetic noise. They are laid out as a panorama and a virtual camera pans and
zooms across it, rendered at the sizes our users run: 312p, 720p, 1080p, 4K
(3840x2160) and portrait 1080x1920. Videos are rendered on first use and
written once into the cache directory (never shipped or committed).

>>> SAMPLE_SIZES["1080p"]
(1080, 1920)
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from inference_accel import extras
from inference_accel.arguments import check_bool, check_optional_positive_int, check_positive_int, check_size
from inference_accel.errors import UnreadableMediaError
from inference_accel.models.cache import cache_dir

logger = logging.getLogger("inference_accel")

# name -> (height, width)
SAMPLE_SIZES: dict[str, tuple[int, int]] = {
    "312p": (312, 556),
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "4K": (2160, 3840),
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
    tile_hw = check_size("tile_hw", tile_hw)
    tiles = [cv2.resize(_photo(n), (tile_hw[1], tile_hw[0]), interpolation=cv2.INTER_CUBIC) for n in _PHOTOS]
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in (0, 3)]
    return np.concatenate(rows, axis=0)


def camera_frames(size_hw: tuple[int, int], count: int = SAMPLE_FRAMES):
    """Yield ``count`` BGR frames of a camera panning and zooming over the panorama."""
    size_hw = check_size("size_hw", size_hw)
    count = check_positive_int("count", count)
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
    frames = check_positive_int("frames", frames)
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
#: Containers ``predict`` writes an annotated video to (``mp4v`` codec).
VIDEO_OUTPUT_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv"}

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, CRC included: always these 12 bytes
_PILLOW_TRUNCATED = threading.Lock()  # serialises our own flips of Pillow's LOAD_TRUNCATED_IMAGES


def _jpeg_end_missing(data: bytes) -> str | None:
    """Walk a JPEG's segments and scans to its EOI marker; say what is cut short, or None.

    Segments are skipped by their lengths and scans up to the next marker, so
    bytes after the EOI (a vendor trailer, an appended motion-photo video) and
    marker-like bytes inside APP segments (EXIF, thumbnails) do not matter.
    """
    pos, size = 2, len(data)
    markers = None  # positions of the 0xFF that starts a marker, found at the first scan
    while True:
        marker_at = data.find(b"\xff", pos)
        if marker_at < 0:
            return "truncated: the JPEG ends before its end marker (EOI)"
        pos = marker_at
        while pos < size and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= size:
            return "truncated: the JPEG ends before its end marker (EOI)"
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers: no length
            continue
        if pos + 2 > size:
            return "truncated: the JPEG ends inside a segment header"
        end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if end > size:
            return f"truncated: the JPEG ends inside a segment (marker 0x{marker:02X})"
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            if markers is None:
                # In entropy-coded data 0xFF is followed by 0x00 (stuffing), an RST
                # marker (0xD0-0xD7) or more 0xFF fill; anything else starts a marker.
                raw = np.frombuffer(data, np.uint8)
                ff = np.flatnonzero(raw[:-1] == 0xFF)
                after = raw[ff + 1]
                markers = ff[(after != 0x00) & (after != 0xFF) & ((after < 0xD0) | (after > 0xD7))]
            k = int(np.searchsorted(markers, pos))
            if k == markers.size:
                return "truncated: the JPEG ends inside its image data (no end marker, EOI)"
            pos = int(markers[k])


def image_damage(data: bytes) -> str | None:
    """Why the encoded image ``data`` is truncated or corrupt, or None if nothing is found.

    Two checks, both needed: the end marker a whole file has (JPEG's EOI,
    found by walking its segments and scans; PNG's IEND chunk), which Pillow
    does not insist on for PNG nor at all once other code has turned on its
    global ``ImageFile.LOAD_TRUNCATED_IMAGES``;
    and a full decode by Pillow with truncated images refused, which finds
    a cut inside the compressed data and (PNG) broken chunk CRCs or zlib
    streams. OpenCV reports none of this for a JPEG: it decodes what is
    there, fills the rest and only prints libjpeg's warning. A format Pillow
    cannot identify is left to OpenCV.

    >>> image_damage(bytes.fromhex("ffd8ffda0002") + bytes(8))  # a scan cut short
    'truncated: the JPEG ends inside its image data (no end marker, EOI)'
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    if data.startswith(_JPEG_SOI):
        missing = _jpeg_end_missing(data)
        if missing is not None:
            return missing
    elif data.startswith(_PNG_SIGNATURE) and data.rfind(_PNG_IEND) < 0:
        return "truncated: the PNG end chunk (IEND) is missing"
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.debug("Pillow's LOAD_TRUNCATED_IMAGES is on (set by other code): only the end markers are checked")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return None  # not Pillow's to judge (a format it lacks, or a size it refuses): OpenCV decides
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # what Pillow's decoders raise on bad data
        text = str(exc) or type(exc).__name__
        return f"{'truncated' if 'truncated' in text.lower() else 'corrupt'} (Pillow: {text})"
    return None


def _decode_leniently(data: bytes) -> np.ndarray | None:
    """BGR pixels of a truncated image, as far as Pillow can decode it (the rest is filled)."""
    from PIL import Image, ImageFile, ImageOps

    with _PILLOW_TRUNCATED:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = ImageOps.exif_transpose(image).convert("RGB")
        except Exception:  # noqa: BLE001 - nothing decodable: the caller says so
            return None
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


def read_image(path: str | Path, accept_truncated: bool = False) -> np.ndarray:
    """Read a BGR uint8 image or raise :class:`UnreadableMediaError` naming the file.

    A truncated or corrupt file (see :func:`image_damage`) is an error, never
    a silently half-grey frame. ``accept_truncated=True`` (the CLI's
    ``--accept-truncated``) reads what is there instead, with a warning that
    names the file. Pixels are OpenCV's ``imread`` (EXIF orientation
    applied); the check costs one more decode by Pillow.
    """
    accept_truncated = check_bool("accept_truncated", accept_truncated)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read image {path}: {exc.strerror or exc}") from None
    damage = image_damage(data)
    if damage is not None and not accept_truncated:
        raise UnreadableMediaError(
            f"image {path} is {damage}; nothing was processed (--accept-truncated reads what is there)"
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None and damage is not None:
        image = _decode_leniently(data)
    if image is None:
        raise UnreadableMediaError(f"cannot read image {path}: missing, not an image, or corrupt")
    if damage is not None:
        logger.warning("image %s is %s: read anyway (--accept-truncated), the missing part is filled", path, damage)
    return image


class VideoFrames:
    """Iterate the BGR frames of a video; raises :class:`UnreadableMediaError` if it cannot be decoded.

    >>> # for frame in VideoFrames("clip.mp4", limit=10): ...
    """

    def __init__(self, path: str | Path, limit: int | None = None):
        limit = check_optional_positive_int("limit", limit)
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
