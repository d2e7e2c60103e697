"""The RF-DETR segmentation sizes (rfdetr 1.11.x).

>>> SEG_MODELS["seg-nano"].input_size, SEG_MODELS["seg-nano"].mask_size
(312, 78)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegModelSpec:
    """One RF-DETR-Seg size: rfdetr class, square input, queries, mask-logit side."""

    name: str
    rfdetr_class: str
    input_size: int
    num_queries: int

    @property
    def mask_size(self) -> int:
        return self.input_size // 4


SEG_MODELS: dict[str, SegModelSpec] = {
    spec.name: spec
    for spec in (
        SegModelSpec("seg-nano", "RFDETRSegNano", 312, 100),
        SegModelSpec("seg-small", "RFDETRSegSmall", 384, 100),
        SegModelSpec("seg-medium", "RFDETRSegMedium", 432, 200),
        SegModelSpec("seg-large", "RFDETRSegLarge", 504, 200),
        SegModelSpec("seg-xlarge", "RFDETRSegXLarge", 624, 300),
        SegModelSpec("seg-2xlarge", "RFDETRSeg2XLarge", 768, 300),
    )
}
DEFAULT_MODEL = "seg-nano"

# COCO's 91 class slots as RF-DETR numbers them (0..90; unused ids keep a
# placeholder name so class_id -> name never fails).
_COCO_NAMES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus",
    7: "train", 8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant",
    13: "stop sign", 14: "parking meter", 15: "bench", 16: "bird", 17: "cat",
    18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
    24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag",
    32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis", 36: "snowboard",
    37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle",
    46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl",
    52: "banana", 53: "apple", 54: "sandwich", 55: "orange", 56: "broccoli",
    57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake",
    62: "chair", 63: "couch", 64: "potted plant", 65: "bed", 67: "dining table",
    70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster",
    81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase",
    87: "scissors", 88: "teddy bear", 89: "hair drier", 90: "toothbrush",
}
COCO_CLASS_NAMES: tuple[str, ...] = tuple(_COCO_NAMES.get(i, f"class-{i}") for i in range(91))
