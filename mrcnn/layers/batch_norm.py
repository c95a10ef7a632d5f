"""Normalization layers: frozen batch norm and a name -> norm layer factory."""

from typing import Callable, Optional, Tuple, Union

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from .sync_batch_norm import SyncBatchNorm

__all__ = [
    "FrozenBatchNorm2d",
    "get_norm",
    "convert_frozen_batchnorm",
    "is_affine_norm",
    "norm_as_affine",
    "NORM_NAMES",
]

NORM_NAMES = ("BN", "SyncBN", "FrozenBN", "GN")


def get_norm(norm: Union[str, Callable[[int], nn.Module], None], out_channels: int) -> Optional[nn.Module]:
    """A norm layer for `out_channels` channels from a name ("BN", "SyncBN", "FrozenBN", "GN") or factory.

    "" or None means no normalization and returns None. "SyncBN" is `SyncBatchNorm`: BatchNorm over
    the batches of all processes in distributed training, on the CPU (gloo) as on GPUs, and plain
    BatchNorm in one process.
    """
    if norm is None:
        return None
    if isinstance(norm, str):
        if norm == "":
            return None
        factories = {
            "BN": nn.BatchNorm2d,
            "SyncBN": SyncBatchNorm,
            "FrozenBN": FrozenBatchNorm2d,
            # 32 groups, as in the Group Normalization paper's default
            "GN": lambda channels: nn.GroupNorm(32, channels),
        }
        if norm not in factories:
            raise ValueError(f"Unknown norm '{norm}'; valid names are {list(NORM_NAMES)} or '' for none")
        return factories[norm](out_channels)
    if callable(norm):
        return norm(out_channels)
    raise TypeError(f"norm must be a name, a callable or None, got {type(norm).__name__}")


def convert_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d / SyncBatchNorm in `module` by a FrozenBatchNorm2d with the same statistics.

    Returns the converted module (a new object when `module` itself is a batch norm).
    """
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight.detach())
                frozen.bias.copy_(module.bias.detach())
            if module.track_running_stats and module.running_mean is not None:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        tensors = list(module.parameters()) + list(module.buffers())
        return frozen.to(tensors[0].device) if tensors else frozen
    for name, child in module.named_children():
        converted = convert_frozen_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def is_affine_norm(norm: Optional[nn.Module]) -> bool:
    """Whether ``norm_as_affine(norm)`` gives a (scale, shift), decided without computing them
    (on a GPU each of those small tensor ops is a kernel launch)."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
        and norm.track_running_stats
        and norm.running_var is not None
    )


def norm_as_affine(norm: Optional[nn.Module]) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(scale, shift)``, each (C,), with ``norm(x) == x * scale + shift`` per channel, when the norm
    is a fixed affine map (FrozenBatchNorm2d, or BatchNorm in eval mode); None otherwise.

    The result stays differentiable in the norm's affine parameters, so a conv that absorbs it
    still trains them.
    """
    if not is_affine_norm(norm):
        return None
    if isinstance(norm, FrozenBatchNorm2d):
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        return scale, norm.bias - norm.running_mean * scale
    scale = (norm.running_var + norm.eps).rsqrt()
    shift = -norm.running_mean * scale
    if norm.affine:
        scale = norm.weight * scale
        shift = norm.weight * shift + norm.bias
    return scale, shift
