"""Multi-level RoIAlign: each box is pooled from the FPN level that matches its size."""

import math
from typing import List, Sequence

import torch
from torch import nn

from mrcnn.layers import ROIAlign, cat
from mrcnn.structures import Boxes

__all__ = ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"]


def assign_boxes_to_levels(
    box_lists: Sequence[Boxes],
    min_level: int,
    max_level: int,
    canonical_box_size: int = 224,
    canonical_level: int = 4,
) -> torch.Tensor:
    """Pyramid level of every box, counted from ``min_level``: (M,) int64 in [0, max-min].

    level = floor(canonical_level + log2(sqrt(area) / canonical_box_size)), clamped; a box of
    224×224 goes to level 4 (P4), one of 112×112 to P3. The small epsilon keeps boxes that sit
    exactly on a boundary on the upper level, as torchvision does.
    """
    box_sizes = torch.sqrt(cat([boxes.area() for boxes in box_lists]))
    levels = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size) + 1e-6)
    levels = torch.clamp(levels, min=min_level, max=max_level)
    return levels.to(torch.int64) - min_level


def convert_boxes_to_pooler_format(box_lists: Sequence[Boxes]) -> torch.Tensor:
    """Per-image Boxes -> (M, 5) rows of [image index, x1, y1, x2, y2]."""
    rows = []
    for index, boxes in enumerate(box_lists):
        tensor = boxes.tensor
        rows.append(torch.cat([torch.full_like(tensor[:, :1], index), tensor], dim=1))
    return cat(rows, dim=0)


class ROIPooler(nn.Module):
    """Pools a fixed-size feature for every box from a list of feature levels.

    ``pooler_type`` "ROIAlignV2" samples with the half-pixel correction (``aligned=True``);
    "ROIAlign" without it (what torchvision's models use).
    """

    def __init__(
        self,
        output_size: int,
        scales: Sequence[float],
        sampling_ratio: int,
        pooler_type: str,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        if pooler_type not in ("ROIAlign", "ROIAlignV2"):
            raise ValueError(f"Pooler type must be 'ROIAlign' or 'ROIAlignV2', got '{pooler_type}'.")
        aligned = pooler_type == "ROIAlignV2"
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.level_poolers = nn.ModuleList(
            ROIAlign(self.output_size, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
            for scale in scales
        )
        levels = [-math.log2(scale) for scale in scales]
        if any(abs(level - round(level)) > 1e-6 for level in levels):
            raise ValueError(f"Pooler scales must be powers of 2, got {list(scales)}.")
        self.min_level = int(round(levels[0]))
        self.max_level = int(round(levels[-1]))
        if len(scales) != self.max_level - self.min_level + 1:
            raise ValueError(f"Pooler scales must be consecutive levels, got {list(scales)}.")
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def forward(self, features: List[torch.Tensor], box_lists: List[Boxes]) -> torch.Tensor:
        """features: L tensors (N,C,Hl,Wl); box_lists: N Boxes -> (M, C, out_h, out_w)."""
        pooler_boxes = convert_boxes_to_pooler_format(box_lists)
        if len(self.level_poolers) == 1:
            return self.level_poolers[0](features[0], pooler_boxes)
        levels = assign_boxes_to_levels(
            box_lists, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        num_channels = features[0].shape[1]
        output = features[0].new_zeros((pooler_boxes.shape[0], num_channels) + self.output_size)
        for level, (feature, pooler) in enumerate(zip(features, self.level_poolers)):
            indices = torch.nonzero(levels == level, as_tuple=True)[0]
            if indices.numel() > 0:
                # index_put_ keeps only the indices for backward; index_copy_ would keep the pooled values
                output[indices] = pooler(feature, pooler_boxes[indices]).to(output.dtype)
        return output
