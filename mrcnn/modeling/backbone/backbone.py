"""The Backbone interface: a module returning named feature maps with known strides and channels."""

from abc import ABCMeta, abstractmethod
from typing import Dict

import torch
from torch import nn

from mrcnn.layers import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """Base class of every backbone: ``forward(images (N,C,H,W)) -> {name: (N,C_i,H_i,W_i)}``."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the named feature maps of a padded image batch."""

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this (0: any size)."""
        return 0

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of every output feature."""
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }
