"""End to end: the commands a newcomer types, on the real seg-nano model and sample video."""

import contextlib
import json
import logging
import os
import subprocess
import sys
import warnings

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


def test_bench_batch_runs_n_frames_per_engine_call(tmp_path):
    from tests.helpers_onnx import write_tiny_batch_seg_model

    model = write_tiny_batch_seg_model(tmp_path / "dyn.onnx")
    report_path = tmp_path / "bench.json"
    result = run_cli("bench", "--model", str(model), "--video", "312p", "--frames", "5", "--warmup", "0",
                     "--batch", "2", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["batch_size"] == 2 and report["frames"] == 5  # the short last batch loses no frame
    assert "batch 2" in result.stdout


def test_bench_batch_on_a_fixed_batch_model_names_both(tmp_path):
    from tests.helpers_onnx import write_tiny_batch_seg_model

    model = write_tiny_batch_seg_model(tmp_path / "fixed.onnx", batch=1)
    result = subprocess.run(
        [sys.executable, "-m", "inference_accel.cli", "bench", "--model", str(model), "--video", "312p",
         "--frames", "2", "--batch", "3"], capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0
    assert "batch_size 3 is not accepted by this model: it has a fixed batch 1" in result.stderr


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
    frame = payload["frames"][0]  # Roboflow's response (inference_accel.response)
    assert frame["image"] == {"width": 512, "height": 512} and frame["frame_id"] == 0
    detections = frame["predictions"]
    assert detections, "the demo-calibrated model detects something on this photo"
    assert {"x", "y", "width", "height", "confidence", "class", "class_id", "detection_id", "points"} <= set(detections[0])
    assert detections[0]["mask_format"] == "polygon" and {"x", "y"} == set(detections[0]["points"][0])
    assert not (annotated == cv2.imread(str(image))).all()  # something was drawn


def test_predict_mask_format_rle_writes_coco_rle(tmp_path):
    import cv2
    import pycocotools.mask as mask_utils
    from skimage import data

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    output = tmp_path / "out.png"
    run_cli("predict", str(image), "--output", str(output), "--mask-format", "rle")
    detections = json.loads(output.with_suffix(".json").read_text())["frames"][0]["predictions"]
    assert detections and all(d["mask_format"] == "rle" and "points" not in d for d in detections)
    rle = detections[0]["rle"]
    assert rle["size"] == [512, 512]
    assert mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).shape == (512, 512)


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


# -- a quiet first run: third-party noise hidden at the call sites, -v shows it --------
def _scriptable(x):
    return x + 1


def _branchy(x):
    return x * 2 if bool(x.sum() > 0) else x


def _trigger_third_party_noise():
    """The real third-party calls behind the first run's wall of output, plus one warning of ours."""
    import torch
    from rfdetr.config import RFDETRSegNanoConfig

    torch.jit.script(_scriptable)  # FutureWarning: torch.jit.script is deprecated (rfdetr's import does this)
    torch.jit.trace(_branchy, torch.ones(2))  # TracerWarning: tensor to Python boolean
    RFDETRSegNanoConfig(pretrain_weights=None)  # PretrainWeightsCompatibilityWarning
    logging.getLogger("rf-detr").warning("Using a different number of positional encodings than DINOv2")
    logging.getLogger("rf-detr").error("a real rf-detr error")
    warnings.warn("a warning of some other code", UserWarning)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def capture_third_party():
    """Run the noisy calls; return (warning category names, rf-detr log levels) that got through."""
    pytest.importorskip("rfdetr.config")
    logger = logging.getLogger("rf-detr")
    handler = _Records()
    logger.addHandler(handler)

    def capture(scope=contextlib.nullcontext):
        handler.records.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with scope():
                _trigger_third_party_noise()
        return {type(w.message).__name__ for w in caught}, [r.levelname for r in handler.records]

    yield capture
    logger.removeHandler(handler)


NOISE = {"FutureWarning", "TracerWarning", "PretrainWeightsCompatibilityWarning"}


def test_silencing_is_scoped_to_the_call_sites(capture_third_party, restore_output_state):
    from inference_accel.models.export import quiet_third_party

    before, logged_before = capture_third_party()
    assert NOISE <= before and "UserWarning" in before and logged_before == ["WARNING", "ERROR"]

    inside, logged_inside = capture_third_party(quiet_third_party)
    assert not (NOISE & inside), inside
    assert "UserWarning" in inside  # other code's warnings still show
    assert logged_inside == ["ERROR"]  # rf-detr's errors still show

    after, logged_after = capture_third_party()  # not global: everything is back after the scope
    assert NOISE <= after and logged_after == ["WARNING", "ERROR"]


def test_verbose_is_accepted_and_shows_third_party_output(capture_third_party, restore_output_state):
    from inference_accel.cli import configure_output
    from inference_accel.models.export import quiet_third_party

    parser = build_parser()
    assert parser.parse_args(["-v", "bench"]).verbose and parser.parse_args(["bench", "--verbose"]).verbose
    assert parser.parse_args(["export", "-v"]).verbose and not parser.parse_args(["doctor"]).verbose

    configure_output(verbose=True)
    shown, logged = capture_third_party(quiet_third_party)
    assert NOISE <= shown and logged == ["WARNING", "ERROR"]
    assert logging.getLogger("inference_accel").isEnabledFor(logging.DEBUG)

    configure_output(verbose=False)
    hidden, logged = capture_third_party(quiet_third_party)
    assert not (NOISE & hidden) and logged == ["ERROR"]
    assert not logging.getLogger("inference_accel").isEnabledFor(logging.DEBUG)


def test_verbose_doctor_prints_our_debug_lines():
    quiet = run_cli("doctor")
    loud = run_cli("doctor", "-v")
    assert "debug:" not in quiet.stderr
    assert "inference-accel: debug: CPUs usable:" in loud.stderr
    assert "thread pools" in quiet.stdout and "CPUs usable:" in quiet.stdout
