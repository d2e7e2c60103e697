"""Mask toolkit on ``sv.CompactMask`` that never inflates masks to dense arrays.

- :mod:`.coco_rle`: CompactMask <-> full-image COCO RLE (both forms).
- :mod:`.polygons`: RLE -> polygons on the tight crop (largest, external, holes).
- :mod:`.multiclass`: (H, W) label maps <-> multiclass RLE <-> per-class masks.
- :mod:`.box_iou`: sparse N x M box IoU (x-sweep pre-filter, COO / scipy.sparse).
- :mod:`.mask_iou`: sparse mask IoU from the runs of overlapping crops.
- :mod:`.matching`: one-to-one IoU matching, Hungarian per connected component.
- :mod:`.nms`: box and mask NMS with supervision's keep semantics.

>>> import numpy as np
>>> from inference_accel.masks import box_iou_sparse
>>> box_iou_sparse([[0, 0, 2, 2]], [[1, 0, 3, 2]])[2].tolist()
[0.3333333333333333]
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
from inference_accel.masks.box_iou import box_iou_matrix, box_iou_sparse, overlapping_pairs
from inference_accel.masks.mask_iou import mask_areas, mask_intersections, mask_iou_matrix, mask_iou_sparse
from inference_accel.masks.matching import Matches, match_boxes, match_masks, match_sparse
from inference_accel.masks.nms import box_nms_keep, mask_nms_keep, non_max_suppression

__all__ = [
    "Matches",
    "box_iou_matrix",
    "box_iou_sparse",
    "box_nms_keep",
    "mask_areas",
    "mask_intersections",
    "mask_iou_matrix",
    "mask_iou_sparse",
    "mask_nms_keep",
    "match_boxes",
    "match_masks",
    "match_sparse",
    "non_max_suppression",
    "overlapping_pairs",
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
