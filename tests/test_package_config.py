"""inference_config.json against its schema: good configs parse, each bad field names itself, unknown keys log once."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest

from inference_accel.errors import InvalidModelError
from inference_accel.models.package_config import load_package_config, parse_package_config
from inference_accel.models.source import class_mapping_for, resolve_model, warn_dropped_classes
from tests.helpers_onnx import write_tiny_seg_model

FULL = {
    "image_pre_processing": {
        "auto-orient": {"enabled": True},
        "static-crop": {"enabled": True, "x_min": 10, "x_max": 90, "y_min": 5, "y_max": 95},
        "contrast": {"enabled": False, "type": "Histogram Equalization"},
        "grayscale": {"enabled": True},
    },
    "network_input": {
        "training_input_size": {"height": 32, "width": 32},
        "dataset_version_resize_dimensions": {"height": 24, "width": 40},
        "dynamic_spatial_size_supported": False,
        "color_mode": "rgb",
        "resize_mode": "letterbox",
        "padding_value": 127,
        "input_channels": 3,
        "scaling_factor": 255,
        "normalization": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
    },
    "forward_pass": {"static_batch_size": None, "max_dynamic_batch_size": 8},
    "post_processing": {"type": "sigmoid", "fused": False},
    "model_initialization": {"anything": 1},
    "class_names_operations": [{"type": "class_name_removal", "class_name": "b"}],
}


def _with(path: str, value):
    """FULL with the dotted ``path`` set to ``value``."""
    config = copy.deepcopy(FULL)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


def test_full_config_parses_every_field():
    config = parse_package_config(json.dumps(FULL), "pkg/inference_config.json")
    net = config.network_input
    assert (net.training_input_size.height, net.dataset_version_resize_dimensions.width) == (32, 40)
    assert net.resize_mode.value == "letterbox" and net.color_mode.value == "rgb" and net.padding_value == 127
    assert net.normalization == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    pre = config.image_pre_processing
    assert pre.static_crop.x_max == 90 and pre.auto_orient.enabled and pre.grayscale.enabled
    assert pre.contrast.type.value == "Histogram Equalization" and not pre.contrast.enabled
    assert config.forward_pass.max_dynamic_batch_size == 8 and config.post_processing.type == "sigmoid"
    assert config.removed_class_names == ("b",) and not config.is_legacy


def test_legacy_config_gets_rfdetr_defaults():
    config = parse_package_config("{}", "x.json")
    assert config.is_legacy and config.network_input.resize_mode.value == "stretch"
    old_spelling = parse_package_config('{"network_input": {"resize_mode": "stretch-to"}}', "x")
    assert old_spelling.network_input.resize_mode.value == "stretch"


BAD_FIELDS = [
    ("network_input.training_input_size.height", 0, "greater than 0"),
    ("network_input.training_input_size.width", "32", "valid integer"),
    ("network_input.training_input_size.width", 32.5, "valid integer"),
    ("network_input.training_input_size", [32, 32], "object"),
    ("network_input.dataset_version_resize_dimensions.height", True, "valid integer"),
    ("network_input.dynamic_spatial_size_supported", "no", "valid boolean"),
    ("network_input.color_mode", "rgba", "'bgr' or 'rgb'"),
    ("network_input.resize_mode", "fisheye", "letterbox"),
    ("network_input.padding_value", 256, "less than or equal to 255"),
    ("network_input.padding_value", -1, "greater than or equal to 0"),
    ("network_input.input_channels", 1, "only 3-channel"),
    ("network_input.scaling_factor", 0, "greater than 0"),
    ("network_input.scaling_factor", "255", "scaling_factor"),
    ("network_input.normalization", [[0.5, 0.5], [1, 1, 1]], "3 means"),
    ("network_input.normalization", [[0.5, 0.5, 0.5], [1, 0, 1]], "std of 0"),
    ("network_input.normalization", "imagenet", "normalization"),
    ("image_pre_processing.static-crop.x_min", 101, "less than or equal to 100"),
    ("image_pre_processing.static-crop.x_max", 5, "crop window is empty"),
    ("image_pre_processing.static-crop.enabled", "yes", "valid boolean"),
    ("image_pre_processing.contrast.type", "Sharpen", "Histogram Equalization"),
    ("image_pre_processing.grayscale", True, "object"),
    ("image_pre_processing.auto-orient.enabled", 1, "valid boolean"),
    ("forward_pass.max_dynamic_batch_size", 0, "greater than 0"),
    ("post_processing.type", "argmax", "post_processing"),
    ("class_names_operations.0.type", "rename", "class_names_operations[0]"),
    ("class_names_operations.0.class_name", 3, "valid string"),
]


@pytest.mark.parametrize("path,value,message", BAD_FIELDS, ids=[f"{p}={v!r}" for p, v, _ in BAD_FIELDS])
def test_each_malformed_field_names_itself(path, value, message):
    with pytest.raises(InvalidModelError) as info:
        parse_package_config(json.dumps(_with(path, value)), "pkg/inference_config.json")
    text = str(info.value)
    assert text.startswith("pkg/inference_config.json: "), text
    shown = path.replace(".0.", "[0].").rsplit(".", 1)[0] if path.endswith(("x_max",)) else path.replace(".0.", "[0].")
    assert shown.split(".")[0] in text and message in text, text


def test_missing_required_key_is_named():
    config = copy.deepcopy(FULL)
    del config["image_pre_processing"]["static-crop"]["y_max"]
    with pytest.raises(InvalidModelError, match=r"image_pre_processing\.static-crop\.y_max: required key missing"):
        parse_package_config(json.dumps(config), "p")


def test_malformed_json_and_missing_file_name_the_file(tmp_path):
    with pytest.raises(InvalidModelError, match="p.json is not valid JSON"):
        parse_package_config('{"network_input": ', "p.json")
    with pytest.raises(InvalidModelError, match="must be a JSON object"):
        parse_package_config("[1]", "p.json")
    with pytest.raises(InvalidModelError, match="inference_config.json is missing"):
        load_package_config(tmp_path / "inference_config.json")
    (tmp_path / "inference_config.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InvalidModelError, match="not UTF-8"):
        load_package_config(tmp_path / "inference_config.json")


def test_unknown_keys_are_logged_once_per_file_and_key(caplog):
    config = _with("network_input.novel_key", 1)
    config["image_pre_processing"]["static-crop"]["fuzz"] = True
    config["class_names_operations"][0]["why"] = "x"
    text = json.dumps(config)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        parse_package_config(text, "unknown-a.json")
        parse_package_config(text, "unknown-a.json")
        parse_package_config(text, "unknown-b.json")
    lines = [r.getMessage() for r in caplog.records if "unknown key" in r.getMessage()]
    for key in ("network_input.novel_key", "image_pre_processing.static-crop.fuzz", "class_names_operations[0].why"):
        assert sum(f"unknown key {key} in unknown-a.json" in line for line in lines) == 1, (key, lines)
        assert sum(f"unknown key {key} in unknown-b.json" in line for line in lines) == 1, (key, lines)


# -- through resolve_model: class removal and class counts --------------------------------
def _package(tmp_path, config, names=("a", "b", "c", "d")):
    write_tiny_seg_model(tmp_path / "weights.onnx")  # 4 classes
    (tmp_path / "class_names.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "inference_config.json").write_text(json.dumps(config))
    return tmp_path


def test_class_removal_becomes_the_class_mapping(tmp_path):
    source = resolve_model(_package(tmp_path, FULL))
    assert source.class_names == ("a", "c", "d") and source.class_mapping == (0, -1, 1, 2)
    assert source.num_classes == 3 and source.package_config.network_input.padding_value == 127
    # the mapping written independently: stock renumbers the kept ids in order
    names, mapping = class_mapping_for(("x", "y", "z", "w"), ("x", "z"))
    assert names == ("y", "w") and mapping == (-1, 0, -1, 1)


def test_class_removal_of_an_unlisted_name_is_warned(tmp_path, caplog):
    config = _with("class_names_operations", [{"type": "class_name_removal", "class_name": "zebra"}])
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        source = resolve_model(_package(tmp_path, config))
    assert source.class_names == ("a", "b", "c", "d")
    assert any("'zebra'" in r.getMessage() and "class_names_operations[0]" in r.getMessage() for r in caplog.records)


def test_more_class_names_than_model_classes_is_an_error(tmp_path):
    source = resolve_model(_package(tmp_path, FULL, names=("a", "b", "c", "d", "e", "f")))
    with pytest.raises(InvalidModelError, match="class_names.txt lists 6 class name.*scores only 4"):
        warn_dropped_classes(source, 4)


def test_normalization_from_the_config(tmp_path):
    custom = _with("network_input.normalization", [[0.5, 0.4, 0.3], [0.2, 0.25, 0.5]])
    source = resolve_model(_package(tmp_path, custom))
    assert source.normalization.mean == (0.5, 0.4, 0.3) and source.normalization.std == (0.2, 0.25, 0.5)
    assert source.normalization.channel_order == "rgb"
    bgr = _with("network_input.color_mode", "bgr")
    assert resolve_model(_package(tmp_path, bgr)).normalization.channel_order == "bgr"  # two-step: color_mode holds
    del bgr["network_input"]["dataset_version_resize_dimensions"]
    assert resolve_model(_package(tmp_path, bgr)).normalization.channel_order == "rgb"  # one step: stock swaps
    plain = _with("network_input.normalization", None)
    plain["network_input"]["scaling_factor"] = 1
    n = resolve_model(_package(tmp_path, plain)).normalization
    assert (n.mean, n.std, n.scale) == ((0.0,) * 3, (1.0,) * 3, 1.0)
    assert resolve_model(_package(tmp_path, {})).normalization.is_imagenet  # legacy


def test_package_steps_follow_the_config(tmp_path):
    steps = resolve_model(_package(tmp_path, FULL)).package_steps
    assert steps.static_crop == (10, 90, 5, 95) and steps.grayscale and steps.contrast is None
    assert steps.first_step == "letterbox" and steps.dataset_hw == (24, 40) and steps.padding_value == 127
    fit = _with("network_input.resize_mode", "fit-longer-edge")
    assert resolve_model(_package(tmp_path, fit)).package_steps.first_step is None  # stock: stretch instead
    no_dims = copy.deepcopy(FULL)
    del no_dims["network_input"]["dataset_version_resize_dimensions"]
    assert resolve_model(_package(tmp_path, no_dims)).package_steps.first_step is None
    assert np.isscalar(steps.padding_value)


def test_a_package_source_stays_hashable_and_comparable(tmp_path):
    first, second = resolve_model(_package(tmp_path, FULL)), resolve_model(tmp_path)
    assert first == second and hash(first) == hash(second)


@pytest.mark.parametrize("mode", ["letterbox", "center-crop"])
def test_our_direct_resize_on_top_of_a_first_step_package_is_refused(tmp_path, mode):
    """The package already letterboxes to its dataset size; a second, direct one could not map masks back exactly."""
    from inference_accel.errors import InvalidArgumentError
    from inference_accel.pipeline import SegmentationPipeline

    package = _package(tmp_path, FULL)
    with pytest.raises(InvalidArgumentError, match=f"resize_mode='{mode}'.*leave resize_mode unset"):
        SegmentationPipeline(str(package), resize_mode=mode)
    assert SegmentationPipeline(str(package), resize_mode="stretch").resize_mode == "stretch"
