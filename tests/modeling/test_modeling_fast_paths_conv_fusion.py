"""Folded norms and fused conv kernels compute what the separate conv, norm, add and ReLU compute."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, FrozenBatchNorm2d, norm_as_affine
from mrcnn.modeling.fast_paths import apply_fast_paths, clear_fast_path_caches, conv_fusion
from mrcnn.modeling.fast_paths.conv_fusion import conv_add_relu, conv_relu, conv_transpose_relu


def _fast_conv(*args, **kwargs) -> Conv2d:
    """An mrcnn Conv2d with the fast paths applied (as build_model applies them)."""
    return apply_fast_paths(Conv2d(*args, **kwargs))


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
    "kwargs",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=1, stride=2),
        dict(kernel_size=3, padding=2, dilation=2, groups=2),
    ],
)
def test_inference_matches_separate_ops(channels_last, kwargs):
    torch.manual_seed(0)
    conv = _fast_conv(8, 12, bias=False, norm=_frozen_bn(12, 1), activation=nn.ReLU(), **kwargs).eval()
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
    conv = _fast_conv(6, 6, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(6, 2))
    x = torch.randn(1, 6, 9, 10).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(1, 6, 9, 10).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _reference(conv, x) + residual
        torch.testing.assert_close(conv_add_relu(conv, x, residual), F.relu(expected), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(conv_add_relu(conv, x, residual, relu=False), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(conv_relu(conv, x), F.relu(_reference(conv, x)), atol=1e-5, rtol=1e-5)


def test_training_gradients_equal_unfolded():
    torch.manual_seed(2)
    conv = _fast_conv(4, 5, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(5, 3))
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
    conv = _fast_conv(3, 4, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(4, 4), activation=F.relu)
    x = torch.randn(1, 3, 8, 8)
    other = Conv2d(3, 4, kernel_size=3, padding=1, bias=False, norm=_frozen_bn(4, 5), activation=F.relu)
    with torch.no_grad():
        before = conv(x)
        conv.load_state_dict(other.state_dict())
        torch.testing.assert_close(conv(x), _reference(other, x), atol=1e-5, rtol=1e-5)
        conv.norm.running_var.mul_(4.0)  # in place: the version counter moves
        torch.testing.assert_close(conv(x), _reference(conv, x), atol=1e-5, rtol=1e-5)
        conv.weight.data.mul_(2.0)  # through .data: invisible to the version counter
        clear_fast_path_caches(conv)
        torch.testing.assert_close(conv(x), _reference(conv, x), atol=1e-5, rtol=1e-5)
    assert not torch.equal(before, conv(x).detach())
    # a forward with gradients drops the cache, so a stale copy is not kept during training
    conv(x.requires_grad_())
    assert conv not in conv_fusion._CONV_CACHES


def test_a_norm_that_is_not_affine_runs_unfolded():
    x = torch.randn(2, 3, 4, 4)
    conv = _fast_conv(3, 3, kernel_size=1, norm=nn.GroupNorm(1, 3)).eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), _reference(conv, x))
    bn_conv = _fast_conv(3, 3, kernel_size=1, norm=nn.BatchNorm2d(3)).train()
    torch.testing.assert_close(bn_conv(x), _reference(bn_conv, x))  # batch statistics: not folded


def test_frozen_norm_scale_and_shift_are_cached_until_a_buffer_changes():
    norm = FrozenBatchNorm2d(4)
    with torch.no_grad():
        norm.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 2.0]))
        norm.running_mean.copy_(torch.tensor([0.5, -1.0, 0.0, 3.0]))
    scale, shift = conv_fusion._norm_affine(norm, torch.float32)
    assert scale.shape == (4, 1, 1, 1) and shift.shape == (4,)
    torch.testing.assert_close(scale.view(-1), (norm.running_var + norm.eps).rsqrt())
    torch.testing.assert_close(shift, -norm.running_mean * scale.view(-1))
    again = conv_fusion._norm_affine(norm, torch.float32)
    assert again[0] is scale and again[1] is shift  # nothing recomputed

    # an in-place write (load_state_dict, copy_) is seen through the version counter
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    state["weight"] = torch.full((4,), 2.0)
    norm.load_state_dict(state)
    scale2, shift2 = conv_fusion._norm_affine(norm, torch.float32)
    torch.testing.assert_close(scale2, 2 * scale)
    torch.testing.assert_close(shift2, 2 * shift)

    # a write through .data is not; clearing the caches picks it up
    norm.bias.data.fill_(1.0)
    assert conv_fusion._norm_affine(norm, torch.float32)[1] is shift2
    clear_fast_path_caches(norm)
    torch.testing.assert_close(conv_fusion._norm_affine(norm, torch.float32)[1], shift2 + 1.0)

    # the folded conv still trains its weight with the cached scale
    conv = _fast_conv(3, 4, kernel_size=1, bias=False, norm=norm)
    x = torch.randn(2, 3, 5, 5)
    conv(x).sum().backward()
    expected = (x.sum(dim=(0, 2, 3))[None, :] * norm_as_affine(norm)[0][:, None]).reshape(4, 3, 1, 1)
    torch.testing.assert_close(conv.weight.grad, expected)


def test_tracing_records_standard_ops():
    conv = _fast_conv(3, 4, kernel_size=3, padding=1, norm=_frozen_bn(4, 6), activation=F.relu).eval()
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

    conv = _fast_conv(4, 4, kernel_size=3, padding=1, norm=_frozen_bn(4, 7), activation=nn.ReLU()).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        expected = conv(x)  # fills the cache with packed (uncopyable) oneDNN tensors
        assert conv in conv_fusion._CONV_CACHES
        copied = copy.deepcopy(conv)
        torch.testing.assert_close(copied(x), expected)
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), expected)
