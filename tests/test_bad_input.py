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
