"""torchvision ImageNet MobileNetV3 weights -> this plugin's parameter names."""

from typing import Dict

import torch

__all__ = ["convert_imagenet_state_dict"]


def convert_imagenet_state_dict(
    state_dict: Dict[str, torch.Tensor], prefix: str = "backbone.bottom_up."
) -> Dict[str, torch.Tensor]:
    """``features.*`` -> ``{prefix}features.*``; the classifier is dropped.

    ``prefix`` is where the MobileNet sits in the model: "backbone.bottom_up." under the FPN,
    "backbone." for build_mobilenet_v3_backbone.
    """
    if not any(key.startswith("features.") for key in state_dict):
        raise ValueError("Not a torchvision MobileNetV3 state dict: no 'features.*' entries.")
    return {prefix + key: value for key, value in state_dict.items() if key.startswith("features.")}
