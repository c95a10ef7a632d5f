"""ResNet variants of detectron2's zoo: C4 and dilated C5 backbones, ResNeXt, deformable blocks,
and the stage builder they share with Res5ROIHeads."""

import pytest
import torch
from torch import nn

from mrcnn.config import get_cfg
from mrcnn.layers import DeformConv, ModulatedDeformConv
from mrcnn.modeling import build_backbone
from mrcnn.modeling.backbone.resnet import BottleneckBlock, DeformBottleneckBlock, ResNet


def _resnet_cfg(**resnets):
    """A narrow ResNet-50 without FPN: res2 64 channels, bottleneck 16, BatchNorm."""
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 16
    for key, value in resnets.items():
        cfg.MODEL.RESNETS[key] = value
    return cfg


def test_make_stage_passes_shared_and_per_block_arguments():
    blocks = ResNet.make_stage(
        BottleneckBlock, 3, in_channels=8, out_channels=16, bottleneck_channels=4, stride_per_block=[2, 1, 1]
    )
    assert [b.stride for b in blocks] == [2, 1, 1]
    assert [b.in_channels for b in blocks] == [8, 16, 16] and all(b.out_channels == 16 for b in blocks)
    assert blocks[0].shortcut is not None and blocks[1].shortcut is None
    with pytest.raises(ValueError, match="stride_per_block has 2 values for 3 blocks"):
        ResNet.make_stage(
            BottleneckBlock, 3, in_channels=8, out_channels=16, bottleneck_channels=4, stride_per_block=[2, 1]
        )


def test_default_backbone_is_the_c4_resnet_up_to_res4():
    backbone = build_backbone(_resnet_cfg())
    assert backbone.output_shape() == {"res4": backbone.output_shape()["res4"]}
    assert backbone.output_shape()["res4"].stride == 16 and backbone.output_shape()["res4"].channels == 256
    assert not hasattr(backbone, "res5")  # res5 is the C4 RoI head's, not the backbone's
    assert backbone(torch.randn(1, 3, 64, 96))["res4"].shape == (1, 256, 4, 6)


def test_dilated_res5_keeps_stride_16():
    backbone = build_backbone(_resnet_cfg(OUT_FEATURES=["res5"], RES5_DILATION=2))
    shape = backbone.output_shape()["res5"]
    assert shape.stride == 16 and shape.channels == 512
    first, later = backbone.res5[0], backbone.res5[1]
    assert first.stride == 1 and first.shortcut.stride == (1, 1)
    assert first.conv2.dilation == (2, 2) and first.conv2.padding == (2, 2) and later.conv2.dilation == (2, 2)
    assert backbone.res4[0].conv2.dilation == (1, 1)
    assert backbone(torch.randn(1, 3, 64, 96))["res5"].shape == (1, 512, 4, 6)
    with pytest.raises(ValueError, match="RES5_DILATION must be 1 or 2"):
        build_backbone(_resnet_cfg(OUT_FEATURES=["res5"], RES5_DILATION=3))


def test_resnext_widths_groups_and_stride_placement():
    # X-101-32x8d: 32 groups of 8 channels in res2's 3x3 conv, doubling with every stage
    cfg = _resnet_cfg(
        DEPTH=101, NUM_GROUPS=32, WIDTH_PER_GROUP=8, STRIDE_IN_1X1=False, RES2_OUT_CHANNELS=256, STEM_OUT_CHANNELS=64
    )
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    with torch.device("meta"):
        backbone = build_backbone(cfg)
    params = dict(backbone.named_parameters())
    for stage, width in zip(("res2", "res3", "res4", "res5"), (256, 512, 1024, 2048)):
        block = getattr(backbone, stage)[0]
        assert block.conv2.groups == 32
        assert params[f"{stage}.0.conv2.weight"].shape == (width, width // 32, 3, 3)
        assert params[f"{stage}.0.conv1.weight"].shape[0] == width
        if stage != "res2":
            assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)  # stride in the 3x3 (Caffe2)
    assert len(backbone.res4) == 23 and params["res5.2.conv3.weight"].shape == (2048, 2048, 1, 1)


@pytest.mark.parametrize("modulated", [False, True])
def test_deformable_stages_name_and_shape_their_offset_convs(modulated):
    cfg = _resnet_cfg(
        OUT_FEATURES=["res2", "res3", "res4", "res5"],
        DEFORM_ON_PER_STAGE=[False, True, True, True],
        DEFORM_MODULATED=modulated,
        DEFORM_NUM_GROUPS=2,
    )
    backbone = build_backbone(cfg)
    params = dict(backbone.named_parameters())
    assert type(backbone.res2[0]) is BottleneckBlock and "res2.0.conv2_offset.weight" not in params
    for stage, width in (("res3", 32), ("res4", 64), ("res5", 128)):
        for index, block in enumerate(getattr(backbone, stage)):
            assert type(block) is DeformBottleneckBlock
            assert isinstance(block.conv2, ModulatedDeformConv if modulated else DeformConv)
            offset_weight = params[f"{stage}.{index}.conv2_offset.weight"]
            assert offset_weight.shape == ((27 if modulated else 18) * 2, width, 3, 3)
            assert not offset_weight.any() and not params[f"{stage}.{index}.conv2_offset.bias"].any()
            assert f"{stage}.{index}.conv2.norm.weight" in params and f"{stage}.{index}.conv2.bias" not in params
    assert backbone.res3[0].conv2_offset.stride == backbone.res3[0].conv2.stride
    features = backbone(torch.randn(2, 3, 64, 64))
    assert features["res5"].shape == (2, 512, 2, 2)


def _block_pair(modulated: bool):
    """A deformable block and a plain bottleneck block with the same weights (eval mode)."""
    torch.manual_seed(0)
    kwargs = {"bottleneck_channels": 8, "stride": 2, "num_groups": 2, "norm": "BN"}
    deform = DeformBottleneckBlock(16, 32, deform_modulated=modulated, deform_num_groups=2, **kwargs).eval()
    plain = BottleneckBlock(16, 32, **kwargs).eval()
    with torch.no_grad():
        for module in deform.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    state = {k: v for k, v in deform.state_dict().items() if "conv2_offset" not in k}
    plain.load_state_dict(state)
    return deform, plain


def test_unmodulated_block_starts_as_the_plain_block():
    deform, plain = _block_pair(modulated=False)
    x = torch.randn(1, 16, 12, 12)
    torch.testing.assert_close(deform(x), plain(x), atol=1e-5, rtol=1e-5)


def test_modulated_block_reads_offsets_first_and_mask_logits_last():
    deform, plain = _block_pair(modulated=True)
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        # zero offsets and mask logits of 30 (mask 1) in the last 9 * 2 channels: the plain block
        deform.conv2_offset.bias[36:] = 30.0
        torch.testing.assert_close(deform(x), plain(x), atol=1e-5, rtol=1e-5)
        # the same large values in the first channels would be offsets, and change the result
        deform.conv2_offset.bias.zero_()
        deform.conv2_offset.bias[:18] = 30.0
        assert not torch.allclose(deform(x), plain(x), atol=1e-3)


def test_deformable_blocks_train():
    deform, _ = _block_pair(modulated=True)
    deform.train()
    with torch.no_grad():
        deform.conv2_offset.weight.normal_(std=0.01)
    deform(torch.randn(2, 16, 12, 12)).square().mean().backward()
    assert deform.conv2_offset.weight.grad.abs().sum() > 0 and deform.conv2.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "key, value", [("DEFORM_ON_PER_STAGE", [False, True, False, False]), ("NUM_GROUPS", 32), ("RES5_DILATION", 2)]
)
def test_basic_block_resnets_refuse_bottleneck_options(key, value):
    cfg = _resnet_cfg(DEPTH=18, **{key: value})
    with pytest.raises(ValueError, match=f"MODEL.RESNETS.{key}"):
        build_backbone(cfg)


def test_deform_switches_need_one_value_per_stage():
    with pytest.raises(ValueError, match="DEFORM_ON_PER_STAGE needs one value per stage"):
        build_backbone(_resnet_cfg(DEFORM_ON_PER_STAGE=[True]))
