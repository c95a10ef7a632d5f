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
        raise RuntimeError(
            f"MODEL.DEVICE is '{name}' but CUDA is not available here; use MODEL.DEVICE cpu (or auto)."
        )
    return device


def build_model(cfg) -> nn.Module:
    """Build the whole model (MODEL.META_ARCHITECTURE) on MODEL.DEVICE, randomly initialised.

    Load weights afterwards with ``DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)``.
    """
    from mrcnn.config.compat import check_supported_features

    check_supported_features(cfg)
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    return model
