"""End to end: the commands a newcomer types, on the real seg-nano model and sample video."""

import json
import os
import subprocess
import sys

import pytest

from inference_accel.cli import build_parser
from inference_accel.models.specs import SEG_MODELS


def run_cli(*args, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "inference_accel.cli", *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_bench_runs_a_few_frames_of_the_sample_video(tmp_path):
    report_path = tmp_path / "bench.json"
    result = run_cli("bench", "--video", "312p", "--frames", "3", "--warmup", "1", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["frames"] == 3 and report["frame_hw"] == [312, 556]
    assert report["end_to_end_fps"] > 0
    assert set(report["median_ms"]) == {"decode", "preprocess", "inference", "postprocess", "response"}
    assert report["median_ms"]["inference"] > 0
    assert report["implementations"]["preprocess"] and report["implementations"]["postprocess"]
    assert "end-to-end" in result.stdout and "fps" in result.stdout


def test_bench_reference_paths_and_depth_two(tmp_path):
    report_path = tmp_path / "bench.json"
    run_cli("bench", "--video", "312p", "--frames", "2", "--warmup", "0", "--preproc", "reference", "--postproc", "reference", "--pipeline-depth", "2", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["implementations"] == {"preprocess": ["reference"], "postprocess": ["reference"]}
    assert report["pipeline_depth"] == 2 and report["frames"] == 2


def test_predict_writes_annotated_image_and_json(tmp_path):
    import cv2
    from skimage import data

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    output = tmp_path / "out.png"
    run_cli("predict", str(image), "--output", str(output))
    annotated = cv2.imread(str(output))
    assert annotated is not None and annotated.shape == (512, 512, 3)
    payload = json.loads(output.with_suffix(".json").read_text())
    detections = payload["frames"][0]["detections"]
    assert detections, "the demo-calibrated model detects something on this photo"
    assert {"x1", "y1", "x2", "y2", "confidence", "class_id", "class_name", "points"} <= set(detections[0])
    assert not (annotated == cv2.imread(str(image))).all()  # something was drawn


def test_doctor_names_active_paths_and_reasons():
    result = run_cli("doctor")
    assert "preprocess: active implementation" in result.stdout
    assert "postprocess: active implementation" in result.stdout
    assert "unavailable:" in result.stdout  # no GPU here: the triton paths say why


def test_every_seg_size_is_selectable_for_export():
    parser = build_parser()
    for name in SEG_MODELS:
        assert parser.parse_args(["export", "--model", name]).model == name
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--model", "seg-huge"])
