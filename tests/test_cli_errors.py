"""Every CLI failure is one line that names the input and what is wrong: no traceback, non-zero exit.

Runs in-process (``main([...])`` with capsys) on a tiny ONNX model and tiny
images; no export, no sample video. Ctrl-C is injected as a KeyboardInterrupt
from a stand-in frame source, so the partial-results path is deterministic.
"""

from __future__ import annotations

import json
import traceback

import cv2
import numpy as np
import pytest
import torch

from inference_accel import media
from inference_accel.cli import main
from tests.helpers_onnx import write_tiny_seg_model


# main() configures the package logger for a CLI run: put it back after each test.
pytestmark = pytest.mark.usefixtures("restore_output_state")


def run_main(capsys, *argv):
    """(exit status, stdout, stderr) of ``inference-accel ARGV``; an escaping exception counts as a traceback."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - what a user would see as a traceback
        out, err = capsys.readouterr()
        return None, out, err + "Traceback (escaped main):\n" + traceback.format_exc()
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result, *needles, status=None):
    code, out, err = result
    text = out + err
    assert "Traceback" not in text, text
    assert code not in (0, None), (code, text)
    if status is not None:
        assert code == status, (code, text)
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert str(needle) in errors[0], (needle, errors[0])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_seg_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    return path


def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(ext, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


# -- option values -------------------------------------------------------------
@pytest.mark.parametrize(
    "argv,flag",
    [
        (["bench", "--threshold", "2"], "--threshold"),
        (["bench", "--threshold", "nan"], "--threshold"),
        (["predict", "--threshold", "-0.1"], "--threshold"),
        (["bench", "--max-detections", "-1"], "--max-detections"),
        (["predict", "--max-detections", "0"], "--max-detections"),
        (["bench", "--warmup", "-1"], "--warmup"),
        (["bench", "--frames", "-3"], "--frames"),
        (["predict", "--frames", "-1"], "--frames"),
        (["bench", "--max-detections", "1.5"], "--max-detections"),
    ],
)
def test_bad_option_values_are_one_line_errors(capsys, argv, flag):
    assert_one_line_error(run_main(capsys, *argv), flag, status=2)


def test_unknown_output_extension(capsys, tiny_model, tiny_image, tmp_path):
    out = tmp_path / "annotated.xyz"
    result = run_main(capsys, "predict", tiny_image, "--model", tiny_model, "--output", out)
    assert_one_line_error(result, "--output", "annotated.xyz")
    assert not out.exists()


def test_unknown_output_extension_for_a_video(capsys, tiny_model, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
    for _ in range(3):
        writer.write(np.full((40, 48, 3), 90, np.uint8))
    writer.release()
    result = run_main(capsys, "predict", video, "--model", tiny_model, "--output", tmp_path / "out.png")
    assert_one_line_error(result, "--output", "out.png")


def test_export_output_must_be_onnx(capsys, tmp_path):
    result = run_main(capsys, "export", "--output", tmp_path / "model.json")
    assert_one_line_error(result, "--output", "model.json")


def test_json_in_a_missing_directory_fails_before_the_run(capsys, monkeypatch, tiny_model, tiny_image, tmp_path):
    from inference_accel import pipeline

    ran = []
    original = pipeline.SegmentationPipeline.run

    def spy(self, frames):
        ran.append(True)
        return original(self, frames)

    monkeypatch.setattr(pipeline.SegmentationPipeline, "run", spy)
    missing = tmp_path / "no-such-dir" / "dets.json"
    result = run_main(
        capsys, "predict", tiny_image, "--model", tiny_model, "--output", tmp_path / "a.png", "--json", missing
    )
    assert_one_line_error(result, "--json", "no-such-dir")
    assert not ran, "the output path is checked before the run, not after it"
    assert not (tmp_path / "a.png").exists()


def test_bench_json_in_a_missing_directory_fails_before_the_run(capsys, monkeypatch, tiny_model, tmp_path):
    from inference_accel import pipeline

    monkeypatch.setattr(pipeline.SegmentationPipeline, "__init__", lambda *a, **k: pytest.fail("model opened"))
    missing = tmp_path / "nowhere" / "bench.json"
    result = run_main(capsys, "bench", "--model", tiny_model, "--video", tiny_model, "--json", missing)
    assert_one_line_error(result, "--json", "nowhere")


def test_output_in_a_missing_directory(capsys, tiny_model, tiny_image, tmp_path):
    result = run_main(capsys, "predict", tiny_image, "--model", tiny_model, "--output", tmp_path / "gone" / "a.png")
    assert_one_line_error(result, "--output", "gone")


# -- model files ---------------------------------------------------------------
def _package(tmp_path, config, names=b"cat\ndog\n"):
    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_bytes(names)
    (tmp_path / "inference_config.json").write_text(json.dumps(config) if not isinstance(config, str) else config)
    return tmp_path


@pytest.mark.parametrize(
    "config,needle",
    [
        ([1, 2, 3], "JSON object"),
        ("just a string", "JSON object"),
        ({"network_input": {"training_input_size": {"height": 32}}}, "width"),
        ({"network_input": {"training_input_size": {"height": 32, "width": 32.5}}}, "width"),
        ({"network_input": "stretch"}, "network_input"),
        ({"network_input": {"training_input_size": [32, 32]}}, "training_input_size"),
        ({"network_input": {"resize_mode": ["letterbox"]}}, "resize_mode"),
    ],
    ids=["list", "string", "missing-width", "float-width", "network-input-string", "size-list", "mode-list"],
)
def test_wrong_shaped_inference_config(capsys, tmp_path, tiny_image, config, needle):
    package = _package(tmp_path, json.dumps(config))
    result = run_main(capsys, "predict", tiny_image, "--model", package, "--output", tmp_path / "o.png")
    assert_one_line_error(result, "inference_config.json", needle)


def test_non_utf8_class_names(capsys, tmp_path, tiny_image):
    package = _package(tmp_path, {}, names="chat\nchien\nélan\n".encode("latin-1"))
    result = run_main(capsys, "predict", tiny_image, "--model", package, "--output", tmp_path / "o.png")
    assert_one_line_error(result, "class_names.txt", "UTF-8")


@pytest.mark.parametrize(
    "sidecar,needle",
    [
        ("{not json", "not valid JSON"),
        ("[312]", "JSON object"),
        (json.dumps({"class_names": ["a"]}), "input_size"),
        (json.dumps({"input_size": "32"}), "input_size"),
        (json.dumps({"input_size": 32, "class_names": "cat"}), "class_names"),
        (b"\xff\xfe{}", "UTF-8"),
    ],
    ids=["broken", "list", "no-input-size", "str-input-size", "str-class-names", "not-utf8"],
)
def test_broken_or_incomplete_onnx_sidecar(capsys, tmp_path, tiny_image, sidecar, needle):
    model = write_tiny_seg_model(tmp_path / "m.onnx")
    side = tmp_path / "m.json"
    side.write_bytes(sidecar if isinstance(sidecar, bytes) else sidecar.encode())
    result = run_main(capsys, "predict", tiny_image, "--model", model, "--output", tmp_path / "o.png")
    assert_one_line_error(result, "m.json", needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_plan_without_a_gpu(capsys, tmp_path, tiny_image):
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"\x00" * 64)
    result = run_main(capsys, "predict", tiny_image, "--model", plan, "--output", tmp_path / "o.png")
    assert_one_line_error(result, "engine.plan", "GPU")


# -- truncated images ------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image_is_an_error_naming_the_file(capsys, tiny_model, tmp_path, ext):
    data = _encoded(ext)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = run_main(capsys, "predict", cut, "--model", tiny_model, "--output", tmp_path / f"o{ext}")
    assert_one_line_error(result, f"cut{ext}", "truncated", "--accept-truncated")
    assert not (tmp_path / f"o{ext}").exists()


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_accept_truncated_reads_what_is_there(capsys, tiny_model, tmp_path, ext):
    data = _encoded(ext)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / f"o{ext}"
    code, stdout, err = run_main(capsys, "predict", cut, "--model", tiny_model, "--output", out, "--accept-truncated")
    assert code == 0, err
    assert "truncated" in err and f"cut{ext}" in err  # accepted, but never silently
    assert out.exists() and json.loads(out.with_suffix(".json").read_text())["frames"]


# -- Ctrl-C ------------------------------------------------------------------------
class _InterruptedVideo:
    """A frame source that yields ``good`` frames, then raises KeyboardInterrupt (a Ctrl-C mid-run)."""

    def __init__(self, path, limit=None, good=5):
        self.path, self.limit, self.good = path, limit, good
        self.size_hw = (40, 48)
        self.fps = 10.0

    def __len__(self):
        return 100

    def __iter__(self):
        rng = np.random.default_rng(0)
        for _ in range(self.good):
            yield rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        raise KeyboardInterrupt


@pytest.mark.parametrize("depth,timed", [(1, 4), (2, 3)])  # at depth 2 the frame in flight at Ctrl-C is dropped
def test_ctrl_c_in_bench_prints_partial_results_and_exits_130(capsys, monkeypatch, tiny_model, tmp_path, depth, timed):
    monkeypatch.setattr(media, "VideoFrames", _InterruptedVideo)
    report = tmp_path / "bench.json"
    code, out, err = run_main(
        capsys, "bench", "--model", tiny_model, "--video", tiny_model, "--frames", "50", "--warmup", "1",
        "--quiet", "--json", report, "--pipeline-depth", depth,
    )
    assert code == 130, out + err
    assert "Traceback" not in out + err
    notes = [line for line in (out + err).splitlines() if "interrupted" in line]
    assert len(notes) == 1 and f"{timed} timed frame" in notes[0], out + err
    assert "end-to-end" in out and "postprocess" in out  # the table so far
    saved = json.loads(report.read_text())
    assert saved["frames"] == timed and saved["interrupted"] is True


def test_ctrl_c_during_warmup_exits_130_with_a_note(capsys, monkeypatch, tiny_model):
    monkeypatch.setattr(media, "VideoFrames", lambda path, limit=None: _InterruptedVideo(path, limit, good=1))
    code, out, err = run_main(capsys, "bench", "--model", tiny_model, "--video", tiny_model, "--warmup", "3", "--quiet")
    assert code == 130 and "Traceback" not in out + err
    assert "interrupted" in out + err and "warm-up" in out + err


def test_ctrl_c_in_predict_keeps_the_frames_done(capsys, monkeypatch, tiny_model, tmp_path):
    monkeypatch.setattr(media, "VideoFrames", _InterruptedVideo)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"stand-in")
    out_video = tmp_path / "clip-annotated.mp4"
    code, out, err = run_main(capsys, "predict", video, "--model", tiny_model, "--output", out_video)
    assert code == 130 and "Traceback" not in out + err
    assert "interrupted" in out + err
    saved = json.loads(out_video.with_suffix(".json").read_text())
    assert len(saved["frames"]) == 5 and saved["interrupted"] is True


def test_sigint_to_a_running_bench_subprocess(tmp_path, tiny_model):
    """The real thing: SIGINT to ``inference-accel bench`` once its progress bar has moved."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference_accel.cli", "bench", "--model", str(tiny_model), "--video", str(video),
         "--frames", "0", "--warmup", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TQDM_MININTERVAL="0"),
        # A shell's background job ignores SIGINT, and a child inherits that: give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = bytearray()

    def read_stderr():
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            counts = [int(n) for n in re.findall(rb"\| *(\d+)/3000", bytes(err))]
            if counts and max(counts) >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "bench ended before it could be interrupted: " + err.decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    text = out + err.decode(errors="replace")
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    assert "interrupted (Ctrl-C)" in text and "timed frame(s) done" in text
    assert "end-to-end" in out and "fps" in out


def test_output_over_the_input_is_refused(capsys, tiny_model, tmp_path):
    image = tmp_path / "keep.png"
    cv2.imwrite(str(image), np.full((20, 24, 3), 50, np.uint8))
    before = image.read_bytes()
    result = run_main(capsys, "predict", image, "--model", tiny_model, "--output", image)
    assert_one_line_error(result, "--output", "keep.png", "overwritten")
    assert image.read_bytes() == before
