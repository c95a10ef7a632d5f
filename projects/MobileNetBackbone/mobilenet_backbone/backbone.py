"""MobileNetV3 (torchvision's definition) as an mrcnn Backbone, alone or under an FPN.

The network is torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small`` without its
classifier; its ``features`` blocks keep torchvision's parameter names, so ImageNet weights load
after adding a prefix (see ``convert_imagenet_weights.py``). Outputs are named by stride:
``mb{k}`` is the last block whose output stride is 2**k.
"""

import math
from typing import Callable, Dict, List, Sequence

import torch
import torchvision
from torch import nn

from mrcnn.layers import FrozenBatchNorm2d, ShapeSpec
from mrcnn.layers.batch_norm import convert_frozen_batchnorm
from mrcnn.modeling.backbone import BACKBONE_REGISTRY, FPN, Backbone, build_fpn

__all__ = ["MobileNetV3Backbone", "build_mobilenet_v3_backbone", "build_mobilenet_v3_fpn_backbone"]

ARCHS = ("mobilenet_v3_large", "mobilenet_v3_small")
# torchvision trains MobileNetV3 with this eps; ImageNet statistics only fit with the same one.
_BN_EPS = 1e-3


def _norm_factory(norm: str) -> Callable[[int], nn.Module]:
    factories = {
        "FrozenBN": lambda channels: FrozenBatchNorm2d(channels, eps=_BN_EPS),
        "BN": lambda channels: nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=0.01),
        "SyncBN": lambda channels: nn.SyncBatchNorm(channels, eps=_BN_EPS, momentum=0.01),
    }
    if norm not in factories:
        raise ValueError(f"MODEL.MOBILENET.NORM must be one of {sorted(factories)}; got '{norm}'.")
    return factories[norm]


def _block_stride(block: nn.Module) -> int:
    return math.prod(m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d))


def _block_channels(block: nn.Module) -> int:
    channels = getattr(block, "out_channels", None)
    if channels is None:  # the last dense (non-depthwise) conv decides
        channels = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups == 1][-1].out_channels
    return int(channels)


class MobileNetV3Backbone(Backbone):
    """torchvision's MobileNetV3 feature extractor: (N, 3, H, W) -> {"mb2": (N, C2, H/4, W/4), ...}."""

    def __init__(
        self,
        arch: str = "mobilenet_v3_large",
        width_mult: float = 1.0,
        norm: str = "FrozenBN",
        out_features: Sequence[str] = ("mb2", "mb3", "mb4", "mb5"),
        freeze_at: int = 0,
    ):
        """
        Args:
            arch: torchvision builder name, "mobilenet_v3_large" or "mobilenet_v3_small".
            width_mult: channel multiplier (torchvision's ``width_mult``).
            norm: "FrozenBN", "BN" or "SyncBN" after every conv.
            out_features: which ``mb{k}`` outputs to return.
            freeze_at: freeze the blocks of strides 2**1 .. 2**freeze_at (0: train everything);
                their batch norms become frozen too.
        """
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"MODEL.MOBILENET.ARCH must be one of {list(ARCHS)}; got '{arch}'.")
        network = getattr(torchvision.models, arch)(weights=None, width_mult=width_mult, norm_layer=_norm_factory(norm))
        self.features = network.features  # the classifier is not needed
        stride = 1
        self._stage_end: Dict[str, int] = {}  # mb{k} -> index of its last block
        self._out_feature_strides: Dict[str, int] = {}
        self._out_feature_channels: Dict[str, int] = {}
        for index, block in enumerate(self.features):
            stride *= _block_stride(block)
            name = f"mb{int(math.log2(stride))}"
            self._stage_end[name] = index
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = _block_channels(block)
        unknown = [f for f in out_features if f not in self._stage_end]
        if unknown or not out_features:
            raise ValueError(
                f"MODEL.MOBILENET.OUT_FEATURES {list(out_features)}: {arch} has the outputs {list(self._stage_end)}."
            )
        self._out_features = [f for f in self._stage_end if f in out_features]  # shallow to deep
        self._last_block = max(self._stage_end[f] for f in self._out_features)
        self._freeze(freeze_at)

    def _freeze(self, freeze_at: int) -> None:
        for name, end in self._stage_end.items():
            if int(name[2:]) > freeze_at:
                break
            for index in range(end + 1):
                block = self.features[index]
                for parameter in block.parameters():
                    parameter.requires_grad_(False)
                self.features[index] = convert_frozen_batchnorm(block)

    @property
    def size_divisibility(self) -> int:
        return 0

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N, 3, H, W) -> the requested ``mb{k}`` maps, ceil(H / 2**k) x ceil(W / 2**k)."""
        if x.dim() != 4:
            raise ValueError(f"MobileNetV3Backbone takes (N, C, H, W) input, got shape {tuple(x.shape)}")
        outputs: Dict[str, torch.Tensor] = {}
        wanted = {self._stage_end[f]: f for f in self._out_features}
        for index, block in enumerate(self.features[: self._last_block + 1]):
            x = block(x)
            if index in wanted:
                outputs[wanted[index]] = x
        return outputs


def _backbone_from_config(cfg, input_shape: ShapeSpec, out_features: List[str]) -> MobileNetV3Backbone:
    if "MOBILENET" not in cfg.MODEL:
        raise KeyError(
            "MODEL.MOBILENET is missing: call projects.MobileNetBackbone.mobilenet_backbone.add_config(cfg) "
            "before merging the yaml (tools/train_net.py does it for plugins in MODEL.PLUGINS)."
        )
    if input_shape.channels != 3:
        raise ValueError(f"MobileNetV3 takes 3-channel images; MODEL.PIXEL_MEAN gives {input_shape.channels}.")
    options = cfg.MODEL.MOBILENET
    return MobileNetV3Backbone(
        arch=options.ARCH,
        width_mult=options.WIDTH_MULT,
        norm=options.NORM,
        out_features=out_features,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )


@BACKBONE_REGISTRY.register()
def build_mobilenet_v3_backbone(cfg, input_shape: ShapeSpec) -> MobileNetV3Backbone:
    """MobileNetV3 alone, returning MODEL.MOBILENET.OUT_FEATURES."""
    return _backbone_from_config(cfg, input_shape, list(cfg.MODEL.MOBILENET.OUT_FEATURES))


@BACKBONE_REGISTRY.register()
def build_mobilenet_v3_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """MobileNetV3 under an FPN (MODEL.FPN.*) with the max-pooled extra level, like the ResNet-FPN."""
    return build_fpn(cfg, _backbone_from_config(cfg, input_shape, list(cfg.MODEL.MOBILENET.OUT_FEATURES)))
