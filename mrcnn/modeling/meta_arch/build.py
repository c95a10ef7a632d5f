"""META_ARCH_REGISTRY and `build_model`."""

import torch
from torch import nn

from mrcnn.utils.registry import Registry

__all__ = ["META_ARCH_REGISTRY", "build_model", "resolve_device"]

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Whole-model architectures, built from cfg (MODEL.META_ARCHITECTURE)."


def resolve_device(name: str) -> torch.device:
    """MODEL.DEVICE to a torch.device; "auto" picks CUDA when it is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MODEL.DEVICE is '{name}' but CUDA is not available here; use MODEL.DEVICE cpu (or auto).")
    return device


def build_model(cfg) -> nn.Module:
    """Build the whole model (MODEL.META_ARCHITECTURE) on MODEL.DEVICE, randomly initialised.

    Load weights afterwards with ``DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)``. With
    MODEL.FAST_PATHS (the default) the model carries the speed-ups of ``mrcnn.modeling.fast_paths``.
    """
    from mrcnn.config.compat import check_supported_features
    from mrcnn.modeling.fast_paths import apply_fast_paths  # it imports the meta-architectures

    check_supported_features(cfg)
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    if cfg.MODEL.FAST_PATHS:
        apply_fast_paths(model)
    return model
