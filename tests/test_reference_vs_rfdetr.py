"""Our reference stages against rfdetr's own code, on the real seg-nano architecture.

Postprocessing: rfdetr's ``PostProcess`` (its top-k, box scaling and clamping,
score threshold, mask gather + bilinear upsample + ``> 0``) must give exactly
what :func:`postprocess_reference` gives. Preprocessing: the reference is the
PIL chain Roboflow ``inference`` serves with (ANCHORS.md); it must equal
torchvision's ``to_tensor`` + ``normalize`` after ``PIL.Image.resize``.
rfdetr's own ``predict()`` resizes tensors with torch instead of PIL, so it is
*not* the reference; the last test measures that it differs, so nobody
mistakes one for the other.
"""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from inference_accel.postprocess.reference import postprocess_reference
from inference_accel.preprocess.reference import IMAGENET_MEAN, IMAGENET_STD, preprocess_reference


@pytest.fixture(scope="module")
def seg_nano():
    """rfdetr's seg-nano network (random init, demo-calibrated so detections exist)."""
    from inference_accel.models.export import _build, demo_calibrate

    model = _build("seg-nano", None)
    demo_calibrate(model, 312)
    return model


@pytest.fixture(scope="module")
def photo_bgr():
    import cv2
    from skimage import data

    return np.ascontiguousarray(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))


def _raw_outputs(model, frame_bgr):
    x, _ = preprocess_reference(frame_bgr, (312, 312))
    with torch.no_grad():
        out = model.model.model.eval()(x)
    return {k: out[k] for k in ("pred_logits", "pred_boxes", "pred_masks")}


@pytest.mark.parametrize("frame_hw", [(400, 600), (1080, 1920), (333, 201)])
def test_postprocess_reference_equals_rfdetr_postprocess(seg_nano, photo_bgr, frame_hw):
    from rfdetr.models.postprocess import PostProcess

    outputs = _raw_outputs(seg_nano, photo_bgr)
    threshold = 0.4
    theirs = PostProcess(num_select=100)(outputs, torch.tensor([frame_hw]), score_threshold=threshold)[0]
    ours = postprocess_reference(
        outputs["pred_logits"][0],
        outputs["pred_boxes"][0],
        outputs["pred_masks"][0],
        frame_hw,
        threshold=threshold,
        max_detections=300,
    )
    assert len(ours) == len(theirs["scores"]) > 0
    np.testing.assert_array_equal(ours.confidence, theirs["scores"].numpy())
    np.testing.assert_array_equal(ours.class_id, theirs["labels"].numpy())
    np.testing.assert_array_equal(ours.xyxy, theirs["boxes"].numpy())
    np.testing.assert_array_equal(ours.mask, theirs["masks"][:, 0].numpy())
    assert ours.mask.any() and not ours.mask.all()


def test_a_query_can_carry_several_classes_like_rfdetr():
    from rfdetr.models.postprocess import PostProcess

    logits = torch.full((1, 4, 3), -8.0)
    logits[0, 2, 0], logits[0, 2, 2] = 4.0, 3.0  # query 2 twice
    boxes = torch.rand(1, 4, 4) * 0.5 + 0.25
    masks = torch.randn(1, 4, 6, 6)
    theirs = PostProcess(num_select=4)({"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks}, torch.tensor([[24, 30]]), score_threshold=0.4)[0]
    ours = postprocess_reference(logits[0], boxes[0], masks[0], (24, 30))
    assert ours.class_id.tolist() == theirs["labels"].tolist() == [0, 2]
    np.testing.assert_array_equal(ours.mask, theirs["masks"][:, 0].numpy())


@pytest.mark.parametrize("size_hw,target_hw", [((1080, 1920), (312, 312)), ((97, 131), (312, 312)), ((1920, 1080), (432, 432))])
def test_preprocess_reference_equals_pil_torchvision_chain(size_hw, target_hw):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*size_hw, 3), dtype=np.uint8)
    ours, geometry = preprocess_reference(frame, target_hw)
    pil = Image.fromarray(frame[:, :, ::-1].copy()).resize((target_hw[1], target_hw[0]), Image.BILINEAR)
    expected = TF.normalize(TF.to_tensor(pil), IMAGENET_MEAN, IMAGENET_STD)
    assert geometry.is_stretch
    torch.testing.assert_close(ours[0], expected, rtol=0, atol=0)


def test_rfdetr_predict_preprocessing_is_not_the_pil_reference(photo_bgr):
    """rfdetr.predict normalises then resizes with torch; the served chain uses PIL."""
    rgb = torch.from_numpy(photo_bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    normalized = TF.normalize(rgb, IMAGENET_MEAN, IMAGENET_STD)
    torch_resized = TF.resize(normalized, [312, 312], antialias=True)
    ours, _ = preprocess_reference(photo_bgr, (312, 312))
    assert (ours[0] - torch_resized).abs().max() > 1e-3
