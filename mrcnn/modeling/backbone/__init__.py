"""Backbones: the Backbone interface, ResNet (C4, DC5, ResNeXt, deformable), FPN and the registry plugins add to."""

from .backbone import Backbone
from .build import BACKBONE_REGISTRY, build_backbone
from .fpn import FPN, LastLevelMaxPool, build_fpn, build_resnet_fpn_backbone
from .resnet import BasicBlock, BasicStem, BottleneckBlock, DeformBottleneckBlock, ResNet, build_resnet_backbone

__all__ = [
    "Backbone",
    "BACKBONE_REGISTRY",
    "build_backbone",
    "FPN",
    "LastLevelMaxPool",
    "build_fpn",
    "build_resnet_fpn_backbone",
    "ResNet",
    "BasicStem",
    "BasicBlock",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "build_resnet_backbone",
]
