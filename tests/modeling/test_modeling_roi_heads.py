"""The training RoIs of the RoI heads: all images matched and sampled at once, as one by one."""

import pytest
import torch
from training_rois import NUM_CLASSES, proposals_and_targets

from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.roi_heads.roi_heads import sample_proposals
from mrcnn.modeling.sampling import subsample_labels
from mrcnn.structures import Boxes, Instances, PolygonMasks, pairwise_iou


def _reference_sample(proposals, targets, matcher, batch_size, fraction, append_gt):
    """The RoIs one image at a time: append gt boxes, match, label, sample, index every field."""
    sampled = []
    for proposal, target in zip(proposals, targets):
        if append_gt and len(target) > 0:
            appended = Instances(proposal.image_size)
            appended.proposal_boxes = target.gt_boxes
            appended.objectness_logits = torch.full((len(target),), 10.0)
            proposal = Instances.cat([proposal, appended])
        matches, labels = matcher(pairwise_iou(target.gt_boxes, proposal.proposal_boxes))
        if len(target) > 0:
            classes = target.gt_classes[matches]
            classes[labels == 0] = NUM_CLASSES
            classes[labels == -1] = -1
        else:
            classes = torch.full_like(matches, NUM_CLASSES)
        foreground, background = subsample_labels(classes, batch_size, fraction, NUM_CLASSES)
        index = torch.cat([foreground, background])
        per_image = proposal[index]
        per_image.gt_classes = classes[index]
        if len(target) > 0:
            for name, value in target.get_fields().items():
                if not per_image.has(name):
                    per_image.set(name, value[matches[index]])
        else:
            per_image.gt_boxes = Boxes(torch.zeros(len(index), 4))
        sampled.append((per_image, len(foreground)))
    return sampled


def _mask_values(masks):
    return masks.polygons if isinstance(masks, PolygonMasks) else masks.tensor


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
@pytest.mark.parametrize(
    "matcher, append_gt",
    [(Matcher([0.5], [0, 1]), True), (Matcher([0.3, 0.5], [-1, 0, 1]), True), (Matcher([0.5], [0, 1]), False)],
)
def test_sampled_rois_equal_sampling_image_by_image(mask_format, matcher, append_gt):
    """All images matched at once (padded) sample, for one seed, the RoIs, labels and matched ground
    truth (masks included) of matching and sampling one image at a time, foreground first."""
    proposals, targets = proposals_and_targets(mask_format)
    torch.manual_seed(4)
    expected = _reference_sample(proposals, targets, matcher, 16, 0.25, append_gt)
    torch.manual_seed(4)
    sampled, num_foreground = sample_proposals(proposals, targets, matcher, NUM_CLASSES, 16, 0.25, append_gt)
    assert num_foreground == [count for _, count in expected]
    assert sum(num_foreground) > 2
    for ours, (theirs, count) in zip(sampled, expected):
        assert list(ours.get_fields()) == list(theirs.get_fields())
        assert ours.image_size == theirs.image_size
        for name in ("proposal_boxes", "gt_boxes"):
            assert torch.equal(ours.get(name).tensor, theirs.get(name).tensor), name
        for name in ("objectness_logits", "gt_classes"):
            assert torch.equal(ours.get(name), theirs.get(name)), name
        assert (ours.gt_classes[:count] < NUM_CLASSES).all() and (ours.gt_classes[count:] == NUM_CLASSES).all()
        if ours.has("gt_masks"):
            ours_masks, their_masks = _mask_values(ours.gt_masks), _mask_values(theirs.gt_masks)
            if isinstance(ours_masks, torch.Tensor):
                assert torch.equal(ours_masks, their_masks)
            else:
                assert [id(polygons) for polygons in ours_masks] == [id(polygons) for polygons in their_masks]
    assert not sampled[2].has("gt_masks")  # the image without ground truth


def test_proposals_with_another_field_cannot_take_appended_gt_boxes():
    proposals, targets = proposals_and_targets("polygon")
    for proposal in proposals:
        proposal.anchor_ids = torch.arange(len(proposal))
    with pytest.raises(KeyError, match="anchor_ids"):
        sample_proposals(proposals, targets, Matcher([0.5], [0, 1]), NUM_CLASSES, 16, 0.25, True)
    sampled, _ = sample_proposals(proposals, targets, Matcher([0.5], [0, 1]), NUM_CLASSES, 16, 0.25, False)
    for ours, proposal in zip(sampled, proposals):
        rows = [proposal.proposal_boxes.tensor.tolist().index(box) for box in ours.proposal_boxes.tensor.tolist()]
        assert ours.anchor_ids.tolist() == rows
