"""Mask toolkit on ``sv.CompactMask`` that never inflates masks to dense arrays.

- :mod:`.coco_rle`: CompactMask <-> full-image COCO RLE (both forms).
"""

from inference_accel.masks.coco_rle import (
    coco_counts,
    decode_counts_string,
    encode_counts_string,
    from_coco_rle,
    to_coco_rle,
)

__all__ = [
    "coco_counts",
    "decode_counts_string",
    "encode_counts_string",
    "from_coco_rle",
    "to_coco_rle",
]
