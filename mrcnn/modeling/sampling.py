"""Random, fraction-controlled sampling of positive and negative labels."""

from typing import Tuple

import torch

__all__ = ["subsample_labels"]


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample at most ``num_samples`` indices, aiming at ``positive_fraction`` positives.

    Labels equal to -1 are ignored, ``bg_label`` is negative and any other label is positive.
    When there are too few positives the remainder is filled with negatives. Selection uses
    ``torch.randperm`` on the global RNG, so seeding torch makes it reproducible.

    Args:
        labels: (N,) integer labels.
        num_samples: total number of indices to return at most.
        positive_fraction: the largest share of positives, in [0, 1].
        bg_label: the label of negatives.

    Returns:
        pos_idx, neg_idx: 1-D int64 indices into ``labels`` of the sampled positives / negatives.
    """
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    positive = ((labels != -1) & (labels != bg_label)).nonzero(as_tuple=True)[0]
    negative = (labels == bg_label).nonzero(as_tuple=True)[0]

    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)

    pos_perm = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    neg_perm = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[pos_perm], negative[neg_perm]
