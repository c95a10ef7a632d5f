"""Pillow's bilinear resize of uint8 images, written as traceable tensor ops.

The predictor resizes images with Pillow (``ResizeTransform``), so an exported graph that resized
any other way would see slightly different pixels and return slightly different detections. This
module reproduces Pillow's two-pass resampling (``Image.resize(size, Image.BILINEAR)``) value for
value: per output pixel a triangle filter stretched by the downscaling factor (antialiasing),
weights normalised and rounded to 22-bit fixed point, a horizontal pass rounded to uint8, then a
vertical pass rounded to uint8. Every size is a tensor derived from the input's shape, so traced
graphs keep height and width dynamic.

Each output pixel reads at most ``2 * ceil(max(scale, 1)) + 1`` input pixels; the passes gather
those and sum the fixed-point products in int64, exactly (ONNX Runtime's float64 reductions are
not exact enough for this). The weights themselves are computed in float64, as Pillow does.

Pillow releases from 13 on may run the vertical pass first for some sizes (picked by cost), so
there an individual resized pixel can differ by one grey level from this horizontal-first
resampling; earlier releases match it exactly.
"""

from typing import Tuple

import torch

__all__ = ["pillow_bilinear_resize", "resized_shortest_edge_size"]

_PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit images


def resized_shortest_edge_size(
    height: torch.Tensor, width: torch.Tensor, min_size: int, max_size: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(new_height, new_width) int64 tensors of ResizeShortestEdge: shortest edge ``min_size``, longest <= ``max_size``.

    The same float64 arithmetic as ``ResizeShortestEdge.get_output_shape``, on 0-d tensors.
    """
    # (1,)-shaped, not 0-d: ONNX export types 0-d arithmetic on sizes as float32 scalars
    height_f, width_f = height.reshape(1).to(torch.float64), width.reshape(1).to(torch.float64)
    # full_like(...) / x rather than a Python number / x, which ONNX export would compute in float32
    shortest, longest = torch.minimum(height_f, width_f), torch.maximum(height_f, width_f)
    scale = torch.full_like(shortest, float(min_size)) / shortest
    scale = torch.where(longest * scale > max_size, torch.full_like(longest, float(max_size)) / longest, scale)
    new_height = torch.floor(height_f * scale + 0.5).to(torch.int64).reshape(())
    return new_height, torch.floor(width_f * scale + 0.5).to(torch.int64).reshape(())


def _axis_coefficients(
    in_size: torch.Tensor, out_size: torch.Tensor, padded_size: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gather indices and fixed-point weights (padded_size, K) of one axis; rows >= out_size weigh nothing.

    Pillow's ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` (bilinear filter, support 1).
    """
    # (1,)-shaped, not 0-d: ONNX export types 0-d arithmetic on sizes as float32 scalars
    in_f, out_f = in_size.reshape(1).to(torch.float64), out_size.reshape(1).to(torch.float64)
    scale = in_f / out_f
    filter_scale = torch.clamp(scale, min=1.0)
    support = filter_scale  # the bilinear filter's support (1) times the filter scale
    num_taps = (torch.ceil(support).to(torch.int64) * 2 + 1).reshape(())
    positions = torch.arange(padded_size, dtype=torch.int64, device=in_size.device)
    center = (positions.to(torch.float64) + 0.5) * scale
    first = torch.clamp(torch.floor(center - support + 0.5), min=0.0)
    last = torch.minimum(torch.floor(center + support + 0.5), in_f)
    taps = torch.arange(num_taps, dtype=torch.int64, device=in_size.device)
    source = first.to(torch.int64)[:, None] + taps[None, :]  # (P, K)
    used = (taps[None, :] < (last - first).to(torch.int64)[:, None]) & (positions < out_size)[:, None]
    inverse_scale = torch.ones_like(filter_scale) / filter_scale
    distance = ((source.to(torch.float64) - center[:, None]) + 0.5) * inverse_scale
    weights = torch.where(used, torch.clamp(1.0 - distance.abs(), min=0.0), torch.zeros_like(distance))
    total = weights.sum(dim=1, keepdim=True)
    weights = torch.where(total != 0, weights / torch.where(total != 0, total, torch.ones_like(total)), weights)
    fixed_point = torch.floor(weights * float(1 << _PRECISION_BITS) + 0.5).to(torch.int64)
    return torch.clamp(source, max=in_size - 1), fixed_point


def _round_to_uint8_values(accumulated: torch.Tensor) -> torch.Tensor:
    """Pillow's clip8: (2**21 + sum) >> 22, clamped to [0, 255] (int64 in and out; the sums are not negative)."""
    shifted = torch.div(accumulated + (1 << (_PRECISION_BITS - 1)), 1 << _PRECISION_BITS, rounding_mode="floor")
    return torch.clamp(shifted, 0, 255)


def pillow_bilinear_resize(
    images: torch.Tensor,
    out_height: torch.Tensor,
    out_width: torch.Tensor,
    padded_height: torch.Tensor,
    padded_width: torch.Tensor,
) -> torch.Tensor:
    """Resize (B, H, W, C) uint8 images to (out_height, out_width) as Pillow does; float32 (B, Hp, Wp, C).

    The result holds the resized pixel values (integers 0-255) in the top-left corner of a
    padded_height x padded_width canvas, and zeros elsewhere. Sizes are 0-d int64 tensors.
    """
    shape = torch._shape_as_tensor(images)
    pixels = images.to(torch.int64)
    column_index, column_weights = _axis_coefficients(shape[2], out_width, padded_width)
    horizontal = (pixels[:, :, column_index, :] * column_weights[None, None, :, :, None]).sum(dim=3)
    horizontal = _round_to_uint8_values(horizontal)  # (B, H, Wp, C)
    row_index, row_weights = _axis_coefficients(shape[1], out_height, padded_height)
    vertical = (horizontal[:, row_index, :, :] * row_weights[None, :, :, None, None]).sum(dim=2)
    return _round_to_uint8_values(vertical).to(torch.float32)  # (B, Hp, Wp, C)
