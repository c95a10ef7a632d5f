import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, ShapeSpec, cat, nonzero_tuple


def test_conv2d_applies_norm_then_activation_with_detectron2_keys():
    torch.manual_seed(0)
    conv = Conv2d(3, 8, kernel_size=3, padding=1, bias=False, norm=nn.GroupNorm(4, 8), activation=F.relu)
    assert sorted(conv.state_dict()) == ["norm.bias", "norm.weight", "weight"]
    x = torch.randn(2, 3, 6, 6)
    expected = F.relu(F.group_norm(F.conv2d(x, conv.weight, padding=1), 4, conv.norm.weight, conv.norm.bias))
    torch.testing.assert_close(conv(x), expected)
    assert (conv(x) >= 0).all()
    plain = Conv2d(3, 4, 1)
    assert sorted(plain.state_dict()) == ["bias", "weight"]
    torch.testing.assert_close(plain(x), F.conv2d(x, plain.weight, plain.bias))


def test_cat_skips_copy_for_one_tensor_and_nonzero_tuple():
    a = torch.arange(4)
    assert cat([a]) is a
    assert cat([a, a + 4]).tolist() == list(range(8))
    assert cat([a[None], a[None]], dim=1).shape == (1, 8)
    rows, cols = nonzero_tuple(torch.tensor([[0, 1], [1, 0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    (index,) = nonzero_tuple(torch.tensor(3))
    assert index.tolist() == [0]


def test_shape_spec_defaults():
    spec = ShapeSpec(channels=256, stride=8)
    assert (spec.channels, spec.height, spec.width, spec.stride) == (256, None, None, 8)
    assert ShapeSpec() == ShapeSpec(None, None, None, None)
