"""Folded norms and fused conv kernels compute what the separate conv, norm, add and ReLU compute."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, FrozenBatchNorm2d, is_affine_norm, norm_as_affine
from mrcnn.layers import conv_fusion
from mrcnn.layers.conv_fusion import clear_folded_weights, conv_add_relu, conv_relu, conv_transpose_relu


def _frozen_bn(channels: int, seed: int) -> FrozenBatchNorm2d:
    generator = torch.Generator().manual_seed(seed)
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=generator))
    norm.running_mean.copy_(torch.randn(channels, generator=generator))
    norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.1)
    return norm


def _reference(conv: Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The unfused definition: convolution, then the norm module, then the activation."""
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    if conv.norm is not None:
        y = conv.norm(y)
    return conv.activation(y) if conv.activation is not None else y


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "kwargs", [dict(kernel_size=3, padding=1), dict(kernel_size=1, stride=2), dict(kernel_size=3, padding=2, dilation=2, groups=2)]
)
def test_inference_matches_separate_ops(channels_last, kwargs):
    torch.manual_seed(0)
    conv = Conv2d(8, 12, bias=False, norm=_frozen_bn(12, 1), activation=nn.ReLU(), **kwargs).eval()
    x = torch.randn(2, 8, 11, 13)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _reference(conv, x)
        fused = conv(x)
        again = conv(x)  # from the cached folded weights
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(fused, again)
    assert (fused >= 0).all() and (fused == 0).any() and (fused > 0).any()


def test_residual_add_and_relu():
    torch.manual_seed(1)
    conv = Conv2d(6, 6, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(6, 2))
    x = torch.randn(1, 6, 9, 10).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(1, 6, 9, 10).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _reference(conv, x) + residual
        torch.testing.assert_close(conv_add_relu(conv, x, residual), F.relu(expected), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(conv_add_relu(conv, x, residual, relu=False), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(conv_relu(conv, x), F.relu(_reference(conv, x)), atol=1e-5, rtol=1e-5)


def test_training_gradients_equal_unfolded():
    torch.manual_seed(2)
    conv = Conv2d(4, 5, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(5, 3))
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    residual = torch.randn(2, 5, 7, 7)
    conv_add_relu(conv, x, residual).square().sum().backward()
    folded_grad, input_grad = conv.weight.grad.clone(), x.grad.clone()
    conv.weight.grad, x.grad = None, None
    F.relu(_reference(conv, x) + residual).square().sum().backward()
    torch.testing.assert_close(folded_grad, conv.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(input_grad, x.grad, atol=1e-4, rtol=1e-4)


def test_cache_follows_loaded_and_modified_weights():
    torch.manual_seed(3)
    conv = Conv2d(3, 4, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(4, 4), activation=F.relu)
    x = torch.randn(1, 3, 8, 8)
    other = Conv2d(3, 4, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(4, 5), activation=F.relu)
    with torch.no_grad():
        before = conv(x)
        conv.load_state_dict(other.state_dict())
        torch.testing.assert_close(conv(x), _reference(other, x), atol=1e-5, rtol=1e-5)
        conv.norm.running_var.mul_(4.0)  # in place: the version counter moves
        torch.testing.assert_close(conv(x), _reference(conv, x), atol=1e-5, rtol=1e-5)
        conv.weight.data.mul_(2.0)  # through .data: invisible to the version counter
        clear_folded_weights(conv)
        torch.testing.assert_close(conv(x), _reference(conv, x), atol=1e-5, rtol=1e-5)
    assert not torch.equal(before, conv(x).detach())
    # a forward with gradients drops the cache, so a stale copy is not kept during training
    conv(x.requires_grad_())
    assert conv not in conv_fusion._CACHES


def test_which_norms_fold():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert norm_as_affine(bn.train()) is None  # batch statistics: not an affine map
    scale, shift = norm_as_affine(bn.eval())
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(bn(x), x * scale[:, None, None] + shift[:, None, None])
    assert norm_as_affine(nn.GroupNorm(1, 3)) is None
    conv = Conv2d(3, 3, kernel_size=1, norm=nn.GroupNorm(1, 3)).eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), _reference(conv, x))
    # the cheap predicate says yes exactly where the scale and shift exist
    untracked = nn.BatchNorm2d(3, track_running_stats=False).eval()
    for norm in (bn.train(), bn.eval(), FrozenBatchNorm2d(3), nn.GroupNorm(1, 3), untracked, None):
        assert is_affine_norm(norm) == (norm_as_affine(norm) is not None)
    assert is_affine_norm(FrozenBatchNorm2d(3)) and not is_affine_norm(untracked)


def test_tracing_records_standard_ops():
    conv = Conv2d(3, 4, kernel_size=3, padding=1, norm=_frozen_bn(4, 6), activation=F.relu).eval()
    with torch.no_grad():
        traced = torch.jit.trace(conv, torch.randn(1, 3, 8, 8))
    graph = str(traced.graph)
    assert "aten::_convolution" in graph and "mkldnn" not in graph


def test_transposed_conv_with_relu():
    torch.manual_seed(4)
    deconv = nn.ConvTranspose2d(6, 5, kernel_size=2, stride=2)
    x = torch.randn(3, 6, 5, 7).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = F.relu(F.conv_transpose2d(x, deconv.weight, deconv.bias, stride=2))
        fused = conv_transpose_relu(deconv, x)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert (fused == 0).any() and (fused > 0).any()
    # with gradients: the separate ops, so autograd sees them
    out = conv_transpose_relu(deconv, x.requires_grad_())
    assert out.grad_fn is not None


def test_model_with_cached_weights_copies_and_pickles():
    import copy
    import io

    conv = Conv2d(4, 4, kernel_size=3, padding=1, norm=_frozen_bn(4, 7), activation=nn.ReLU()).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        expected = conv(x)  # fills the cache with packed (uncopyable) oneDNN tensors
        assert conv in conv_fusion._CACHES
        copied = copy.deepcopy(conv)
        torch.testing.assert_close(copied(x), expected)
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), expected)
