"""Small wrappers around torch: Conv2d with optional norm/activation, cheap cat, nonzero as a tuple."""
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from .batch_norm import is_affine_norm
from .conv_fusion import conv_forward, folded_conv_for_training, folded_weight_and_bias


class Conv2d(nn.Conv2d):
    """nn.Conv2d followed by an optional norm module and activation.

    Keyword arguments `norm` (an nn.Module or None) and `activation` (a callable or
    None) are taken in addition to nn.Conv2d's. State dict keys are `weight`,
    `bias` and `norm.*`, the layout of detectron2 checkpoints.

    A norm that is a fixed per-channel affine map (frozen BN; BN in eval mode) is folded into
    the convolution's weight and bias at every call instead of being applied to the output:
    the same function, but one pass over the activations fewer and no extra activation tensor
    kept for backward. Gradients still reach ``weight`` (and the norm's affine parameters).
    In CPU inference the folded conv and a ReLU activation run as one oneDNN kernel
    (see ``conv_fusion``).
    """

    def __init__(self, *args, norm: Optional[nn.Module] = None, activation: Optional[Callable] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H', W')."""
        fused = conv_forward(self, x)
        if fused is not None:
            return fused
        if self.norm is not None and is_affine_norm(self.norm):
            if torch.is_grad_enabled():
                x = folded_conv_for_training(self, x)
            else:
                weight, bias = folded_weight_and_bias(self)
                x = self._conv_forward(x, weight, bias)
        else:
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
