"""The model: backbones, proposal generators, RoI heads and meta-architectures, all registered."""

from .backbone import BACKBONE_REGISTRY, FPN, Backbone, ResNet, build_backbone, build_resnet_fpn_backbone
from .meta_arch import META_ARCH_REGISTRY, GeneralizedRCNN, build_model
from .proposal_generator import PROPOSAL_GENERATOR_REGISTRY, RPN_HEAD_REGISTRY, build_proposal_generator
from .roi_heads import (
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    StandardROIHeads,
    build_roi_heads,
)

__all__ = [
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
