"""MobileNetV3 + FPN backbone plugin for mrcnn.

Importing this package registers ``build_mobilenet_v3_fpn_backbone`` (and the FPN-less
``build_mobilenet_v3_backbone``) in BACKBONE_REGISTRY; `add_config` adds MODEL.MOBILENET.*.
Select it from a yaml file with::

    MODEL:
      PLUGINS: ["projects.MobileNetBackbone.mobilenet_backbone"]
      BACKBONE:
        NAME: "build_mobilenet_v3_fpn_backbone"
"""

from .backbone import MobileNetV3Backbone, build_mobilenet_v3_backbone, build_mobilenet_v3_fpn_backbone
from .config import add_config

__all__ = ["MobileNetV3Backbone", "add_config", "build_mobilenet_v3_backbone", "build_mobilenet_v3_fpn_backbone"]
