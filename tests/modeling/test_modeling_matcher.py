import pytest
import torch

from mrcnn.modeling.matcher import Matcher


def _iou_matrix():
    # 2 ground truths x 5 predictions.
    return torch.tensor(
        [
            [0.10, 0.50, 0.80, 0.20, 0.00],
            [0.05, 0.65, 0.30, 0.25, 0.25],
        ]
    )


def test_thresholds_give_interval_labels():
    matcher = Matcher([0.3, 0.7], [0, -1, 1])
    matches, labels = matcher(_iou_matrix())
    assert matches.dtype == torch.int64 and labels.dtype == torch.int8
    assert matches.tolist() == [0, 1, 0, 1, 1]
    # best IoUs 0.10, 0.65, 0.80, 0.25, 0.25
    assert labels.tolist() == [0, -1, 1, 0, 0]


def test_lower_bound_is_inclusive():
    matcher = Matcher([0.3, 0.7], [0, -1, 1])
    _, labels = matcher(torch.tensor([[0.3, 0.7, 0.2999]]))
    assert labels.tolist() == [-1, 1, 0]


def test_low_quality_matches_promote_best_prediction_per_gt():
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    matches, labels = matcher(_iou_matrix())
    # gt 0 is best reached by prediction 2 (already positive); gt 1 by prediction 1 (0.65).
    assert labels.tolist() == [0, 1, 1, 0, 0]
    assert matches.tolist() == [0, 1, 0, 1, 1]


def test_low_quality_matches_include_ties_and_keep_argmax_match():
    iou = torch.tensor(
        [
            [0.40, 0.40, 0.10, 0.60],
            [0.20, 0.20, 0.50, 0.00],
        ]
    )
    matcher = Matcher([0.5, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    matches, labels = matcher(iou)
    # gt 0's best is 0.60 (prediction 3); gt 1's best 0.50 (prediction 2).
    assert labels.tolist() == [0, 0, 1, 1]
    assert matches.tolist() == [0, 0, 1, 0]
    tie = torch.tensor([[0.2, 0.2, 0.1], [0.0, 0.0, 0.05]])
    _, labels = matcher(tie)
    assert labels.tolist() == [1, 1, 1]


def test_gt_without_overlap_does_not_promote_everything():
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    iou = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.8, 0.0]])
    _, labels = matcher(iou)
    assert labels.tolist() == [0, 1, 0]


def test_empty_ground_truth_is_all_negative():
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    matches, labels = matcher(torch.zeros(0, 6))
    assert matches.tolist() == [0] * 6
    assert labels.tolist() == [0] * 6
    assert labels.dtype == torch.int8


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.3, 0.7], [0, 1])
    with pytest.raises(ValueError, match="increasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        Matcher([0.5], [0, 2])


def test_batch_of_images_with_missing_ground_truth_rows():
    """(B, G, N) with -1 rows where an image has fewer ground truths: each image matched as alone,
    an image with no real row as one without ground truth; int8 labels."""
    generator = torch.Generator().manual_seed(0)
    first = (torch.rand(3, 40, generator=generator) * 10).round() / 10  # ties included
    second = (torch.rand(1, 40, generator=generator) * 10).round() / 10
    missing = torch.full((2, 40), -1.0)
    batch = torch.stack([first, torch.cat([second, missing]), torch.full((3, 40), -1.0)])
    for matcher in [
        Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        Matcher([0.5], [0, 1]),
        Matcher([0.4, 0.6], [-1, 0, 1]),
    ]:
        matches, labels = matcher(batch)
        assert labels.dtype == torch.int8 and matches.shape == labels.shape == (3, 40)
        for index, alone in enumerate([first, second, torch.zeros(0, 40)]):
            expected_matches, expected_labels = matcher(alone)
            assert torch.equal(matches[index], expected_matches)
            assert torch.equal(labels[index], expected_labels)
