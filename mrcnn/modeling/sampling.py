"""Random, fraction-controlled sampling of positive and negative labels."""

from typing import List, Tuple

import torch

__all__ = ["subsample_labels", "subsample_labels_batched"]


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
    sampled, num_positive, _ = subsample_labels_batched(labels[None], num_samples, positive_fraction, bg_label)
    return sampled[: num_positive[0]], sampled[num_positive[0] :]


def subsample_labels_batched(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> Tuple[torch.Tensor, List[int], List[int]]:
    """``subsample_labels`` on every row of ``labels`` (B, R) at once, with the same random draws.

    Each row is sampled as ``subsample_labels`` samples it, and the rows draw their permutations in
    order (positives, then negatives, row by row), so a seeded run samples exactly what the
    per-row calls would. A row shorter than R pads its end with -1 (ignored). The positive and
    negative counts cross to the host once for the whole batch: ``torch.randperm`` needs them.

    Returns:
        sampled: (S,) int64 indices into ``labels.flatten()``, row by row, each row's sampled
            positives (in their random order) before its negatives.
        num_positive, num_negative: per row, how many of each were sampled.
    """
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    if labels.dim() != 2:
        raise ValueError(f"subsample_labels_batched expects (B, R) labels, got shape {tuple(labels.shape)}")
    positive = (labels != -1) & (labels != bg_label)
    negative = labels == bg_label
    kinds = torch.stack((positive, negative))  # (2, B, R)
    positive_counts, negative_counts = kinds.sum(dim=2).tolist()
    total_positive = sum(positive_counts)
    # positions in (2, B, R): every row's positives, row by row in ascending order, then the negatives
    positions = torch.nonzero_static(kinds.flatten(), size=total_positive + sum(negative_counts)).flatten()

    num_positive, num_negative, chosen = [], [], []
    positive_start, negative_start = 0, total_positive
    device = labels.device
    for count_positive, count_negative in zip(positive_counts, negative_counts):
        take_positive = min(count_positive, int(num_samples * positive_fraction))
        take_negative = min(count_negative, num_samples - take_positive)
        positive_draw = torch.randperm(count_positive, device=device)[:take_positive]
        chosen.append(positive_draw + positive_start if positive_start else positive_draw)
        chosen.append(torch.randperm(count_negative, device=device)[:take_negative] + negative_start)
        num_positive.append(take_positive)
        num_negative.append(take_negative)
        positive_start += count_positive
        negative_start += count_negative
    sampled = positions[torch.cat(chosen)].remainder(labels.numel())
    return sampled, num_positive, num_negative
