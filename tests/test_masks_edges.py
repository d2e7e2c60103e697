"""Toolkit edges: counts that would wrap int64, sizes that are not integers, counts of the wrong type.

A crafted RLE must give a clear InvalidMaskError, never a wrapped sum that
happens to equal h*w (and then a silently wrong mask), never a MemoryError.
"""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from inference_accel.errors import InvalidMaskError
from inference_accel.masks import (
    coco_to_multiclass,
    decode_counts_string,
    decode_multiclass,
    encode_counts_string,
    find_contours,
    from_coco_rle,
    mask_intersections,
    masks_to_polygons,
    match_boxes,
    match_sparse,
    multiclass_to_coco,
    multiclass_to_compact,
    box_iou_sparse,
    box_nms_keep,
    overlapping_pairs,
)

BIG = 2**63 - 1
# Each count is a valid int64 and >= 0, but their int64 sum wraps to 2**64 + 9 -> 9 = 3 * 3.
WRAPPING = [BIG, BIG, 11]


def _encode_group(value: int) -> bytes:
    """One count in COCO's compressed alphabet (5 bits per char, sign in the last one)."""
    out = bytearray()
    more = True
    while more:
        c = value & 0x1F
        value >>= 5
        more = value != -1 if c & 0x10 else value != 0
        if more:
            c |= 0x20
        out.append(c + 48)
    return bytes(out)


def _wrapping_string() -> bytes:
    """Counts whose delta decoding (x[i] += x[i-2]) overflows int64 unless checked."""
    deltas = [0, 9] + [2**58] * 100  # 50 deltas of 2**58 per parity: their running sum passes 2**63
    return b"".join(_encode_group(d) for d in deltas)


def test_group_encoder_matches_pycocotools():
    assert b"".join(_encode_group(v) for v in [13, 3, 3, 0, 5]) == encode_counts_string([13, 3, 3, 3, 8], 6, 5)


@pytest.mark.parametrize("form", ["coco", "multiclass", "polygon", "coco_to_multiclass"])
def test_counts_whose_int64_sum_wraps_are_rejected(form):
    rle = {"size": [3, 3], "counts": WRAPPING}
    with pytest.raises(InvalidMaskError, match=r"counts|run"):
        if form == "coco":
            from_coco_rle([rle])
        elif form == "multiclass":
            decode_multiclass({"size": [3, 3], "values": [0, 1, 0], "counts": WRAPPING})
        elif form == "polygon":
            find_contours(rle)
        else:
            coco_to_multiclass({1: rle})


def test_a_single_count_larger_than_the_image_is_named():
    with pytest.raises(InvalidMaskError, match="more than h\\*w = 9"):
        from_coco_rle([{"size": [3, 3], "counts": [BIG, 2, 3]}])


def test_counts_beyond_int64_are_rejected_not_wrapped():
    for counts in ([2**63, 2**63, 9], [2**64 + 9], [-(2**70), 9]):
        with pytest.raises(InvalidMaskError, match="too large"):
            from_coco_rle([{"size": [3, 3], "counts": counts}])
    with pytest.raises(InvalidMaskError, match="too large"):
        multiclass_to_compact({"size": [3, 3], "values": [0], "counts": np.array([2**63 + 9], np.uint64)})


def test_compressed_counts_whose_delta_decoding_overflows():
    with pytest.raises(InvalidMaskError, match="too large"):
        decode_counts_string(_wrapping_string())
    with pytest.raises(InvalidMaskError, match="too large"):
        from_coco_rle([{"size": [3, 3], "counts": _wrapping_string()}])


@pytest.mark.parametrize(
    "size",
    [[3.7, 3], [3, 2.2], [3.0, 3], ["3", 3], [True, 9], [np.float64(3), 3]],
)
def test_float_or_non_integer_sizes_are_errors(size):
    with pytest.raises(InvalidMaskError, match="size"):
        from_coco_rle([{"size": size, "counts": [9]}])
    with pytest.raises(InvalidMaskError, match="size"):
        multiclass_to_coco({"size": size, "values": [0], "counts": [9]})
    with pytest.raises(InvalidMaskError, match="size"):
        find_contours({"size": size, "counts": [9]})


def test_numpy_integer_sizes_are_fine():
    m = from_coco_rle([{"size": [np.int32(3), np.uint8(3)], "counts": [4, 1, 4]}])
    assert m.image_shape == (3, 3) and m.area.tolist() == [1]


@pytest.mark.parametrize("shape", [(3.5, 3), (3, "3"), (0, 3), (3,), None])
def test_image_shape_arguments_are_integral(shape):
    with pytest.raises(InvalidMaskError, match="image_shape"):
        from_coco_rle([], image_shape=shape)
    with pytest.raises(InvalidMaskError, match="image_shape"):
        coco_to_multiclass({}, image_shape=shape)


def test_image_shape_float_is_not_truncated_with_rles():
    with pytest.raises(InvalidMaskError, match="image_shape"):
        from_coco_rle([{"size": [3, 3], "counts": [9]}], image_shape=(3.9, 3))


def test_encode_counts_string_sizes():
    with pytest.raises(InvalidMaskError, match="height"):
        encode_counts_string([9], 3.5, 3)
    with pytest.raises(InvalidMaskError, match="width"):
        encode_counts_string([9], 3, -3)


def _one_mask():
    return sv.CompactMask.from_dense(np.ones((1, 3, 3), bool), np.array([[0, 0, 2, 2]]), (3, 3))


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_polygon_threads_must_be_a_positive_int(threads):
    with pytest.raises(InvalidMaskError, match="threads"):
        masks_to_polygons(_one_mask(), threads=threads)


@pytest.mark.parametrize("index", [1.0, "0", None])
def test_polygon_index_must_be_an_int(index):
    with pytest.raises(InvalidMaskError, match="index"):
        find_contours(_one_mask(), index)


@pytest.mark.parametrize("chunk", [0, -4, 2.5, "big"])
def test_chunk_sizes_must_be_positive_ints(chunk):
    boxes = [[0, 0, 2, 2]]
    with pytest.raises(InvalidMaskError, match="chunk"):
        overlapping_pairs(boxes, boxes, chunk=chunk)
    with pytest.raises(InvalidMaskError, match="chunk"):
        box_iou_sparse(boxes, boxes, chunk=chunk)
    with pytest.raises(InvalidMaskError, match="chunk"):
        mask_intersections(_one_mask(), _one_mask(), chunk=chunk)


@pytest.mark.parametrize("shape", [(2.5, 2), (2, -1), ("2", 2), (2,)])
def test_match_sparse_shape_is_two_non_negative_ints(shape):
    with pytest.raises(InvalidMaskError, match="shape"):
        match_sparse([0], [0], [0.9], shape)


@pytest.mark.parametrize("threshold", ["0.5", None, True, float("nan"), 1.5])
def test_iou_thresholds_are_real_numbers_in_0_1(threshold):
    boxes = [[0, 0, 2, 2]]
    with pytest.raises(InvalidMaskError, match="iou_threshold"):
        match_sparse([0], [0], [0.9], (1, 1), threshold)
    with pytest.raises(InvalidMaskError, match="iou_threshold"):
        match_boxes(boxes, boxes, iou_threshold=threshold)
    with pytest.raises(InvalidMaskError, match="iou_threshold"):
        box_nms_keep([[0, 0, 2, 2, 0.9]], threshold)
