"""The model: backbones, proposal generators, RoI heads and meta-architectures, all registered."""

from mrcnn.layers import ShapeSpec

from .anchor_generator import ANCHOR_GENERATOR_REGISTRY, build_anchor_generator
from .backbone import BACKBONE_REGISTRY, FPN, Backbone, ResNet, build_backbone, build_resnet_fpn_backbone
from .meta_arch import META_ARCH_REGISTRY, GeneralizedRCNN, build_model
from .postprocessing import detector_postprocess
from .proposal_generator import PROPOSAL_GENERATOR_REGISTRY, RPN_HEAD_REGISTRY, build_proposal_generator, build_rpn_head
from .roi_heads import (
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    CascadeROIHeads,
    FastRCNNOutputLayers,
    StandardROIHeads,
    build_box_head,
    build_mask_head,
    build_roi_heads,
)

__all__ = [
    "ShapeSpec",
    "ANCHOR_GENERATOR_REGISTRY",
    "build_anchor_generator",
    "detector_postprocess",
    "build_rpn_head",
    "CascadeROIHeads",
    "FastRCNNOutputLayers",
    "build_box_head",
    "build_mask_head",
    "BACKBONE_REGISTRY",
    "FPN",
    "Backbone",
    "ResNet",
    "build_backbone",
    "build_resnet_fpn_backbone",
    "META_ARCH_REGISTRY",
    "GeneralizedRCNN",
    "build_model",
    "PROPOSAL_GENERATOR_REGISTRY",
    "RPN_HEAD_REGISTRY",
    "build_proposal_generator",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "StandardROIHeads",
    "build_roi_heads",
]
