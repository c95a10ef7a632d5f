"""BACKBONE_REGISTRY and `build_backbone`."""

from typing import Optional

from mrcnn.layers import ShapeSpec
from mrcnn.utils.registry import Registry

from .backbone import Backbone

__all__ = ["BACKBONE_REGISTRY", "build_backbone"]

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Functions or classes that build a Backbone from ``(cfg, input_shape: ShapeSpec)``.
Plugins register theirs here and select them with MODEL.BACKBONE.NAME.
"""


def build_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> Backbone:
    """Build the backbone named by MODEL.BACKBONE.NAME."""
    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"MODEL.BACKBONE.NAME '{cfg.MODEL.BACKBONE.NAME}' built a {type(backbone).__name__}, "
            "which is not a mrcnn Backbone."
        )
    return backbone
