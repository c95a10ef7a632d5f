"""The RPN head: a shared conv tower then per-anchor objectness and box-delta 1x1 convs."""

from typing import List, Sequence, Tuple

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import Conv2d
from mrcnn.utils.registry import Registry

from .anchor_generator import build_anchor_generator

__all__ = ["RPN_HEAD_REGISTRY", "StandardRPNHead", "build_rpn_head"]

RPN_HEAD_REGISTRY = Registry("RPN_HEAD")
RPN_HEAD_REGISTRY.__doc__ = """
RPN heads: modules called with a list of feature maps that return per-level objectness logits
(N, A, Hi, Wi) and anchor deltas (N, A*box_dim, Hi, Wi). A registered class is built as
``cls(cfg, input_shape)``, where ``input_shape`` is a list of ShapeSpec
(decorate ``__init__`` with ``mrcnn.config.configurable`` and add ``from_config``).
"""


@RPN_HEAD_REGISTRY.register()
class StandardRPNHead(nn.Module):
    """Conv 3x3 + ReLU shared by all levels, then 1x1 convs for objectness and deltas.

    With one conv (the default) it is the module ``conv``; with several they are
    ``conv.conv0``, ``conv.conv1``, ... Parameter names match detectron2 checkpoints.
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_anchors: int,
        box_dim: int = 4,
        conv_dims: Sequence[int] = (-1,),
    ):
        """
        Args:
            in_channels: channels of every input feature map.
            num_anchors: anchors per location (A), the same on every level.
            box_dim: numbers per box delta (4).
            conv_dims: output channels of each shared conv; -1 means ``in_channels``.
        """
        super().__init__()
        if len(conv_dims) == 0:
            raise ValueError("MODEL.RPN.CONV_DIMS must list at least one conv")
        if any(dim <= 0 and dim != -1 for dim in conv_dims):
            raise ValueError(f"MODEL.RPN.CONV_DIMS entries must be positive or -1, got {list(conv_dims)}")
        out_channels = in_channels
        if len(conv_dims) == 1:
            out_channels = in_channels if conv_dims[0] == -1 else conv_dims[0]
            self.conv = self._make_conv(in_channels, out_channels)
        else:
            self.conv = nn.Sequential()
            for index, dim in enumerate(conv_dims):
                dim = in_channels if dim == -1 else dim
                self.conv.add_module(f"conv{index}", self._make_conv(out_channels, dim))
                out_channels = dim
        self.objectness_logits = nn.Conv2d(out_channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(out_channels, num_anchors * box_dim, kernel_size=1)

        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    @staticmethod
    def _make_conv(in_channels: int, out_channels: int) -> nn.Module:
        return Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, activation=nn.ReLU())

    @classmethod
    def from_config(cls, cfg, input_shape) -> dict:
        """Constructor arguments from the levels' ShapeSpecs and the anchor generator."""
        in_channels = {shape.channels for shape in input_shape}
        if len(in_channels) != 1:
            raise ValueError(
                f"StandardRPNHead needs the same channels on every level of MODEL.RPN.IN_FEATURES, "
                f"got {sorted(in_channels)}"
            )
        anchor_generator = build_anchor_generator(cfg, input_shape)
        num_anchors = set(anchor_generator.num_anchors)
        if len(num_anchors) != 1:
            raise ValueError(
                f"StandardRPNHead needs the same number of anchors per location on every level, "
                f"got {anchor_generator.num_anchors} from MODEL.ANCHOR_GENERATOR"
            )
        return {
            "in_channels": in_channels.pop(),
            "num_anchors": num_anchors.pop(),
            "box_dim": anchor_generator.box_dim,
            "conv_dims": list(cfg.MODEL.RPN.CONV_DIMS),
        }

    def forward(self, features: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per level: objectness logits (N, A, Hi, Wi) and anchor deltas (N, A*box_dim, Hi, Wi)."""
        pred_objectness_logits = []
        pred_anchor_deltas = []
        for feature in features:
            hidden = self.conv(feature)
            pred_objectness_logits.append(self.objectness_logits(hidden))
            pred_anchor_deltas.append(self.anchor_deltas(hidden))
        return pred_objectness_logits, pred_anchor_deltas


def build_rpn_head(cfg, input_shape) -> nn.Module:
    """The RPN head named by MODEL.RPN.HEAD_NAME, built for ``input_shape`` (list of ShapeSpec)."""
    head_cls = RPN_HEAD_REGISTRY.get(cfg.MODEL.RPN.HEAD_NAME)
    return head_cls(cfg, input_shape)
