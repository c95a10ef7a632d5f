"""ImageList: images of different sizes padded into one batch tensor, remembering each true size."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F


class ImageList:
    """A padded batch (N, C, Hmax, Wmax) plus the (h, w) of every image before padding."""

    def __init__(self, tensor: torch.Tensor, image_sizes: List[Tuple[int, int]]):
        if tensor.shape[0] != len(image_sizes):
            raise ValueError(
                f"ImageList: batch tensor has {tensor.shape[0]} images but image_sizes has {len(image_sizes)}"
            )
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image `index` without its padding, (C, h, w)."""
        height, width = self.image_sizes[index]
        return self.tensor[index, ..., :height, :width]

    def to(self, *args, **kwargs) -> ImageList:
        """The same batch on another device / dtype."""
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: Sequence[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
    ) -> ImageList:
        """Pad (C, H, W) images at the bottom/right to a common size divisible by `size_divisibility`."""
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one image")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"ImageList.from_tensors: image {i} is a {type(t).__name__}, not a tensor")
            if t.dim() < 2 or t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"ImageList.from_tensors: image {i} has shape {tuple(t.shape)}, incompatible with "
                    f"image 0 of shape {tuple(tensors[0].shape)} (leading dims must match)"
                )
        image_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_height = max(h for h, _ in image_sizes)
        max_width = max(w for _, w in image_sizes)
        if size_divisibility > 1:
            stride = int(size_divisibility)
            max_height = (max_height + stride - 1) // stride * stride
            max_width = (max_width + stride - 1) // stride * stride

        if len(tensors) == 1:
            # one image: F.pad avoids allocating and copying into a fresh batch
            height, width = image_sizes[0]
            padded = F.pad(tensors[0], [0, max_width - width, 0, max_height - height], value=pad_value)
            return ImageList(padded.unsqueeze(0).contiguous(), image_sizes)

        batch_shape = [len(tensors)] + list(tensors[0].shape[:-2]) + [max_height, max_width]
        batched = tensors[0].new_full(batch_shape, pad_value)
        for image, slot in zip(tensors, batched):
            slot[..., : image.shape[-2], : image.shape[-1]].copy_(image)
        return ImageList(batched.contiguous(), image_sizes)
