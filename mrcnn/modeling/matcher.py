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
        """Match predictions to ground truth.

        Args:
            match_quality_matrix: (G, N) quality (e.g. IoU) of G ground-truth elements
                against N predictions.

        Returns:
            matches: (N,) int64 index of the best ground truth of each prediction (0 when G == 0).
            match_labels: (N,) int8 label of each prediction (-1 ignore, 0 negative, 1 positive).
        """
        if match_quality_matrix.dim() != 2:
            raise ValueError(f"match_quality_matrix must be (G, N), got shape {tuple(match_quality_matrix.shape)}")
        num_predictions = match_quality_matrix.shape[1]
        device = match_quality_matrix.device
        if match_quality_matrix.shape[0] == 0 or num_predictions == 0:
            # No ground truth: every prediction falls in the lowest interval (negative with
            # the usual labels), which is what makes background-only images train the RPN.
            matches = torch.zeros(num_predictions, dtype=torch.int64, device=device)
            match_labels = torch.full((num_predictions,), self.labels[0], dtype=torch.int8, device=device)
            return matches, match_labels

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = torch.zeros(num_predictions, dtype=torch.int8, device=device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_interval = (matched_vals >= low) & (matched_vals < high)
            match_labels[in_interval] = label

        if self.allow_low_quality_matches:
            self._set_low_quality_matches(match_labels, match_quality_matrix)
        return matches, match_labels

    @staticmethod
    def _set_low_quality_matches(match_labels: torch.Tensor, match_quality_matrix: torch.Tensor) -> None:
        """Label positive every prediction that reaches some ground truth's best quality.

        The prediction keeps its own best ground truth as its match (the argmax), as in
        Faster R-CNN. A ground truth that overlaps nothing (best quality 0) is skipped:
        otherwise every prediction with zero overlap would become positive.
        """
        highest_quality_foreach_gt = match_quality_matrix.max(dim=1).values
        reaches_best = match_quality_matrix == highest_quality_foreach_gt[:, None]
        reaches_best &= highest_quality_foreach_gt[:, None] > 0
        pred_inds = reaches_best.any(dim=0).nonzero(as_tuple=True)[0]
        match_labels[pred_inds] = 1
