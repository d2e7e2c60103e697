import json

import numpy as np
import pytest
import torch

from inference_accel.engine.io_spec import check_io
from inference_accel.engine.onnxruntime_engine import OnnxRuntimeEngine
from inference_accel.errors import InvalidModelError, ModelNotFoundError
from inference_accel.models.source import resolve_model
from tests.helpers_onnx import write_tiny_seg_model, write_wrong_io_model


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model not found"):
        resolve_model(tmp_path / "nope.onnx")


def test_wrong_io_onnx_is_rejected_with_what_it_has(tmp_path):
    path = write_wrong_io_model(tmp_path / "wrong.onnx")
    with pytest.raises(InvalidModelError, match=r"not an RF-DETR-Seg model.*missing output.*dets.*outputs: y"):
        OnnxRuntimeEngine(path)


def test_garbage_file_is_rejected(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x00not onnx")
    with pytest.raises(InvalidModelError, match="cannot load"):
        OnnxRuntimeEngine(path)


@pytest.mark.parametrize(
    "outputs,message",
    [
        ([("dets", (1, 100, 4)), ("labels", (1, 90, 91)), ("masks", (1, 100, 78, 78))], "share a static query count"),
        ([("dets", (1, 100, 5)), ("labels", (1, 100, 91)), ("masks", (1, 100, 78, 78))], "dets must be"),
        ([("dets", (1, 100, 4)), ("labels", (1, 100, 91)), ("masks", (1, 100, 78))], "masks"),
    ],
)
def test_io_contract_violations(outputs, message):
    with pytest.raises(InvalidModelError, match=message):
        check_io([("input", (1, 3, 312, 312))], outputs)


def test_engine_binds_preallocated_buffers_and_matches_plain_run(tmp_path):
    import onnxruntime as ort

    path = write_tiny_seg_model(tmp_path / "tiny.onnx")
    engine = OnnxRuntimeEngine(path, slots=2)
    assert engine.spec.input_hw == (32, 32) and engine.spec.mask_hw == (8, 8)
    pointers = [b.input.data_ptr() for b in engine.slots]
    x = torch.rand(1, 3, 32, 32)
    engine.slots[1].input.copy_(x)
    out = engine.run(1)
    assert [b.input.data_ptr() for b in engine.slots] == pointers  # no reallocation
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    for got, want in zip((out.dets, out.labels, out.masks), expected):
        np.testing.assert_array_equal(got.numpy(), want)


def test_package_directory(tmp_path):
    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\ndog\n")
    (tmp_path / "inference_config.json").write_text(
        json.dumps({"network_input": {"training_input_size": {"height": 32, "width": 32}, "resize_mode": "letterbox"}})
    )
    source = resolve_model(tmp_path)
    assert source.kind == "onnx" and source.class_names == ("cat", "dog")
    assert source.input_hw == (32, 32) and source.resize_mode == "letterbox" and source.num_classes == 2


def test_declared_input_size_other_than_the_model_takes_the_model_size_with_one_warning(tmp_path, caplog):
    """inference-models' rule (align_training_input_size_with_model): the weights decide, a warning says so."""
    from inference_accel import dispatch
    from inference_accel.flags import Flags
    from inference_accel.pipeline import SegmentationPipeline

    dispatch.reset_runtime_state()
    answers = {}
    for declared in (32, 48):
        package = tmp_path / f"declared{declared}"
        package.mkdir()
        write_tiny_seg_model(package / "weights.onnx", size=32)
        (package / "class_names.txt").write_text("a\nb\nc\nd\n")
        (package / "inference_config.json").write_text(
            json.dumps({"network_input": {"training_input_size": {"height": declared, "width": declared}}})
        )
        frame = np.random.default_rng(5).integers(0, 256, (40, 52, 3), dtype=np.uint8)
        with caplog.at_level("WARNING"):
            caplog.clear()
            for _ in range(2):
                pipeline = SegmentationPipeline(str(package), flags=Flags(), threshold=0.0)
                answers[declared] = next(iter(pipeline.run([frame]))).detections
        warnings = [r.getMessage() for r in caplog.records if "training_input_size" in r.getMessage()]
        if declared == 32:
            assert warnings == []
        else:
            assert len(warnings) == 1, warnings
            assert "takes 32x32 input" in warnings[0] and "declares training_input_size 48x48" in warnings[0]
    assert len(answers[32]) > 0
    np.testing.assert_array_equal(answers[32].xyxy, answers[48].xyxy)
    np.testing.assert_array_equal(answers[32].mask.to_dense(), answers[48].mask.to_dense())


def test_incomplete_package_names_what_is_missing(tmp_path):
    (tmp_path / "class_names.txt").write_text("cat\n")
    with pytest.raises(ModelNotFoundError, match="inference_config.json"):
        resolve_model(tmp_path)


def test_bad_resize_mode_in_package(tmp_path):
    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\n")
    (tmp_path / "inference_config.json").write_text(json.dumps({"network_input": {"resize_mode": "fisheye"}}))
    with pytest.raises(InvalidModelError, match="fisheye"):
        resolve_model(tmp_path)


# -- class names shorter than the model's classes: one rule, one warning ------------
def _write_sidecar(model, **meta):
    model.with_suffix(".json").write_text(json.dumps(meta))


def test_sidecar_and_package_drop_the_same_class_ids(tmp_path):
    """Class ids >= len(class_names) are dropped (inference-models' rule) for a sidecar as for a package."""
    from inference_accel.pipeline import SegmentationPipeline

    package = tmp_path / "package"
    package.mkdir()
    write_tiny_seg_model(package / "weights.onnx")  # 4 classes
    (package / "class_names.txt").write_text("cat\ndog\n")
    (package / "inference_config.json").write_text(json.dumps({}))
    loose = write_tiny_seg_model(tmp_path / "tiny.onnx")
    _write_sidecar(loose, input_size=32, class_names=["cat", "dog"])
    assert resolve_model(loose).num_classes == resolve_model(package).num_classes == 2

    frame = np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    everything = SegmentationPipeline(str(write_tiny_seg_model(tmp_path / "bare.onnx")), threshold=0.0).predict(frame)
    assert set(everything.class_id.tolist()) & {2, 3}, "the tiny model scores ids 2 and 3 too"
    from_package = SegmentationPipeline(str(package), threshold=0.0).predict(frame)
    from_sidecar = SegmentationPipeline(str(loose), threshold=0.0).predict(frame)
    assert from_sidecar.class_id.tolist() == from_package.class_id.tolist()
    assert set(from_sidecar.class_id.tolist()) <= {0, 1}
    assert list(from_sidecar.data["class_name"]) == list(from_package.data["class_name"])


def test_dropped_class_ids_are_warned_once(tmp_path, caplog):
    import logging

    from inference_accel.models.source import warn_dropped_classes

    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\ndog\n")
    (tmp_path / "inference_config.json").write_text("{}")
    source = resolve_model(tmp_path)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        warn_dropped_classes(source, 4)
        warn_dropped_classes(source, 4)
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "2, 3" in lines[0] and "class_names.txt" in lines[0] and "4 classes" in lines[0]


def test_cli_warns_about_dropped_class_ids(tmp_path, capsys, restore_output_state):
    import cv2

    from inference_accel.cli import main

    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\n")
    (tmp_path / "inference_config.json").write_text("{}")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((20, 24, 3), 120, np.uint8))
    assert main(["predict", str(image), "--model", str(tmp_path), "--output", str(tmp_path / "o.png")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "dropped" in line]
    assert len(warnings) == 1 and "class id(s) 1, 2, 3 are dropped" in warnings[0], warnings


@pytest.mark.parametrize(
    "config,message",
    [
        ([1], "must be a JSON object"),
        ("text", "must be a JSON object"),
        ({"network_input": []}, "network_input"),
        ({"network_input": {"training_input_size": {"width": 32}}}, "height"),
        ({"network_input": {"training_input_size": {"height": 32, "width": "32"}}}, "width"),
        ({"network_input": {"training_input_size": {"height": 0, "width": 32}}}, "height"),
        ({"network_input": {"training_input_size": {"height": True, "width": 32}}}, "height"),
        ({"network_input": {"resize_mode": 3}}, "resize_mode"),
    ],
)
def test_wrong_shaped_package_config(tmp_path, config, message):
    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\n")
    (tmp_path / "inference_config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidModelError, match=message) as info:
        resolve_model(tmp_path)
    assert "inference_config.json" in str(info.value)


def test_class_names_must_be_utf8_and_not_empty(tmp_path):
    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "inference_config.json").write_text("{}")
    (tmp_path / "class_names.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(InvalidModelError, match="class_names.txt.*UTF-8"):
        resolve_model(tmp_path)
    (tmp_path / "class_names.txt").write_text("\n \n")
    with pytest.raises(InvalidModelError, match="class_names.txt.*no class names"):
        resolve_model(tmp_path)
    (tmp_path / "class_names.txt").write_bytes("\ufeffcat\ndog\n".encode())  # a BOM is not part of a name
    assert resolve_model(tmp_path).class_names == ("cat", "dog")


@pytest.mark.parametrize(
    "sidecar,message",
    [
        ("{oops", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({}), "input_size"),
        (json.dumps({"input_size": 31.5}), "input_size"),
        (json.dumps({"input_size": 32, "class_names": [1, 2]}), "class_names"),
        (json.dumps({"input_size": 32, "class_names": []}), "class_names"),
    ],
)
def test_bad_sidecar_is_an_invalid_model(tmp_path, sidecar, message):
    model = write_tiny_seg_model(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text(sidecar)
    with pytest.raises(InvalidModelError, match=message) as info:
        resolve_model(model)
    assert "m.json" in str(info.value)


def test_plan_needs_a_gpu(tmp_path, monkeypatch):
    from inference_accel.errors import InferenceAccelError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = tmp_path / "e.plan"
    plan.write_bytes(b"\x00")
    with pytest.raises(InferenceAccelError, match=r"e\.plan.*GPU"):
        resolve_model(plan)


def test_resolve_model_checks_its_arguments(tmp_path):
    from inference_accel.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="model must be"):
        resolve_model(3)
    with pytest.raises(InvalidArgumentError, match="auto_export"):
        resolve_model(tmp_path, auto_export="no")


def test_export_destination_must_be_onnx(tmp_path):
    """A destination named model.json would have been overwritten by its own sidecar (same path)."""
    from inference_accel.errors import InferenceAccelError
    from inference_accel.models.export import export_model

    with pytest.raises(InferenceAccelError, match=r"model\.json must end in \.onnx"):
        export_model("seg-nano", output=tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()


def test_pipeline_warns_about_dropped_class_ids(tmp_path, caplog):
    # Library users (not only the CLI) hear which ids a short class list drops.
    import logging

    from inference_accel.pipeline import SegmentationPipeline

    write_tiny_seg_model(tmp_path / "weights.onnx")
    (tmp_path / "class_names.txt").write_text("cat\ndog\n")
    (tmp_path / "inference_config.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        SegmentationPipeline(tmp_path)
    assert any("dropped" in r.getMessage() and "2, 3" in r.getMessage() for r in caplog.records)
