"""Deformable convolutions: torchvision's op and module, the offset layout, the modulated form."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mrcnn.layers import DeformConv, ModulatedDeformConv, deform_conv2d


def _random_deform_conv(cls, groups=1, deformable_groups=1, **kwargs):
    torch.manual_seed(0)
    conv = cls(8, 12, 3, stride=kwargs.pop("stride", 1), padding=1, groups=groups, deformable_groups=deformable_groups)
    with torch.no_grad():
        conv.weight.normal_()
        if conv.bias is not None:
            conv.bias.normal_()
    return conv


@pytest.mark.parametrize("groups, deformable_groups, stride", [(1, 1, 1), (2, 1, 2), (4, 2, 1)])
def test_deform_conv_equals_torchvision_module(groups, deformable_groups, stride):
    ours = _random_deform_conv(DeformConv, groups, deformable_groups, stride=stride)
    reference = torchvision.ops.DeformConv2d(8, 12, 3, stride=stride, padding=1, groups=groups, bias=False)
    reference.weight.data.copy_(ours.weight.data)
    x = torch.randn(2, 8, 9, 11)
    out_h, out_w = (9 - 1) // stride + 1, (11 - 1) // stride + 1
    offset = torch.randn(2, 18 * deformable_groups, out_h, out_w) * 2.0
    assert ours.offset_channels == offset.shape[1]
    expected = reference(x, offset)
    got = ours(x, offset)
    assert got.shape == (2, 12, out_h, out_w)
    torch.testing.assert_close(got, expected)


def test_modulated_deform_conv_equals_torchvision_op_with_mask():
    ours = _random_deform_conv(ModulatedDeformConv, deformable_groups=2)
    assert ours.bias is not None  # the modulated form has a bias by default, as detectron2's
    x = torch.randn(1, 8, 7, 7)
    offset = torch.randn(1, 36, 7, 7)
    mask = torch.rand(1, 18, 7, 7)
    expected = torchvision.ops.deform_conv2d(x, offset, ours.weight, ours.bias, padding=(1, 1), mask=mask)
    torch.testing.assert_close(ours(x, offset, mask), expected)
    # a mask of ones is the unmodulated convolution
    plain = torchvision.ops.deform_conv2d(x, offset, ours.weight, ours.bias, padding=(1, 1))
    torch.testing.assert_close(ours(x, offset, torch.ones_like(mask)), plain, atol=1e-5, rtol=1e-5)


def test_zero_offsets_are_the_regular_convolution_and_the_layout_is_dy_dx_per_tap():
    conv = _random_deform_conv(DeformConv)
    x = torch.randn(1, 8, 10, 10)
    zero = torch.zeros(1, 18, 10, 10)
    regular = F.conv2d(x, conv.weight, padding=1)
    torch.testing.assert_close(conv(x, zero), regular, atol=1e-5, rtol=1e-5)
    # Channel 2 * tap is dy and 2 * tap + 1 is dx: moving every tap one row down equals convolving
    # the image shifted one row up, away from the first output row (whose top taps then read
    # image row 0, where the shifted image has padding).
    down = zero.clone()
    down[:, 0::2] = 1.0
    shifted = F.conv2d(F.pad(x[:, :, 1:], (0, 0, 0, 1)), conv.weight, padding=1)
    torch.testing.assert_close(conv(x, down)[:, :, 1:], shifted[:, :, 1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(conv(x, down)[:, :, 1:], regular[:, :, 1:], atol=1e-2)
    right = zero.clone()
    right[:, 1::2] = 1.0
    shifted = F.conv2d(F.pad(x[:, :, :, 1:], (0, 1, 0, 0)), conv.weight, padding=1)
    torch.testing.assert_close(conv(x, right)[..., 1:], shifted[..., 1:], atol=1e-5, rtol=1e-5)


def test_norm_and_activation_follow_and_gradients_reach_the_offsets():
    conv = DeformConv(4, 6, 3, padding=1, norm=nn.GroupNorm(2, 6), activation=nn.ReLU())
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    offset = torch.randn(2, 18, 6, 6, requires_grad=True)
    out = conv(x, offset)
    assert (out >= 0).all()
    assert set(dict(conv.named_parameters())) == {"weight", "norm.weight", "norm.bias"}
    out.sum().backward()
    assert offset.grad.abs().sum() > 0 and conv.weight.grad.abs().sum() > 0


def test_mismatched_offset_or_mask_channels_are_named():
    weight = torch.randn(6, 4, 3, 3)
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match="offset has 20 channels"):
        deform_conv2d(x, torch.zeros(1, 20, 5, 5), weight, padding=1)
    with pytest.raises(ValueError, match="mask has 18 channels"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 5), weight, padding=1, mask=torch.ones(1, 18, 5, 5))
    with pytest.raises(ValueError, match="DEFORM_NUM_GROUPS"):
        DeformConv(6, 6, 3, deformable_groups=4)
