"""Assigns each prediction (anchor or proposal) to its best ground-truth box by IoU thresholds."""

import math
from typing import List, Tuple

import torch

__all__ = ["Matcher"]


class Matcher:
    """Match every prediction to at most one ground-truth element and label the match.

    ``thresholds`` split the quality range into intervals and ``labels`` give one label per
    interval: with thresholds ``[0.3, 0.7]`` and labels ``[0, -1, 1]`` a prediction whose best
    IoU is below 0.3 is negative (0), in [0.3, 0.7) ignored (-1) and at least 0.7 positive (1).
    An interval includes its lower bound and excludes its upper bound.
    """

    def __init__(
        self,
        thresholds: List[float],
        labels: List[int],
        allow_low_quality_matches: bool = False,
    ):
        """
        Args:
            thresholds: increasing quality thresholds, all >= 0.
            labels: ``len(thresholds) + 1`` labels, each one of -1 (ignore), 0 (negative),
                1 (positive).
            allow_low_quality_matches: also make positive, for every ground truth, the
                predictions that reach that ground truth's highest quality (ties included),
                so that every ground truth gets at least one positive even below the top
                threshold. Used by the RPN.
        """
        thresholds = [float(t) for t in thresholds]
        if len(thresholds) == 0 or thresholds[0] < 0:
            raise ValueError(f"Matcher thresholds must be non-empty and >= 0, got {thresholds}")
        if any(low > high for low, high in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds}")
        labels = [int(label) for label in labels]
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"Matcher needs len(labels) == len(thresholds) + 1, got {len(labels)} labels "
                f"for {len(thresholds)} thresholds"
            )
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must each be -1, 0 or 1, got {labels}")
        self.thresholds = [-math.inf] + thresholds + [math.inf]
        self.labels = labels
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Match predictions to ground truth, for one image or a batch of images.

        Args:
            match_quality_matrix: (G, N) quality (e.g. IoU) of G ground-truth elements
                against N predictions, or (B, G, N) for B images at once, where an image with
                fewer ground truths fills the missing rows with a negative quality (-1): such a
                row never matches and an image with only such rows is matched as one without
                ground truth.

        Returns:
            matches: (N,) or (B, N) int64 index of the best ground truth of each prediction
                (0 when an image has no ground truth).
            match_labels: (N,) or (B, N) int8 label of each prediction (-1 ignore, 0 negative,
                1 positive).
        """
        if match_quality_matrix.dim() not in (2, 3):
            raise ValueError(
                f"match_quality_matrix must be (G, N) or (B, G, N), got shape {tuple(match_quality_matrix.shape)}"
            )
        num_gt, num_predictions = match_quality_matrix.shape[-2:]
        device = match_quality_matrix.device
        if num_gt == 0 or num_predictions == 0:
            # No ground truth: every prediction falls in the lowest interval (negative with
            # the usual labels), which is what makes background-only images train the RPN.
            shape = match_quality_matrix.shape[:-2] + (num_predictions,)
            matches = torch.zeros(shape, dtype=torch.int64, device=device)
            match_labels = torch.full(shape, self.labels[0], dtype=torch.int8, device=device)
            return matches, match_labels

        matched_vals, matches = match_quality_matrix.max(dim=-2)
        # Each interval [low, high) gets its label, set with torch.where rather than through
        # boolean masks so that no count of predictions has to reach the host: the first label
        # below the first threshold (a missing ground truth's -1 included), then, threshold by
        # threshold upwards, the label from there on where it changes. A NaN quality, in no
        # interval, keeps 0; qualities are finite (IoUs).
        match_labels = torch.zeros_like(matches, dtype=torch.int8)
        thresholds = self.thresholds[1:-1]
        if self.labels[0] != 0:
            match_labels = torch.where(matched_vals < thresholds[0], self.labels[0], match_labels)
        label_from_here = 0
        for label, low in zip(self.labels[1:], thresholds):
            if label != label_from_here:
                match_labels = torch.where(matched_vals >= low, label, match_labels)
                label_from_here = label

        if self.allow_low_quality_matches:
            match_labels = self._set_low_quality_matches(match_labels, match_quality_matrix)
        return matches, match_labels

    @staticmethod
    def _set_low_quality_matches(match_labels: torch.Tensor, match_quality_matrix: torch.Tensor) -> torch.Tensor:
        """``match_labels`` with every prediction that reaches some ground truth's best quality positive.

        The prediction keeps its own best ground truth as its match (the argmax), as in
        Faster R-CNN. A ground truth that overlaps nothing (best quality 0, or the negative
        quality of a missing one) is skipped: otherwise every prediction with zero overlap
        would become positive.
        """
        highest_quality_foreach_gt = match_quality_matrix.max(dim=-1, keepdim=True).values
        reaches_best = (match_quality_matrix == highest_quality_foreach_gt) & (highest_quality_foreach_gt > 0)
        return torch.where(reaches_best.any(dim=-2), 1, match_labels)
