"""Small wrappers around torch: Conv2d with optional norm/activation, cheap cat, nonzero as a tuple."""

from typing import Callable, List, Optional, Tuple

import torch
from torch import nn


class Conv2d(nn.Conv2d):
    """nn.Conv2d followed by an optional norm module and activation.

    Keyword arguments `norm` (an nn.Module or None) and `activation` (a callable or
    None) are taken in addition to nn.Conv2d's. State dict keys are `weight`,
    `bias` and `norm.*`, the layout of detectron2 checkpoints.

    Built models run it with the norm folded into the weights where that computes the same
    function (see ``mrcnn.modeling.fast_paths``); this forward is the plain definition.
    """

    def __init__(self, *args, norm: Optional[nn.Module] = None, activation: Optional[Callable] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H', W')."""
        x = self._conv_forward(x, self.weight, self.bias)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def cat(tensors: List[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """torch.cat that returns a single tensor as is instead of copying it."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"cat expects a list or tuple of tensors, got {type(tensors).__name__}")
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def nonzero_tuple(x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Indices of non-zero elements as one (K,) tensor per dimension (a 0-dim input counts as 1-dim)."""
    if x.dim() == 0:
        return x.unsqueeze(0).nonzero().unbind(1)
    return x.nonzero(as_tuple=True)
