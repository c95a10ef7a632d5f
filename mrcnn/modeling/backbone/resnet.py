"""ResNet-18/34/50/101/152 and ResNeXt with detectron2 parameter names (stem, res2..res5,
shortcut, convN.norm), optionally dilated res5 (DC5) and deformable 3x3 convs."""

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, DeformConv, ModulatedDeformConv, ShapeSpec, convert_frozen_batchnorm, get_norm

from .backbone import Backbone
from .build import BACKBONE_REGISTRY

__all__ = [
    "BasicStem",
    "BasicBlock",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "ResNet",
    "build_resnet_backbone",
]

_BLOCKS_PER_STAGE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _msra_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class _FreezableBlock(nn.Module):
    def freeze(self) -> "_FreezableBlock":
        """Stop training this block: no gradients, and batch statistics frozen."""
        for p in self.parameters():
            p.requires_grad_(False)
        convert_frozen_batchnorm(self)
        return self


class BasicStem(_FreezableBlock):
    """7×7 stride-2 conv, norm, ReLU and 3×3 stride-2 max-pool: (N,3,H,W) -> (N,C,H/4,W/4)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "BN"):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = 4
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        _msra_init(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def _projection_shortcut(in_channels: int, out_channels: int, stride: int, norm: str) -> Optional[Conv2d]:
    """The 1×1 conv (with its norm) that projects a block's input onto its output's shape, or None
    where the input already has that shape."""
    if in_channels == out_channels and stride == 1:
        return None
    return Conv2d(
        in_channels, out_channels, kernel_size=1, stride=stride, bias=False, norm=get_norm(norm, out_channels)
    )


class BasicBlock(_FreezableBlock):
    """Two 3×3 convs with a residual connection (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm: str = "BN"):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels,
            out_channels,
            kernel_size=3,
            stride=1,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                _msra_init(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = self.conv2(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class BottleneckBlock(_FreezableBlock):
    """1×1 reduce, 3×3, 1×1 expand with a residual connection (ResNet-50/101).

    ``stride_in_1x1`` puts the stride on the first 1×1 conv as the MSRA (Caffe2) weights expect;
    False puts it on the 3×3 conv as torchvision's weights expect.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv2 = Conv2d(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, kernel_size=1, bias=False, norm=get_norm(norm, out_channels)
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                _msra_init(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class DeformBottleneckBlock(_FreezableBlock):
    """A bottleneck block whose 3×3 conv is deformable (Dai et al. 2017; modulated: Zhu et al. 2018).

    ``conv2_offset``, a plain 3×3 conv with the same stride and dilation as ``conv2``, predicts
    from conv1's output the offsets (18 channels per deformable group) or, modulated, offsets and
    mask logits (27 per group: the first 18·G channels are the offsets, the last 9·G the mask
    logits, as detectron2's blocks split them). It starts at zero, so a new block first samples the
    regular grid (with a mask of 0.5 everywhere in the modulated form).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.deform_modulated = deform_modulated
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        taps = 3 * 3
        self.conv2_offset = Conv2d(
            bottleneck_channels,
            (3 if deform_modulated else 2) * taps * deform_num_groups,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
        )
        self.conv2 = (ModulatedDeformConv if deform_modulated else DeformConv)(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            deformable_groups=deform_num_groups,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, kernel_size=1, bias=False, norm=get_norm(norm, out_channels)
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                _msra_init(layer)
        nn.init.zeros_(self.conv2_offset.weight)
        nn.init.zeros_(self.conv2_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)."""
        out = F.relu_(self.conv1(x))
        offset = self.conv2_offset(out)
        if self.deform_modulated:
            num_offsets = 2 * offset.shape[1] // 3
            mask = offset[:, num_offsets:].sigmoid()
            out = self.conv2(out, offset[:, :num_offsets], mask)
        else:
            out = self.conv2(out, offset)
        out = F.relu_(out)
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class ResNet(Backbone):
    """A stem and four stages ``res2..res5`` (strides 4, 8, 16, 32); returns the requested stages."""

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[Sequence[nn.Module]],
        out_features: Sequence[str],
        freeze_at: int = 0,
    ):
        super().__init__()
        self.stem = stem
        self._out_feature_strides: Dict[str, int] = {"stem": stem.stride}
        self._out_feature_channels: Dict[str, int] = {"stem": stem.out_channels}
        self.stage_names: List[str] = []
        current_stride = stem.stride
        for index, blocks in enumerate(stages):
            name = f"res{index + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self.stage_names.append(name)
            for block in blocks:
                current_stride *= block.stride
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        unknown = [f for f in out_features if f not in self._out_feature_strides]
        if unknown:
            raise ValueError(f"MODEL.RESNETS.OUT_FEATURES names {unknown}; valid: {list(self._out_feature_strides)}")
        self._out_features = list(out_features)
        needed = max((0 if f == "stem" else int(f[3:]) - 1) for f in self._out_features)
        # Stages after the last requested one would only cost time.
        for name in self.stage_names[needed:]:
            delattr(self, name)
        self.stage_names = self.stage_names[:needed]
        self.freeze(freeze_at)

    @staticmethod
    def make_stage(
        block_class: type, num_blocks: int, *, in_channels: int, out_channels: int, **kwargs: Any
    ) -> List[nn.Module]:
        """The ``num_blocks`` blocks of one stage, the first taking ``in_channels``.

        Every other keyword is passed to each block; one named ``<name>_per_block`` is a list
        with one value of ``<name>`` per block (e.g. ``stride_per_block=[2, 1, 1]``). Used by the
        backbone and by heads that run a stage per RoI (Res5ROIHeads).
        """
        per_block = {key[: -len("_per_block")]: value for key, value in kwargs.items() if key.endswith("_per_block")}
        shared = {key: value for key, value in kwargs.items() if not key.endswith("_per_block")}
        for name, values in per_block.items():
            if len(values) != num_blocks:
                raise ValueError(f"make_stage: {name}_per_block has {len(values)} values for {num_blocks} blocks.")
            if name in shared:
                raise ValueError(f"make_stage: both {name} and {name}_per_block given.")
        blocks = []
        for index in range(num_blocks):
            arguments = {**shared, **{name: values[index] for name, values in per_block.items()}}
            blocks.append(block_class(in_channels=in_channels, out_channels=out_channels, **arguments))
            in_channels = out_channels
        return blocks

    def freeze(self, freeze_at: int) -> "ResNet":
        """Freeze the stem (freeze_at >= 1) and the first ``freeze_at - 1`` stages."""
        if freeze_at >= 1:
            self.stem.freeze()
        for index, name in enumerate(self.stage_names, start=2):
            if freeze_at >= index:
                for block in getattr(self, name):
                    block.freeze()
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N,3,H,W) -> {stage name: (N,C,H/stride,W/stride)} for the requested stages."""
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """ResNet from MODEL.RESNETS.* and MODEL.BACKBONE.FREEZE_AT."""
    res = cfg.MODEL.RESNETS
    depth = res.DEPTH
    if depth not in _BLOCKS_PER_STAGE:
        raise ValueError(f"MODEL.RESNETS.DEPTH must be one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}.")
    deform_on = list(res.DEFORM_ON_PER_STAGE)
    if len(deform_on) != 4:
        raise ValueError(f"MODEL.RESNETS.DEFORM_ON_PER_STAGE needs one value per stage res2..res5, got {deform_on}.")
    if res.RES5_DILATION not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION must be 1 or 2, got {res.RES5_DILATION}.")
    if depth in (18, 34):
        # BasicBlock stages keep their width: RES2_OUT_CHANNELS (64 in the standard network;
        # smaller values give the narrow backbones used for quick CPU training).
        for key, value, plain in (
            ("RES5_DILATION", res.RES5_DILATION, 1),
            ("NUM_GROUPS", res.NUM_GROUPS, 1),
            ("DEFORM_ON_PER_STAGE", deform_on, [False] * 4),
        ):
            if value != plain:
                raise ValueError(f"MODEL.RESNETS.{key} must be {plain} for ResNet-{depth}, got {value}.")
    norm = res.NORM
    stem = BasicStem(input_shape.channels or 3, res.STEM_OUT_CHANNELS, norm)
    out_channels = res.RES2_OUT_CHANNELS
    in_channels = res.STEM_OUT_CHANNELS
    bottleneck = res.NUM_GROUPS * res.WIDTH_PER_GROUP
    stages = []
    for stage_index, num_blocks in enumerate(_BLOCKS_PER_STAGE[depth]):
        dilation = res.RES5_DILATION if stage_index == 3 else 1
        first_stride = 1 if stage_index == 0 or dilation > 1 else 2
        stage_args: Dict[str, Any] = {
            "stride_per_block": [first_stride] + [1] * (num_blocks - 1),
            "in_channels": in_channels,
            "out_channels": out_channels,
            "norm": norm,
        }
        if depth in (18, 34):
            block_class = BasicBlock
        else:
            block_class = DeformBottleneckBlock if deform_on[stage_index] else BottleneckBlock
            stage_args.update(
                bottleneck_channels=bottleneck,
                num_groups=res.NUM_GROUPS,
                stride_in_1x1=res.STRIDE_IN_1X1,
                dilation=dilation,
            )
            if deform_on[stage_index]:
                stage_args.update(deform_modulated=res.DEFORM_MODULATED, deform_num_groups=res.DEFORM_NUM_GROUPS)
        stages.append(ResNet.make_stage(block_class, num_blocks, **stage_args))
        in_channels = out_channels
        out_channels *= 2
        bottleneck *= 2
    return ResNet(stem, stages, out_features=res.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
