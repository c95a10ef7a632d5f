"""ResNet and FPN: output names, strides, channels, stride placement and the registry."""

import math

import pytest
import torch

from mrcnn.benchmark import tiny_config
from mrcnn.layers import FrozenBatchNorm2d
from mrcnn.modeling import BACKBONE_REGISTRY, build_backbone


@pytest.mark.parametrize("depth, res2_channels, res5_channels", [(18, 64, 512), (34, 64, 512), (50, 256, 2048)])
def test_resnet_fpn_shapes(depth, res2_channels, res5_channels):
    cfg = tiny_config()
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = res2_channels
    backbone = build_backbone(cfg)
    bottom_up = backbone.bottom_up.output_shape()
    assert bottom_up["res5"].channels == res5_channels and bottom_up["res5"].stride == 32
    assert backbone.size_divisibility == 32
    features = backbone(torch.randn(1, 3, 64, 96))
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    for level, name in enumerate(features, start=2):
        assert features[name].shape == (1, 32, math.ceil(64 / 2**level), math.ceil(96 / 2**level))
        assert backbone.output_shape()[name].stride == 2**level


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_stride_placement(stride_in_1x1):
    cfg = tiny_config()
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = stride_in_1x1
    block = build_backbone(cfg).bottom_up.res3[0]
    assert block.conv1.stride == ((2, 2) if stride_in_1x1 else (1, 1))
    assert block.conv2.stride == ((1, 1) if stride_in_1x1 else (2, 2))


def test_freeze_at_uses_frozen_batchnorm():
    cfg = tiny_config()
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    resnet = build_backbone(cfg).bottom_up
    assert isinstance(resnet.stem.conv1.norm, FrozenBatchNorm2d)
    assert isinstance(resnet.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(resnet.res3[0].conv1.norm, torch.nn.BatchNorm2d)


def test_unknown_backbone_lists_registered_names():
    cfg = tiny_config()
    cfg.MODEL.BACKBONE.NAME = "nope"
    with pytest.raises(KeyError) as info:
        build_backbone(cfg)
    assert "build_resnet_fpn_backbone" in str(info.value)
    assert "build_resnet_fpn_backbone" in BACKBONE_REGISTRY.names()


def test_unsupported_feature_is_refused_with_key():
    from mrcnn.config import ConfigError
    from mrcnn.modeling import build_model

    cfg = tiny_config()
    cfg.MODEL.KEYPOINT_ON = True
    with pytest.raises(ConfigError, match="MODEL.KEYPOINT_ON"):
        build_model(cfg)
