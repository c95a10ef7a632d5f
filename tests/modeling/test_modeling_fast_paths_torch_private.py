"""The private torch calls of the fast paths still exist and compute what the public ops compute.

When this fails after a torch upgrade, the message names the call that changed: adapt
mrcnn/modeling/fast_paths/torch_private.py (the only place that calls it). Until then the fast
paths warn and fall back to the public ops, so models still give the same results.
"""

import pytest
import torch
import torch.nn.functional as F

from mrcnn.modeling.fast_paths import torch_private


def test_every_private_call_matches_its_public_equivalent():
    problem = torch_private.private_api_problem()
    assert problem is None, f"torch {torch.__version__}: {problem}"
    assert torch_private.onednn_fusion_available()


def test_the_check_passes_when_first_run_under_inference_mode():
    with torch.inference_mode():
        assert torch_private.private_api_problem() is None


def test_fused_calls_on_channels_last_inputs_with_a_packed_weight():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 9, 11, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(8, 6, 3, 3, generator=generator)
    bias = torch.randn(8, generator=generator)
    residual = torch.randn(2, 8, 5, 6, generator=generator).contiguous(memory_format=torch.channels_last)
    geometry = ([1, 1], [2, 2], [1, 1], 1)
    packed = torch_private.reorder_conv_weight(weight, *geometry, x.shape)
    expected = F.conv2d(x, weight, bias, stride=2, padding=1)
    with torch.no_grad():
        got = torch_private.conv_pointwise(x, packed, bias, *geometry, relu=False)
        got_add = torch_private.conv_add_pointwise(x, residual, packed, bias, *geometry, relu=True)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_add, F.relu(expected + residual), atol=1e-4, rtol=1e-4)


def test_tensor_version_counts_in_place_writes():
    tensor = torch.zeros(3)
    before = torch_private.tensor_version(tensor)
    tensor.add_(1)
    tensor[0] = 5
    assert torch_private.tensor_version(tensor) == before + 2


def test_a_changed_private_call_is_reported_and_the_public_ops_used(monkeypatch):
    from mrcnn.layers import Conv2d
    from mrcnn.modeling.fast_paths import apply_fast_paths

    def renamed(*args, **kwargs):
        raise RuntimeError("no such operator")

    monkeypatch.setattr(torch_private, "conv_pointwise", renamed)
    problem = torch_private.private_api_problem()
    assert problem is not None and "_convolution_pointwise" in problem and "no such operator" in problem
    conv = apply_fast_paths(Conv2d(3, 4, kernel_size=3, padding=1, activation=F.relu)).eval()
    x = torch.randn(1, 3, 8, 8)
    torch_private._checked_for.cache_clear()
    try:
        with pytest.warns(UserWarning, match="no such operator"):
            assert not torch_private.onednn_fusion_available()
        with torch.no_grad():
            torch.testing.assert_close(conv(x), F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1)))
    finally:
        torch_private._checked_for.cache_clear()
