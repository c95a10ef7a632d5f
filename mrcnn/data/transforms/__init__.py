"""Augmentations (random decisions) and the Transforms (deterministic changes) they produce."""

from .augmentation import AugInput, Augmentation, AugmentationList, apply_augmentations
from .augmentation_impl import RandomCrop, RandomFlip, Resize, ResizeShortestEdge
from .photometric import PhotometricDistortTransform, RandomPhotometricDistort
from .transform import (
    ColorTransform,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
    clip_polygon_to_rectangle,
)

__all__ = [
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "apply_augmentations",
    "RandomCrop",
    "RandomFlip",
    "Resize",
    "ResizeShortestEdge",
    "PhotometricDistortTransform",
    "RandomPhotometricDistort",
    "ColorTransform",
    "CropTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "ResizeTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "clip_polygon_to_rectangle",
]
