"""Feature Pyramid Network over a bottom-up backbone, with the max-pooled extra level P6."""

import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, ShapeSpec, get_norm

from .backbone import Backbone
from .build import BACKBONE_REGISTRY
from .resnet import build_resnet_backbone

__all__ = ["FPN", "LastLevelMaxPool", "build_fpn", "build_resnet_fpn_backbone"]


class LastLevelMaxPool(nn.Module):
    """P6 as a stride-2 subsampling (1×1 max-pool) of P5, as used by the RPN."""

    num_levels = 1
    in_feature = "p5"

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


def _xavier_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class FPN(Backbone):
    """Lateral 1×1 convs, a nearest-upsampling top-down path and 3×3 output convs.

    Returns ``p2..p5`` (for inputs res2..res5) plus ``p6`` from the top block, each with
    ``out_channels`` channels; parameter names ``fpn_lateral{i}`` / ``fpn_output{i}``.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: List[str],
        out_channels: int,
        norm: str = "",
        top_block: Optional[nn.Module] = None,
        fuse_type: str = "sum",
    ):
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"MODEL.FPN.FUSE_TYPE must be 'sum' or 'avg', got '{fuse_type}'.")
        input_shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(
                f"MODEL.FPN.IN_FEATURES {missing} are not produced by the backbone, which gives {list(input_shapes)}."
            )
        strides = [input_shapes[f].stride for f in in_features]
        in_channels = [input_shapes[f].channels for f in in_features]
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        self._fuse_type = fuse_type
        use_bias = norm == ""
        self.lateral_convs: List[nn.Module] = []
        self.output_convs: List[nn.Module] = []
        for stride, channels in zip(strides, in_channels):
            level = int(math.log2(stride))
            lateral = Conv2d(channels, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels))
            output = Conv2d(
                out_channels,
                out_channels,
                kernel_size=3,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            _xavier_init(lateral)
            _xavier_init(output)
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last_level = int(math.log2(strides[-1]))
            for extra in range(top_block.num_levels):
                self._out_feature_strides[f"p{last_level + extra + 1}"] = 2 ** (last_level + extra + 1)
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = dict.fromkeys(self._out_features, out_channels)
        self._size_divisibility = strides[-1]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def merge_lateral(self, index: int, bottom_up_feature: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        """Level ``index``'s lateral 1×1 conv of its bottom-up feature plus the upsampled coarser level."""
        return self.lateral_convs[index](bottom_up_feature) + upsampled

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N,3,H,W) with H, W multiples of the last stride -> {"p2": (N,C,H/4,W/4), ..., "p6"}."""
        bottom_up_features = self.bottom_up(x)
        inputs = [bottom_up_features[f] for f in self.in_features]
        top_down = self.lateral_convs[-1](inputs[-1])
        results = [self.output_convs[-1](top_down)]
        for index in range(len(inputs) - 2, -1, -1):
            upsampled = F.interpolate(top_down, size=inputs[index].shape[-2:], mode="nearest")
            top_down = self.merge_lateral(index, inputs[index], upsampled)
            if self._fuse_type == "avg":
                top_down = top_down / 2
            results.insert(0, self.output_convs[index](top_down))
        if self.top_block is not None:
            results.extend(self.top_block(results[-1]))
        return dict(zip(self._out_features, results))


def build_fpn(cfg, bottom_up: Backbone) -> FPN:
    """An FPN (MODEL.FPN.*) with the P6 max-pool level over any bottom-up backbone.

    A plugin's backbone builder returns ``build_fpn(cfg, MyBackbone(...))`` to get the same
    pyramid as the ResNet-FPN; MODEL.FPN.IN_FEATURES names the bottom-up outputs it reads.
    """
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """ResNet (MODEL.RESNETS.*) with an FPN (MODEL.FPN.*) and the P6 max-pool level."""
    return build_fpn(cfg, build_resnet_backbone(cfg, input_shape))
