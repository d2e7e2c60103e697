"""Multiclass RLE against dense numpy and per-class pycocotools encoding."""

from __future__ import annotations

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_accel.errors import InvalidMaskError
from inference_accel.masks import (
    coco_to_multiclass,
    compact_to_multiclass,
    decode_multiclass,
    encode_multiclass,
    multiclass_to_coco,
    multiclass_to_compact,
)


def dense_multiclass(label: np.ndarray) -> tuple[list[int], list[int]]:
    """Reference (values, counts) by walking the column-major pixels in Python."""
    values, counts = [], []
    for v in label.ravel(order="F").tolist():
        if values and values[-1] == v:
            counts[-1] += 1
        else:
            values.append(v)
            counts.append(1)
    return values, counts


def check_label(label: np.ndarray, background=0) -> None:
    rle = encode_multiclass(label)
    values, counts = dense_multiclass(label)
    assert rle["size"] == list(label.shape)
    assert rle["values"].tolist() == values
    assert rle["counts"].tolist() == counts
    decoded = decode_multiclass(rle)
    assert decoded.dtype == label.dtype and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, label)
    # JSON-style lists decode the same.
    np.testing.assert_array_equal(
        decode_multiclass({"size": rle["size"], "values": values, "counts": counts}), label
    )
    classes = [c for c in np.unique(label).tolist() if background is None or c != background]
    coco = multiclass_to_coco(rle, background=background)
    coco_u = multiclass_to_coco(rle, background=background, compressed=False)
    assert sorted(coco) == classes
    masks, ids = multiclass_to_compact(rle, background=background)
    assert ids.tolist() == classes
    dense_masks = masks.to_dense()
    for k, c in enumerate(classes):
        binary = label == c
        ref = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
        assert coco[c] == ref
        assert mask_utils.frPyObjects(coco_u[c], *label.shape) == ref
        np.testing.assert_array_equal(dense_masks[k], binary)
        ys, xs = np.nonzero(binary)
        assert masks.bbox_xyxy[k].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    if background is not None:
        fill = int(background)
        back = compact_to_multiclass(masks, ids, background=fill, dtype=label.dtype)
        assert back["values"].tolist() == values and back["counts"].tolist() == counts
        back2 = coco_to_multiclass(coco, background=fill, dtype=label.dtype, image_shape=label.shape)
        assert back2["values"].tolist() == values and back2["counts"].tolist() == counts


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    n_classes=st.integers(1, 6),
    blocky=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_label_maps(h, w, n_classes, blocky, seed):
    rng = np.random.default_rng(seed)
    if blocky:
        label = np.repeat(np.repeat(rng.integers(0, n_classes, (h // 3 + 1, w // 3 + 1)), 3, 0), 3, 1)[:h, :w]
    else:
        label = rng.integers(0, n_classes, (h, w))
    check_label(label.astype(np.int32))
    check_label(label.astype(np.uint8), background=None)


def test_drawn_label_map_many_classes():
    rng = np.random.default_rng(3)
    label = np.zeros((180, 240), dtype=np.uint8)
    for k in range(60):
        cv2.circle(label, (int(rng.integers(-10, 250)), int(rng.integers(-10, 190))), int(rng.integers(3, 40)), int(rng.integers(1, 30)), -1)
    check_label(label)


def test_seed_002_example():
    label = np.array([[0, 0, 1, 1, 0], [3, 0, 1, 1, 0], [3, 3, 1, 1, 0], [3, 3, 0, 0, 0]])
    rle = encode_multiclass(label)
    assert rle["values"].tolist() == [0, 3, 0, 3, 1, 0, 1, 0]
    assert rle["counts"].tolist() == [1, 3, 2, 2, 3, 1, 3, 5]
    check_label(label)


def test_single_value_and_one_pixel():
    check_label(np.full((5, 4), 7, dtype=np.int16))
    check_label(np.zeros((1, 1), dtype=np.int64))
    one = np.zeros((6, 6), dtype=np.int32)
    one[5, 5] = 2
    check_label(one)


def test_empty_and_bad_inputs():
    rle = encode_multiclass(np.zeros((3, 3), np.int32))
    masks, ids = multiclass_to_compact(rle)
    assert len(masks) == 0 and ids.size == 0 and masks.image_shape == (3, 3)
    assert multiclass_to_coco(rle) == {}
    with pytest.raises(InvalidMaskError, match="image size is unknown"):
        coco_to_multiclass({})
    with pytest.raises(InvalidMaskError, match="2-D"):
        encode_multiclass(np.zeros((2, 2, 2), np.int32))
    with pytest.raises(InvalidMaskError, match="2-D"):
        encode_multiclass(np.zeros((0, 3), np.int32))
    with pytest.raises(InvalidMaskError, match="integers"):
        encode_multiclass(np.zeros((2, 2), np.float32))
    with pytest.raises(InvalidMaskError, match="sum to 5"):
        decode_multiclass({"size": [2, 3], "values": [0, 1], "counts": [2, 3]})
    with pytest.raises(InvalidMaskError, match="negative"):
        decode_multiclass({"size": [2, 3], "values": [0, 1], "counts": [8, -2]})
    with pytest.raises(InvalidMaskError, match="2 values but 1 counts"):
        decode_multiclass({"size": [2, 3], "values": [0, 1], "counts": [6]})
    with pytest.raises(InvalidMaskError, match="'values'"):
        decode_multiclass({"size": [2, 3], "counts": [6]})


def test_overlapping_masks_rejected():
    dense = np.zeros((2, 5, 5), dtype=bool)
    dense[0, 1:3, 1:3] = True
    dense[1, 2:4, 2:4] = True
    cm = sv.CompactMask.from_dense(dense, np.array([[1, 1, 2, 2], [2, 2, 3, 3]]), (5, 5))
    with pytest.raises(InvalidMaskError, match="overlap"):
        compact_to_multiclass(cm, [1, 2])
    with pytest.raises(InvalidMaskError, match="2 class ids for 3"):
        coco_to_multiclass([{"size": [1, 1], "counts": [1]}] * 3, class_ids=[1, 2])


def test_touching_masks_of_one_class_merge():
    dense = np.zeros((2, 4, 4), dtype=bool)
    dense[0, :, 0] = True
    dense[1, :, 1] = True
    cm = sv.CompactMask.from_dense(dense, np.array([[0, 0, 0, 3], [1, 0, 1, 3]]), (4, 4))
    label = np.zeros((4, 4), np.int64)
    label[:, :2] = 5
    rle = compact_to_multiclass(cm, [5, 5])
    values, counts = dense_multiclass(label)
    assert rle["values"].tolist() == values and rle["counts"].tolist() == counts
