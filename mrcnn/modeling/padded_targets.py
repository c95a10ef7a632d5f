"""The ground truth of a batch as padded tensors, so that all images are matched at once."""

from typing import List, Sequence, Tuple

import torch
from torch.nn.utils.rnn import pad_sequence

from .cached_tensors import cached_arange, cached_tensor

__all__ = ["pad_per_image", "padding_mask"]


def pad_per_image(values: Sequence[torch.Tensor], padding_value: float = 0.0) -> Tuple[torch.Tensor, List[int]]:
    """Per-image tensors (G_i, ...) stacked into one (N, max G_i, ...) with ``padding_value`` after
    each image's own rows; also the G_i."""
    lengths = [len(value) for value in values]
    return pad_sequence(list(values), batch_first=True, padding_value=padding_value), lengths


def padding_mask(lengths: List[int], device: torch.device) -> torch.Tensor:
    """(N, max length) bool, True on each image's real rows."""
    size = max(lengths, default=0)
    return cached_arange(0, size, device) < cached_tensor(tuple((length,) for length in lengths), torch.int64, device)
