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
