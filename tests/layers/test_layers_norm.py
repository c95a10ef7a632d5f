import pytest
import torch
from torch import nn

from mrcnn.layers import (
    FrozenBatchNorm2d,
    SyncBatchNorm,
    convert_frozen_batchnorm,
    get_norm,
    is_affine_norm,
    norm_as_affine,
)


def _trained_batchnorm(channels: int, seed: int) -> nn.BatchNorm2d:
    generator = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=generator))
        bn.running_mean.copy_(torch.randn(channels, generator=generator))
        bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.1)
    return bn


def test_frozen_batchnorm_equals_eval_batchnorm():
    bn = _trained_batchnorm(6, seed=0).eval()
    frozen = FrozenBatchNorm2d(6)
    assert frozen.eps == pytest.approx(1e-5)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(frozen, name).copy_(getattr(bn, name).detach())
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(frozen(x), bn(x), atol=1e-5, rtol=1e-5)
    # no trainable parameters: statistics are buffers
    assert list(frozen.parameters()) == []


def test_convert_frozen_batchnorm_preserves_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        _trained_batchnorm(8, seed=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 4, 1), _trained_batchnorm(4, seed=2)),
    ).eval()
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    converted = convert_frozen_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in converted.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in converted.modules()) == 2
    converted.train()  # frozen statistics do not change in training mode
    torch.testing.assert_close(converted(x), expected, atol=1e-5, rtol=1e-5)
    single = convert_frozen_batchnorm(_trained_batchnorm(3, seed=5))
    assert isinstance(single, FrozenBatchNorm2d)


def test_get_norm_names_and_errors():
    assert get_norm("", 64) is None and get_norm(None, 64) is None
    assert isinstance(get_norm("BN", 16), nn.BatchNorm2d) and get_norm("BN", 16).num_features == 16
    assert isinstance(get_norm("SyncBN", 16), SyncBatchNorm)
    assert isinstance(get_norm("FrozenBN", 16), FrozenBatchNorm2d)
    group_norm = get_norm("GN", 64)
    assert isinstance(group_norm, nn.GroupNorm) and group_norm.num_groups == 32 and group_norm.num_channels == 64
    custom = get_norm(lambda channels: nn.LayerNorm(channels), 10)
    assert isinstance(custom, nn.LayerNorm) and custom.normalized_shape == (10,)
    with pytest.raises(ValueError) as info:
        get_norm("batchnorm", 8)
    assert "batchnorm" in str(info.value) and "FrozenBN" in str(info.value) and "GN" in str(info.value)


def test_which_norms_are_affine_maps():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert norm_as_affine(bn.train()) is None  # batch statistics: not an affine map
    scale, shift = norm_as_affine(bn.eval())
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(bn(x), x * scale[:, None, None] + shift[:, None, None])
    frozen = FrozenBatchNorm2d(3)
    with torch.no_grad():
        frozen.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
        frozen.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    scale, shift = norm_as_affine(frozen)
    torch.testing.assert_close(frozen(x), x * scale[:, None, None] + shift[:, None, None])
    assert norm_as_affine(nn.GroupNorm(1, 3)) is None
    # the cheap predicate says yes exactly where the scale and shift exist
    untracked = nn.BatchNorm2d(3, track_running_stats=False).eval()
    for norm in (bn.train(), bn.eval(), FrozenBatchNorm2d(3), nn.GroupNorm(1, 3), untracked, None):
        assert is_affine_norm(norm) == (norm_as_affine(norm) is not None)
    assert is_affine_norm(FrozenBatchNorm2d(3)) and not is_affine_norm(untracked)
