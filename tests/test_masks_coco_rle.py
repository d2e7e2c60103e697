"""CompactMask <-> COCO RLE against pycocotools on dense masks.

Expected values come from pycocotools (``mask.encode`` / ``mask.decode``) and
from dense numpy, never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_accel.errors import InvalidMaskError
from inference_accel.masks import (
    coco_counts,
    decode_counts_string,
    from_coco_rle,
    to_coco_rle,
)


def dense_uncompressed(mask: np.ndarray) -> list[int]:
    """COCO uncompressed counts of a dense (h, w) mask, in plain numpy."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat[0]:
        runs = [0] + runs
    return runs


def compact_of(dense: np.ndarray, loose: int = 0) -> sv.CompactMask:
    """CompactMask from dense (N, H, W) masks, each cropped to its bbox grown by ``loose``."""
    n, h, w = dense.shape
    boxes = []
    for m in dense:
        ys, xs = np.nonzero(m)
        if xs.size == 0:
            boxes.append([0, 0, w - 1, h - 1] if loose else [0, 0, 0, 0])
        else:
            boxes.append([xs.min() - loose, ys.min() - loose, xs.max() + loose, ys.max() + loose])
    return sv.CompactMask.from_dense(dense, np.array(boxes, dtype=np.float32).reshape(n, 4), (h, w))


def check_against_pycocotools(dense: np.ndarray, loose: int = 0) -> None:
    cm = compact_of(dense, loose)
    ours = to_coco_rle(cm)
    ours_u = to_coco_rle(cm, compressed=False)
    for k, m in enumerate(dense):
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours[k] == ref
        assert isinstance(ours[k]["counts"], bytes)
        assert ours_u[k] == {"size": list(m.shape), "counts": dense_uncompressed(m)}
        assert decode_counts_string(ref["counts"]).tolist() == dense_uncompressed(m)
    # Back from both forms: pixels identical, crops tight, COCO bytes identical.
    for form in (ours, ours_u):
        back = from_coco_rle(form)
        assert back.image_shape == dense.shape[1:]
        np.testing.assert_array_equal(back.to_dense(), dense)
        assert to_coco_rle(back) == ours
        for k, m in enumerate(dense):
            ys, xs = np.nonzero(m)
            if xs.size:
                assert back.bbox_xyxy[k].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
            else:
                assert back.bbox_xyxy[k].tolist() == [0, 0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    n=st.integers(1, 4),
    density=st.floats(0.0, 1.0),
    loose=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_masks_match_pycocotools(h, w, n, density, loose, seed):
    rng = np.random.default_rng(seed)
    dense = rng.random((n, h, w)) < density
    check_against_pycocotools(dense, loose)


@pytest.mark.parametrize(
    "name",
    ["empty", "full", "one_pixel_corner", "one_pixel_mid", "top_bottom_columns", "ring", "border"],
)
def test_structured_masks(name):
    h, w = 17, 13
    m = np.zeros((h, w), dtype=bool)
    if name == "full":
        m[:] = True
    elif name == "one_pixel_corner":
        m[h - 1, w - 1] = True
    elif name == "one_pixel_mid":
        m[8, 6] = True
    elif name == "top_bottom_columns":
        # Full-height columns: runs cross column boundaries in both streams.
        m[:, 3:6] = True
        m[h - 1, 6] = True
        m[0, 7] = True
    elif name == "ring":
        m[2:12, 3:10] = True
        m[4:9, 5:8] = False
    elif name == "border":
        m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    check_against_pycocotools(m[None])
    check_against_pycocotools(m[None], loose=2)


def test_large_frame_with_polygons():
    import cv2

    rng = np.random.default_rng(1)
    h, w = 720, 1280
    dense = np.zeros((5, h, w), dtype=np.uint8)
    for k in range(5):
        pts = rng.integers([-50, -50], [w + 50, h + 50], size=(12, 2)).astype(np.int32)
        cv2.fillPoly(dense[k], [pts], 1)
    check_against_pycocotools(dense.astype(bool))


def test_zero_length_runs_in_compact_input():
    # supervision splits oversized runs with zero runs; zero runs anywhere are legal.
    cm = sv.CompactMask(
        [np.array([0, 0, 2, 3, 0, 1, 0], dtype=np.int32)],
        np.array([[3, 2]], dtype=np.int32),
        np.array([[1, 2]], dtype=np.int32),
        (6, 4),
    )
    dense = cm.to_dense()[0]
    assert to_coco_rle(cm)[0] == mask_utils.encode(np.asfortranarray(dense.astype(np.uint8)))
    assert coco_counts(cm, 0).tolist() == dense_uncompressed(dense)


def test_strings_from_pycocotools_decode_with_negative_deltas():
    rng = np.random.default_rng(7)
    for _ in range(20):
        h, w = rng.integers(1, 300, size=2)
        m = np.zeros((h, w), dtype=np.uint8)
        n_runs = rng.integers(1, 50)
        flat = m.ravel(order="F")
        pos = np.sort(rng.choice(h * w, size=min(n_runs * 2, h * w), replace=False))
        for a, b in zip(pos[::2], pos[1::2]):
            flat[a:b] = 1
        m = flat.reshape((h, w), order="F")
        ref = mask_utils.encode(np.asfortranarray(m))
        assert decode_counts_string(ref["counts"]).tolist() == dense_uncompressed(m.astype(bool))
        assert decode_counts_string(ref["counts"].decode()).tolist() == dense_uncompressed(m.astype(bool))


def test_empty_inputs():
    cm = sv.CompactMask([], np.empty((0, 2), np.int32), np.empty((0, 2), np.int32), (5, 7))
    assert to_coco_rle(cm) == []
    assert to_coco_rle(cm, compressed=False) == []
    back = from_coco_rle([], image_shape=(5, 7))
    assert len(back) == 0 and back.image_shape == (5, 7)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [3, 3], "counts": [2, 3]}, "sum to 5"),
        ({"size": [3, 3], "counts": [2, 3, 5]}, "sum to 10"),
        ({"size": [3, 3], "counts": [12, -3]}, "negative"),
        ({"size": [3, 3], "counts": b"5{"}, "invalid character"),
        ({"size": [3, 3], "counts": "9\x00"}, "invalid character"),
        ({"size": [3, 3], "counts": b"P"}, "truncated"),
        ({"size": [3, 3], "counts": b"59"}, "sum to 14"),
        ({"size": [3, 3], "counts": [1.5, 7.5]}, "integers"),
        ({"size": [3], "counts": [9]}, "size"),
        ({"size": [0, 3], "counts": []}, "positive"),
        ({"counts": [9]}, "'size' and 'counts'"),
        ({"size": [3, 4], "counts": [12]}, "image is"),
    ],
)
def test_malformed_rle_raises(rle, message):
    with pytest.raises(InvalidMaskError, match=message):
        from_coco_rle([rle], image_shape=(3, 3))


def test_negative_run_in_compressed_string_raises():
    # 'O' is a one-character group 0x1F with the sign bit: -1. Counts [1, 1, -1]
    # sum to 1 = h*w, so only the negative-run check can reject it.
    assert decode_counts_string(b"11O").tolist() == [1, 1, -1]
    with pytest.raises(InvalidMaskError, match="negative"):
        from_coco_rle([{"size": [1, 1], "counts": b"11O"}])


def test_empty_without_image_shape_raises():
    with pytest.raises(InvalidMaskError, match="image_shape"):
        from_coco_rle([])


def test_not_a_compact_mask_raises():
    with pytest.raises(InvalidMaskError, match="CompactMask"):
        to_coco_rle(np.zeros((1, 3, 3), dtype=bool))
