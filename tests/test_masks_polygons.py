"""RLE -> polygons on the tight crop equal cv2.findContours on the dense frame.

The expected contours and hierarchies come from ``cv2.findContours`` on the
full dense (H, W) mask; masks are drawn with ``cv2.fillPoly`` / ``cv2.ellipse``
or random pixels, and include masks touching every frame border, one-pixel
masks, empty masks and holes.
"""

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
    external_polygons,
    find_contours,
    largest_polygon,
    masks_to_polygons,
    polygons_with_holes,
)

MODES = {"external": cv2.RETR_EXTERNAL, "ccomp": cv2.RETR_CCOMP, "tree": cv2.RETR_TREE}


def dense_contours(mask: np.ndarray, mode: str, method=cv2.CHAIN_APPROX_SIMPLE):
    return cv2.findContours(mask.astype(np.uint8), MODES[mode], method)


def assert_same(ours, ref):
    contours, hierarchy = ours
    ref_contours, ref_hierarchy = ref
    assert len(contours) == len(ref_contours)
    for a, b in zip(contours, ref_contours):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    if ref_hierarchy is None:
        assert hierarchy is None
    else:
        np.testing.assert_array_equal(hierarchy, ref_hierarchy)


def sources(dense: np.ndarray, loose: int = 0):
    """The same masks as a CompactMask (tight or loose crops) and as COCO RLEs."""
    n, h, w = dense.shape
    boxes = []
    for m in dense:
        ys, xs = np.nonzero(m)
        if xs.size:
            boxes.append([xs.min() - loose, ys.min() - loose, xs.max() + loose, ys.max() + loose])
        else:
            boxes.append([0, 0, 0, 0])
    cm = sv.CompactMask.from_dense(dense, np.array(boxes, dtype=np.float32), (h, w))
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in dense]
    return cm, rles


def check_all_modes(dense: np.ndarray, loose: int = 0):
    cm, rles = sources(dense, loose)
    for k, m in enumerate(dense):
        for mode in MODES:
            ref = dense_contours(m, mode)
            assert_same(find_contours(cm, k, mode), ref)
            assert_same(find_contours(rles[k], mode=mode), ref)
        ref_none = dense_contours(m, "ccomp", cv2.CHAIN_APPROX_NONE)
        assert_same(find_contours(cm, k, "ccomp", cv2.CHAIN_APPROX_NONE), ref_none)


@settings(max_examples=50, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    density=st.floats(0.0, 1.0),
    loose=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_pixels_all_modes(h, w, density, loose, seed):
    rng = np.random.default_rng(seed)
    dense = rng.random((2, h, w)) < density
    check_all_modes(dense, loose)


def draw_shapes(h: int, w: int, n: int, seed: int) -> np.ndarray:
    """Filled polygons and ellipses, some crossing the frame edge, some with holes."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n, h, w), dtype=np.uint8)
    for k in range(n):
        cx, cy = rng.integers(-20, w + 20), rng.integers(-20, h + 20)
        r = int(rng.integers(3, max(4, min(h, w) // 3)))
        if k % 3 == 0:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
            radii = rng.uniform(0.4, 1.0, 9) * r
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            cv2.fillPoly(dense[k], [pts.astype(np.int32)], 1)
        else:
            cv2.ellipse(dense[k], (int(cx), int(cy)), (r, max(1, r // 2)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if k % 2 == 1:
            cv2.circle(dense[k], (int(cx), int(cy)), max(1, r // 4), 0, -1)
            cv2.circle(dense[k], (int(cx), int(cy)), max(1, r // 8), 1, -1)
    return dense.astype(bool)


@pytest.mark.parametrize(("h", "w", "seed"), [(120, 160, 0), (97, 61, 1), (240, 320, 2)])
def test_drawn_shapes(h, w, seed):
    check_all_modes(draw_shapes(h, w, 9, seed))


@pytest.mark.parametrize(
    "name",
    ["top_left", "bottom_right", "full", "left_column", "bottom_row", "one_pixel_corner", "one_pixel_mid", "frame_ring", "empty"],
)
def test_border_and_tiny_masks(name):
    h, w = 11, 14
    m = np.zeros((h, w), dtype=bool)
    if name == "top_left":
        m[:4, :5] = True
    elif name == "bottom_right":
        m[7:, 9:] = True
        m[h - 1, 3] = True
    elif name == "full":
        m[:] = True
    elif name == "left_column":
        m[:, 0] = True
    elif name == "bottom_row":
        m[h - 1, :] = True
    elif name == "one_pixel_corner":
        m[0, w - 1] = True
    elif name == "one_pixel_mid":
        m[5, 6] = True
    elif name == "frame_ring":
        m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
        m[4:7, 5:9] = True
        m[5, 7] = False
    check_all_modes(m[None])
    check_all_modes(m[None], loose=3)


def test_convenience_outputs_match_dense():
    dense = draw_shapes(200, 300, 12, seed=5)
    cm, rles = sources(dense)
    largest = masks_to_polygons(cm, "largest")
    externals = masks_to_polygons(cm, "external")
    holes = masks_to_polygons(cm, "holes")
    for k, m in enumerate(dense):
        ref, _ = dense_contours(m, "external")
        if ref:
            areas = [cv2.contourArea(c) for c in ref]
            np.testing.assert_array_equal(largest[k], ref[int(np.argmax(areas))][:, 0])
        else:
            assert largest[k].shape == (0, 2)
        assert len(externals[k]) == len(ref)
        for a, b in zip(externals[k], ref):
            np.testing.assert_array_equal(a, b[:, 0])
        np.testing.assert_array_equal(largest_polygon(rles[k]), largest[k])
        ref_c, ref_h = dense_contours(m, "ccomp")
        outers = [i for i in range(len(ref_c)) if ref_h[0][i][3] == -1]
        assert [len(p["holes"]) for p in holes[k]] == [
            sum(1 for j in range(len(ref_c)) if ref_h[0][j][3] == i) for i in outers
        ]
        for p, i in zip(holes[k], outers):
            np.testing.assert_array_equal(p["exterior"], ref_c[i][:, 0])
            kids = [j for j in range(len(ref_c)) if ref_h[0][j][3] == i]
            got = sorted(map(lambda a: a.tobytes(), p["holes"]))
            assert got == sorted(ref_c[j][:, 0].tobytes() for j in kids)
        assert len(external_polygons(cm, k)) == len(ref)
        assert len(polygons_with_holes(rles[k])) == len(outers)


def test_empty_mask_gives_no_polygons():
    rle = {"size": [4, 4], "counts": [16]}
    assert find_contours(rle) == ((), None)
    assert external_polygons(rle) == []
    assert polygons_with_holes(rle) == []
    assert largest_polygon(rle).shape == (0, 2)
    empty = sv.CompactMask([], np.empty((0, 2), np.int32), np.empty((0, 2), np.int32), (4, 4))
    assert masks_to_polygons(empty) == []


def test_bad_inputs():
    with pytest.raises(InvalidMaskError, match="sum to"):
        find_contours({"size": [4, 4], "counts": [3, 3]})
    with pytest.raises(InvalidMaskError, match="mode"):
        find_contours({"size": [4, 4], "counts": [16]}, mode="outer")
    with pytest.raises(InvalidMaskError, match="COCO RLE dict"):
        find_contours(np.zeros((4, 4)))
    cm = sv.CompactMask.from_dense(np.ones((1, 2, 2), bool), np.array([[0, 0, 1, 1]]), (2, 2))
    with pytest.raises(InvalidMaskError, match="index"):
        find_contours(cm)
    with pytest.raises(InvalidMaskError, match="out of range"):
        find_contours(cm, 3)
    with pytest.raises(InvalidMaskError, match="kind"):
        masks_to_polygons(cm, "biggest")


def test_threads_keep_mask_order_and_points():
    dense = draw_shapes(120, 160, 20, seed=9)
    cm, _ = sources(dense)
    one = masks_to_polygons(cm, "external", threads=1)
    two = masks_to_polygons(cm, "external", threads=2)
    assert len(one) == len(two) == 20
    for a, b in zip(one, two):
        assert len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))
