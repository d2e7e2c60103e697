"""Letterbox and centre-crop bookkeeping of the reference path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inference_accel.postprocess.mask_geometry import mask_placement
from inference_accel.postprocess.reference import postprocess_reference
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.reference import IMAGENET_MEAN, IMAGENET_STD, preprocess_reference


def test_letterbox_pads_with_black_and_keeps_aspect():
    frame = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    x, g = preprocess_reference(frame, (64, 64), "letterbox")
    assert g.resized_hw == (32, 64) and g.content == (0, 16, 64, 48)
    pad = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(3, 1, 1)
    torch.testing.assert_close(x[0, :, :16], pad.expand(3, 16, 64), rtol=0, atol=1e-6)
    torch.testing.assert_close(x[0, :, 48:], pad.expand(3, 16, 64), rtol=0, atol=1e-6)
    inner = np.asarray(Image.fromarray(frame[:, :, ::-1].copy()).resize((64, 32), Image.BILINEAR))
    expected = (torch.from_numpy(inner.copy()).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x[0, :, 16:48], expected, rtol=0, atol=0)


def test_center_crop_keeps_the_middle():
    frame = np.random.default_rng(1).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    x, g = preprocess_reference(frame, (50, 50), "center-crop")
    assert g.resized_hw == (50, 100) and g.content == (-25, 0, 75, 50)
    full = np.asarray(Image.fromarray(frame[:, :, ::-1].copy()).resize((100, 50), Image.BILINEAR))
    expected = torch.from_numpy(full[:, 25:75].copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(x[0] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1), expected, rtol=0, atol=1e-6)
    assert g.source == pytest.approx((50.0, 0.0, 150.0, 100.0))


def test_letterbox_boxes_and_masks_map_back_to_the_frame():
    g = plan_geometry((100, 200), (64, 64), "letterbox")  # content rows 16..48
    logits = torch.full((1, 1), 5.0)
    # box covering the whole content region, in normalised input coordinates
    boxes = torch.tensor([[0.5, 0.5, 1.0, 0.5]])
    masks = torch.full((1, 16, 16), -1.0)
    masks[0, 4:12, :] = 1.0  # positive exactly on the content rows (mask scale 1/4)
    det = postprocess_reference(logits, boxes, masks, geometry=g)
    np.testing.assert_allclose(det.xyxy[0], [0, 0, 200, 100], atol=1e-4)
    placement = mask_placement(g, (16, 16))
    assert placement.rows == (4, 12) and placement.out_hw == (100, 200)
    expected = F.interpolate(masks[:, 4:12][None], size=(100, 200), mode="bilinear", align_corners=False)[0, 0] > 0
    np.testing.assert_array_equal(det.mask[0], expected.numpy())
    assert det.mask[0].all()


def test_center_crop_masks_land_in_the_source_window():
    g = plan_geometry((100, 200), (64, 64), "center-crop")
    placement = mask_placement(g, (16, 16))
    assert placement.top_left == (0, 50) and placement.out_hw == (100, 100)
    logits = torch.full((1, 1), 5.0)
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    masks = torch.full((1, 16, 16), 2.0)
    det = postprocess_reference(logits, boxes, masks, geometry=g)
    np.testing.assert_allclose(det.xyxy[0], [50, 0, 150, 100], atol=1e-4)
    assert det.mask[0][:, 50:150].all() and not det.mask[0][:, :50].any() and not det.mask[0][:, 150:].any()
