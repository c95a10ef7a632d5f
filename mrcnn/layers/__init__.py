"""Building blocks shared by models: thin wrappers over torchvision.ops, conv + norm, mask pasting,
box IoU losses."""

from .batch_norm import (
    NORM_NAMES,
    FrozenBatchNorm2d,
    convert_frozen_batchnorm,
    get_norm,
    is_affine_norm,
    norm_as_affine,
)
from .box_iou_losses import ciou_loss, diou_loss, giou_loss, paired_intersection_and_union
from .deform_conv import DeformConv, ModulatedDeformConv, deform_conv2d
from .mask_ops import paste_masks_in_image
from .nms import batched_nms, nms
from .roi_align import ROIAlign
from .shape_spec import ShapeSpec
from .sync_batch_norm import SyncBatchNorm
from .wrappers import Conv2d, cat, nonzero_tuple

__all__ = [
    "NORM_NAMES",
    "Conv2d",
    "DeformConv",
    "ModulatedDeformConv",
    "FrozenBatchNorm2d",
    "ROIAlign",
    "ShapeSpec",
    "SyncBatchNorm",
    "batched_nms",
    "cat",
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "paired_intersection_and_union",
    "deform_conv2d",
    "convert_frozen_batchnorm",
    "get_norm",
    "nms",
    "nonzero_tuple",
    "is_affine_norm",
    "norm_as_affine",
    "paste_masks_in_image",
]
