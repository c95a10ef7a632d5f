"""ROIAlign module over torchvision.ops.roi_align."""

from typing import Tuple, Union

import torch
from torch import nn
from torchvision.ops import roi_align

__all__ = ["ROIAlign"]


class ROIAlign(nn.Module):
    """Bilinear RoI pooling of (K, 5) rois [batch_index, x0, y0, x1, y1] into (K, C, *output_size).

    `aligned=True` shifts box coordinates by -0.5 so a box's corners land on pixel
    corners, which is what Mask R-CNN needs for pixel-accurate masks.
    """

    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """input (N, C, H, W), rois (K, 5) -> (K, C, out_h, out_w)."""
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError(f"ROIAlign expects rois of shape (K, 5), got {tuple(rois.shape)}")
        rois = rois.to(dtype=input.dtype)
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
