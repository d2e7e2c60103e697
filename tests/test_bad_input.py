"""Every bad input gets one clear line that names the problem, never a deep traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest

from inference_accel.errors import InvalidFrameError
from inference_accel.frames import validate_frame
from inference_accel.preprocess.reference import preprocess_reference
from tests.helpers_onnx import write_tiny_seg_model, write_wrong_io_model

BAD_FRAMES = [
    (np.zeros((8, 8, 3), np.float32), "must be uint8, got float32"),
    (np.zeros((8, 8, 4), np.uint8), "must have 3 channels"),
    (np.zeros((8, 8), np.uint8), "must have shape"),
    (np.zeros((0, 8, 3), np.uint8), "frame is empty"),
    (np.zeros((8, 0, 3), np.uint8), "frame is empty"),
    ([[1, 2, 3]], "must be a numpy array"),
]


@pytest.mark.parametrize("frame,message", BAD_FRAMES)
def test_validate_frame_names_the_problem(frame, message):
    with pytest.raises(InvalidFrameError, match=message):
        validate_frame(frame)


@pytest.mark.parametrize("frame,message", BAD_FRAMES)
def test_reference_preprocessing_rejects_bad_frames(frame, message):
    with pytest.raises(InvalidFrameError, match=message):
        preprocess_reference(frame, (32, 32))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_seg_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.mark.parametrize("frame,message", BAD_FRAMES)
def test_pipeline_rejects_bad_frames(tiny_model, frame, message):
    from inference_accel.pipeline import SegmentationPipeline

    pipeline = SegmentationPipeline(str(tiny_model))
    with pytest.raises(InvalidFrameError, match=message):
        pipeline.predict(frame)


def run_cli(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "inference_accel.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def assert_one_line_error(result, message):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("inference-accel")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_image(tmp_path, tiny_model):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is not a jpeg")
    assert_one_line_error(run_cli("predict", str(bad), "--model", str(tiny_model)), "cannot read image")


def test_unreadable_video(tmp_path, tiny_model):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert_one_line_error(run_cli("bench", "--video", str(bad), "--model", str(tiny_model)), "cannot open video")


def test_missing_media_file(tmp_path, tiny_model):
    assert_one_line_error(run_cli("bench", "--video", str(tmp_path / "none.mp4"), "--model", str(tiny_model)), "no such file")


def test_missing_model_file(tmp_path):
    assert_one_line_error(run_cli("bench", "--model", str(tmp_path / "missing.onnx")), "model not found")


def test_model_with_wrong_io(tmp_path):
    wrong = write_wrong_io_model(tmp_path / "wrong.onnx")
    assert_one_line_error(run_cli("bench", "--model", str(wrong)), "not an RF-DETR-Seg model")


def test_bad_flag_value(tiny_model):
    result = run_cli("doctor", env_extra={"RFDETR_PIPELINE_DEPTH": "7"})
    assert_one_line_error(result, "RFDETR_PIPELINE_DEPTH='7'")


def test_truncated_video_is_reported_not_silently_short(tmp_path, caplog):
    """A video whose decoder stops before its frame count says so (frames are never lost silently)."""
    import logging

    import cv2

    from inference_accel.media import VideoFrames

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    whole = VideoFrames(path)
    assert len(list(whole)) == 30 and whole.stopped_early is None
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        video = VideoFrames(cut)
        got = len(list(video))
    assert 0 < got < 30 and video.stopped_early == got
    assert f"stopped after {got} of 30 frames" in caplog.text


# -- truncated and corrupt images ------------------------------------------------------
def _encoded(ext, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(ext, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
@pytest.mark.parametrize("keep", [0.5, 0.9, "no-end-marker"])
def test_truncated_image_is_an_error_naming_the_file(tmp_path, ext, keep):
    from inference_accel.errors import UnreadableMediaError
    from inference_accel.media import read_image

    data = _encoded(ext)
    if keep == "no-end-marker":
        if ext not in (".jpg", ".png"):
            pytest.skip("only JPEG and PNG have an end marker")
        data = data[:-2] if ext == ".jpg" else data[:-12]  # the EOI marker / the IEND chunk
    else:
        data = data[: int(len(data) * keep)]
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data)
    with pytest.raises(UnreadableMediaError, match=rf"cut\{ext}.*truncated"):
        read_image(path)


def test_corrupt_png_is_an_error(tmp_path):
    from inference_accel.errors import UnreadableMediaError
    from inference_accel.media import read_image

    data = bytearray(_encoded(".png"))
    data[len(data) // 2] ^= 0xFF  # a flipped byte in IDAT: CRC and zlib stream broken
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableMediaError, match=r"flipped\.png"):
        read_image(path)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif"])
def test_whole_images_read_as_before(tmp_path, ext):
    import cv2

    from inference_accel.media import read_image

    path = tmp_path / f"whole{ext}"
    path.write_bytes(_encoded(ext))
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_COLOR))


def test_jpeg_with_trailing_bytes_after_the_end_marker_is_whole(tmp_path):
    from inference_accel.media import read_image

    path = tmp_path / "trailer.jpg"
    path.write_bytes(_encoded(".jpg") + b"\x00\x00vendor trailer")
    assert read_image(path).shape == (48, 64, 3)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_accept_truncated_reads_the_rest(tmp_path, caplog, ext):
    import logging

    from inference_accel.media import read_image

    data = _encoded(ext)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        image = read_image(path, accept_truncated=True)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert f"cut{ext}" in caplog.text and "truncated" in caplog.text


def test_read_image_flag_is_checked(tmp_path):
    from inference_accel.errors import InvalidArgumentError
    from inference_accel.media import read_image

    path = tmp_path / "a.png"
    path.write_bytes(_encoded(".png"))
    with pytest.raises(InvalidArgumentError, match="accept_truncated"):
        read_image(path, accept_truncated="yes")


@pytest.mark.parametrize("limit", [-1, 0, 2.5, True])
def test_video_frames_limit_is_checked(tmp_path, limit):
    import cv2

    from inference_accel.errors import InvalidArgumentError
    from inference_accel.media import VideoFrames

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for _ in range(3):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(InvalidArgumentError, match="limit"):
        VideoFrames(path, limit=limit)
