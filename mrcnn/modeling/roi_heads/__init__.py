"""RoI heads: StandardROIHeads, Res5ROIHeads (C4) and CascadeROIHeads with their box and mask heads and registries."""

from .box_head import ROI_BOX_HEAD_REGISTRY, FastRCNNConvFCHead, build_box_head
from .cascade_rcnn import CascadeROIHeads
from .fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from .mask_head import ROI_MASK_HEAD_REGISTRY, MaskRCNNConvUpsampleHead, build_mask_head
from .res5_roi_heads import Res5ROIHeads
from .roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads, build_roi_heads, select_foreground_proposals

__all__ = [
    "ROI_BOX_HEAD_REGISTRY",
    "FastRCNNConvFCHead",
    "build_box_head",
    "FastRCNNOutputLayers",
    "fast_rcnn_inference",
    "ROI_MASK_HEAD_REGISTRY",
    "MaskRCNNConvUpsampleHead",
    "build_mask_head",
    "ROI_HEADS_REGISTRY",
    "Res5ROIHeads",
    "StandardROIHeads",
    "CascadeROIHeads",
    "build_roi_heads",
    "select_foreground_proposals",
]
