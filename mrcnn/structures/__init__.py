"""Data structures passed between stages: boxes, per-image instances, padded image batches, masks."""

from .boxes import (
    Boxes,
    BoxMode,
    clipped_box_tensor,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_iou_tensors,
)
from .image_list import ImageList
from .instances import Instances
from .masks import BitMasks, PolygonMasks, polygons_to_bitmask, polygons_to_bitmask_in_window

__all__ = [
    "BitMasks",
    "BoxMode",
    "clipped_box_tensor",
    "Boxes",
    "ImageList",
    "Instances",
    "PolygonMasks",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_tensors",
    "polygons_to_bitmask",
    "polygons_to_bitmask_in_window",
]
