"""Mask toolkit on ``sv.CompactMask`` that never inflates masks to dense arrays.

- :mod:`.coco_rle`: CompactMask <-> full-image COCO RLE (both forms).
- :mod:`.polygons`: RLE -> polygons on the tight crop (largest, external, holes).
- :mod:`.multiclass`: (H, W) label maps <-> multiclass RLE <-> per-class masks.
"""

from inference_accel.masks.coco_rle import (
    coco_counts,
    decode_counts_string,
    encode_counts_string,
    from_coco_rle,
    to_coco_rle,
)
from inference_accel.masks.polygons import (
    external_polygons,
    find_contours,
    largest_polygon,
    masks_to_polygons,
    paint_tight_crop,
    polygons_with_holes,
)
from inference_accel.masks.multiclass import (
    coco_to_multiclass,
    compact_to_multiclass,
    decode_multiclass,
    encode_multiclass,
    multiclass_to_coco,
    multiclass_to_compact,
)

__all__ = [
    "coco_to_multiclass",
    "compact_to_multiclass",
    "decode_multiclass",
    "encode_multiclass",
    "multiclass_to_coco",
    "multiclass_to_compact",
    "external_polygons",
    "find_contours",
    "largest_polygon",
    "masks_to_polygons",
    "paint_tight_crop",
    "polygons_with_holes",
    "coco_counts",
    "decode_counts_string",
    "encode_counts_string",
    "from_coco_rle",
    "to_coco_rle",
]
