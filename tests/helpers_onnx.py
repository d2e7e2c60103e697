"""Tiny ONNX models for tests (built with onnx.helper, no export needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_wrong_io_model(path: Path) -> Path:
    """A valid ONNX model that is not RF-DETR-Seg: input x (1,3,8,8) -> output y = x."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "wrong", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def write_tiny_seg_model(path: Path, size: int = 32, queries: int = 5, classes: int = 4, seed: int = 0) -> Path:
    """A small model with RF-DETR-Seg's I/O contract whose outputs depend on the input.

    dets = sigmoid(mean(input) * a + b) (1,Q,4); labels (1,Q,C) likewise;
    masks = avgpool4(input channel 0) * w + c (1,Q,size/4,size/4).
    """
    rng = np.random.default_rng(seed)
    m = size // 4
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    outs = [
        helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, queries, 4]),
        helper.make_tensor_value_info("labels", TensorProto.FLOAT, [1, queries, classes]),
        helper.make_tensor_value_info("masks", TensorProto.FLOAT, [1, queries, m, m]),
    ]
    inits = [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, queries, 4)).astype(np.float32), "da"),
        numpy_helper.from_array(rng.uniform(-1, 1, (1, queries, 4)).astype(np.float32), "db"),
        numpy_helper.from_array(rng.uniform(1, 3, (1, queries, classes)).astype(np.float32), "la"),
        numpy_helper.from_array(rng.uniform(-1, 2, (1, queries, classes)).astype(np.float32), "lb"),
        numpy_helper.from_array(rng.uniform(-2, 2, (1, queries, 1, 1)).astype(np.float32), "mw"),
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, queries, 1, 1)).astype(np.float32), "mc"),
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),  # scalar
        helper.make_node("Mul", ["mean", "da"], ["d0"]),
        helper.make_node("Add", ["d0", "db"], ["d1"]),
        helper.make_node("Sigmoid", ["d1"], ["dets"]),
        helper.make_node("Mul", ["mean", "la"], ["l0"]),
        helper.make_node("Add", ["l0", "lb"], ["labels"]),
        helper.make_node("Slice", ["input", "c0", "c1", "ax1"], ["ch0"]),
        helper.make_node("AveragePool", ["ch0"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Mul", ["pooled", "mw"], ["m0"]),
        helper.make_node("Add", ["m0", "mc"], ["masks"]),
    ]
    graph = helper.make_graph(nodes, "tiny_seg", [inp], outs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def write_tiny_batch_seg_model(
    path: Path, batch: int | str = "batch", size: int = 32, queries: int = 5, classes: int = 4, seed: int = 0
) -> Path:
    """Like :func:`write_tiny_seg_model`, but each frame of a batch gets only its own outputs.

    ``batch``: a symbolic name (dynamic batch) or a fixed int. Per frame b:
    dets[b] = sigmoid(mean(input[b]) * a + b0), labels[b] = mean(input[b]) * la + lb,
    masks[b] = avgpool4(input[b, 0]) * w + c; no op mixes frames.
    """
    rng = np.random.default_rng(seed)
    m = size // 4
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    outs = [
        helper.make_tensor_value_info("dets", TensorProto.FLOAT, [batch, queries, 4]),
        helper.make_tensor_value_info("labels", TensorProto.FLOAT, [batch, queries, classes]),
        helper.make_tensor_value_info("masks", TensorProto.FLOAT, [batch, queries, m, m]),
    ]
    inits = [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, queries, 4)).astype(np.float32), "da"),
        numpy_helper.from_array(rng.uniform(-1, 1, (1, queries, 4)).astype(np.float32), "db"),
        numpy_helper.from_array(rng.uniform(1, 3, (1, queries, classes)).astype(np.float32), "la"),
        numpy_helper.from_array(rng.uniform(-1, 2, (1, queries, classes)).astype(np.float32), "lb"),
        numpy_helper.from_array(rng.uniform(-2, 2, (1, queries, 1, 1)).astype(np.float32), "mw"),
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, queries, 1, 1)).astype(np.float32), "mc"),
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "per_frame"),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["channel_mean"]),  # (B, 3, 1, 1)
        helper.make_node("ReduceMean", ["channel_mean"], ["mean4"], axes=[1], keepdims=1),  # (B, 1, 1, 1)
        helper.make_node("Reshape", ["mean4", "per_frame"], ["mean"]),  # (B, 1, 1)
        helper.make_node("Mul", ["mean", "da"], ["d0"]),
        helper.make_node("Add", ["d0", "db"], ["d1"]),
        helper.make_node("Sigmoid", ["d1"], ["dets"]),
        helper.make_node("Mul", ["mean", "la"], ["l0"]),
        helper.make_node("Add", ["l0", "lb"], ["labels"]),
        helper.make_node("Slice", ["input", "c0", "c1", "ax1"], ["ch0"]),
        helper.make_node("AveragePool", ["ch0"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Mul", ["pooled", "mw"], ["m0"]),
        helper.make_node("Add", ["m0", "mc"], ["masks"]),
    ]
    graph = helper.make_graph(nodes, "tiny_batch_seg", [inp], outs, inits)
    # opset 17: ReduceMean still takes axes as an attribute (an input from opset 18)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path
