"""Deformable convolutions (v1 and the modulated v2) on ``torchvision.ops.deform_conv2d``.

Each output position samples its k×k input taps at the regular grid plus a learnt offset
(bilinearly, zero outside the image); the modulated form also scales each tap by a mask in [0, 1].
Offsets are laid out as torchvision and detectron2 both read them: channel
``2 * (g * k*k + tap) + {0: dy, 1: dx}`` for deformable group ``g`` and tap ``tap`` (row-major
over the kernel); masks as channel ``g * k*k + tap``.

The modules keep detectron2's parameter names (``weight``, ``bias``, ``norm.*``), so its
deformable checkpoints load unchanged.
"""

import math
from typing import Callable, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d as _torchvision_deform_conv2d

__all__ = ["DeformConv", "ModulatedDeformConv", "deform_conv2d"]

IntPair = Union[int, Tuple[int, int]]


def deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Deformable convolution: input (N, C, H, W), offset (N, 2*G*kh*kw, H', W'), weight
    (O, C/groups, kh, kw), optional mask (N, G*kh*kw, H', W') -> (N, O, H', W').

    torchvision's op, after checking that the offset (and mask) channels are a whole number of
    deformable groups, so that a mismatch is reported in those terms rather than from its kernel.
    """
    kernel_h, kernel_w = weight.shape[-2:]
    taps = kernel_h * kernel_w
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps) != 0:
        raise ValueError(
            f"deform_conv2d: the offset has {offset.shape[1]} channels; it needs 2 * {taps} "
            f"(kernel {kernel_h}x{kernel_w}) per deformable group."
        )
    groups = offset.shape[1] // (2 * taps)
    if mask is not None and mask.shape[1] != groups * taps:
        raise ValueError(
            f"deform_conv2d: the mask has {mask.shape[1]} channels; the offset's {groups} deformable "
            f"group(s) of a {kernel_h}x{kernel_w} kernel need {groups * taps}."
        )
    return _torchvision_deform_conv2d(
        input,
        offset,
        weight,
        bias=bias,
        stride=_pair(stride),
        padding=_pair(padding),
        dilation=_pair(dilation),
        mask=mask,
    )


class _DeformConvBase(nn.Module):
    """Parameters and output size shared by the plain and the modulated form."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        norm: Optional[nn.Module] = None,
        activation: Optional[Callable] = None,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Deformable conv: in_channels {in_channels} and out_channels {out_channels} must be "
                f"divisible by groups {groups}."
            )
        if deformable_groups < 1 or in_channels % deformable_groups:
            raise ValueError(
                f"Deformable conv: deformable_groups must be >= 1 and divide in_channels {in_channels}; "
                f"got {deformable_groups} (MODEL.RESNETS.DEFORM_NUM_GROUPS)."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.norm = norm
        self.activation = activation
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def offset_channels(self) -> int:
        """Channels of the offset input: (dy, dx) for every tap of every deformable group."""
        return 2 * self.deformable_groups * self.kernel_size[0] * self.kernel_size[1]

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.bias is not None}"
        )


class DeformConv(_DeformConvBase):
    """Deformable convolution (v1) followed by an optional norm and activation.

    ``forward(x (N, C, H, W), offset (N, 2*G*kh*kw, H', W')) -> (N, O, H', W')``. Without a bias
    by default, as detectron2's (a norm follows it in the ResNet blocks).
    """

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` with the taps displaced by ``offset``."""
        x = deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return self._finish(x)


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution (v2): each displaced tap also scaled by a mask.

    ``forward(x (N, C, H, W), offset (N, 2*G*kh*kw, H', W'), mask (N, G*kh*kw, H', W'))``; the
    mask is used as given (callers apply the sigmoid).
    """

    def __init__(self, *args, bias: bool = True, **kwargs):
        super().__init__(*args, bias=bias, **kwargs)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` with the taps displaced by ``offset`` and weighted by ``mask``."""
        x = deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask=mask)
        return self._finish(x)
