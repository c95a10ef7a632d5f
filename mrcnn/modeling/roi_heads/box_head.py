"""Box heads: turn pooled RoI features into one feature vector per RoI."""

from typing import List

import numpy as np
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import Conv2d, ShapeSpec, get_norm
from mrcnn.utils.registry import Registry

__all__ = ["ROI_BOX_HEAD_REGISTRY", "FastRCNNConvFCHead", "build_box_head"]

ROI_BOX_HEAD_REGISTRY = Registry("ROI_BOX_HEAD")
ROI_BOX_HEAD_REGISTRY.__doc__ = "Box heads, built from (cfg, input_shape: ShapeSpec)."


@ROI_BOX_HEAD_REGISTRY.register()
class FastRCNNConvFCHead(nn.Sequential):
    """``conv1..convN`` (3×3, optional norm, ReLU), flatten, ``fc1..fcM`` (ReLU).

    (R, C, S, S) -> (R, FC_DIM) (or (R, C', S, S) when there are no fully connected layers).
    Two fc layers of 1024 is the classic FPN head; four GroupNorm/BatchNorm convs and one fc is
    the "4conv1fc" head of newer models.
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, conv_dims: List[int], fc_dims: List[int], conv_norm: str = ""):
        super().__init__()
        if not conv_dims and not fc_dims:
            raise ValueError("The box head needs at least one conv or fc layer (NUM_CONV / NUM_FC).")
        shape = (input_shape.channels, input_shape.height, input_shape.width)
        self.conv_norm_relus = []
        for index, dim in enumerate(conv_dims):
            conv = Conv2d(
                shape[0],
                dim,
                kernel_size=3,
                padding=1,
                bias=not conv_norm,
                norm=get_norm(conv_norm, dim),
                activation=nn.ReLU(),
            )
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.add_module(f"conv{index + 1}", conv)
            self.conv_norm_relus.append(conv)
            shape = (dim, shape[1], shape[2])
        self.fcs = []
        for index, dim in enumerate(fc_dims):
            if index == 0:
                self.add_module("flatten", nn.Flatten())
            fc = nn.Linear(int(np.prod(shape)), dim)
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
            self.add_module(f"fc{index + 1}", fc)
            self.add_module(f"fc_relu{index + 1}", nn.ReLU())
            self.fcs.append(fc)
            shape = (dim,)
        self._output_size = shape

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        head = cfg.MODEL.ROI_BOX_HEAD
        return {
            "input_shape": input_shape,
            "conv_dims": [head.CONV_DIM] * head.NUM_CONV,
            "fc_dims": [head.FC_DIM] * head.NUM_FC,
            "conv_norm": head.NORM,
        }

    @property
    def output_shape(self) -> ShapeSpec:
        """Shape of the per-RoI output."""
        if len(self._output_size) == 1:
            return ShapeSpec(channels=self._output_size[0])
        return ShapeSpec(channels=self._output_size[0], height=self._output_size[1], width=self._output_size[2])


def build_box_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The box head named by MODEL.ROI_BOX_HEAD.NAME."""
    return ROI_BOX_HEAD_REGISTRY.get(cfg.MODEL.ROI_BOX_HEAD.NAME)(cfg, input_shape)
