"""Multi-level RoIAlign: each box is pooled from the FPN level that matches its size."""

import math
from typing import List, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mrcnn.layers import ROIAlign, cat
from mrcnn.structures import Boxes

from .cached_tensors import cached_tensor

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
    boxes = cat([boxes.tensor for boxes in box_lists])
    levels = _pyramid_levels(boxes, min_level, max_level, canonical_box_size, canonical_level)
    return levels.to(torch.int64) - min_level


def _pyramid_levels(
    boxes: torch.Tensor, min_level: int, max_level: int, canonical_box_size: int, canonical_level: int
) -> torch.Tensor:
    """``assign_boxes_to_levels`` of boxes (M, 4), as the level itself in the boxes' float dtype."""
    box_sizes = torch.sqrt((boxes[:, 2:] - boxes[:, :2]).prod(dim=1))
    levels = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size) + 1e-6)
    return torch.clamp(levels, min=min_level, max=max_level)


def convert_boxes_to_pooler_format(box_lists: Sequence[Boxes]) -> torch.Tensor:
    """Per-image Boxes -> (M, 5) rows of [image index, x1, y1, x2, y2]."""
    return cat([F.pad(boxes.tensor, (1, 0), value=float(index)) for index, boxes in enumerate(box_lists)], dim=0)


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
        """features: L tensors (N,C,Hl,Wl); box_lists: N Boxes -> (M, C, out_h, out_w).

        With several levels the boxes are put in level order (stably: each level's boxes keep
        their order), each level pools its run of boxes, and the rows return to the boxes'
        order; how many boxes each level gets crosses to the host once.
        """
        pooler_boxes = convert_boxes_to_pooler_format(box_lists)
        if len(self.level_poolers) == 1:
            return self.level_poolers[0](features[0], pooler_boxes)
        levels = _pyramid_levels(
            pooler_boxes[:, 1:], self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        level_values = cached_tensor(
            tuple((float(level),) for level in range(self.min_level, self.max_level + 1)), levels.dtype, levels.device
        )
        level_counts = (levels == level_values).sum(dim=1).tolist()
        if len(levels) == 0:
            return features[0].new_zeros((0, features[0].shape[1]) + self.output_size)
        if max(level_counts) == len(levels):  # one level pools every box: no reordering
            level = level_counts.index(len(levels))
            return self.level_poolers[level](features[level], pooler_boxes)
        order = levels.argsort(stable=True)
        pooled = [
            pooler(feature, level_boxes)
            for feature, pooler, level_boxes, count in zip(
                features, self.level_poolers, pooler_boxes[order].split(level_counts), level_counts
            )
            if count > 0
        ]
        return cat(pooled, dim=0)[order.argsort()]
