"""Whole-model architectures."""

from .build import META_ARCH_REGISTRY, build_model, resolve_device
from .rcnn import GeneralizedRCNN

__all__ = ["META_ARCH_REGISTRY", "build_model", "resolve_device", "GeneralizedRCNN"]
