"""detections_agreement: pairs detections one to one regardless of the order of equal scores,
and says no when a box, score, class or mask differs beyond the parity tolerances."""

import torch

from mrcnn.benchmark import detections_agreement
from mrcnn.structures import Boxes, Instances


def _detections(num: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x0y0 = torch.rand(num, 2, generator=generator) * 80
    boxes = torch.cat([x0y0, x0y0 + 10 + torch.rand(num, 2, generator=generator) * 20], dim=1)
    scores = torch.tensor([0.9, 0.8, 0.8, 0.8, 0.5, 0.3])[:num]  # three equal scores
    classes = torch.tensor([3, 1, 2, 1, 0, 3])[:num]
    masks = torch.zeros(num, 1, 120, 120)
    for i, (a, b, c, d) in enumerate(boxes.round().long().tolist()):
        masks[i, 0, b:d, a:c] = 0.9
    ours = Instances((120, 120))
    ours.pred_boxes = Boxes(boxes.clone())
    ours.scores = scores.clone()
    ours.pred_classes = classes.clone()
    ours.pred_masks = masks[:, 0] >= 0.5
    theirs = {"boxes": boxes.clone(), "scores": scores.clone(), "labels": classes + 1, "masks": masks}
    return ours, theirs


def test_identical_detections_agree_in_order():
    ours, theirs = _detections()
    report = detections_agreement(ours, theirs)
    assert report["agree"] and report["classes_equal"] and report["same_order"]
    assert report["max_box_difference"] == 0 and report["max_score_difference"] == 0
    assert report["min_mask_iou"] == 1.0


def test_equal_scores_in_another_order_still_agree():
    ours, theirs = _detections()
    order = torch.tensor([0, 3, 2, 1, 4, 5])  # the tied detections 1..3 reordered
    theirs = {k: v[order] for k, v in theirs.items()}
    theirs["boxes"] = theirs["boxes"] + 0.004  # within the 0.01 px tolerance
    report = detections_agreement(ours, theirs)
    assert report["agree"] and not report["same_order"]
    assert abs(report["max_box_difference"] - 0.004) < 1e-5
    assert report["min_mask_iou"] == 1.0


def test_a_moved_box_a_changed_class_or_a_missing_detection_disagree():
    ours, theirs = _detections()
    moved = dict(theirs, boxes=theirs["boxes"].clone())
    moved["boxes"][4, 2] += 0.5
    report = detections_agreement(ours, moved)
    assert not report["agree"] and abs(report["max_box_difference"] - 0.5) < 1e-5

    relabelled = dict(theirs, labels=theirs["labels"].clone())
    relabelled["labels"][4] = 9
    report = detections_agreement(ours, relabelled)
    assert not report["agree"] and not report["classes_equal"]

    fewer = {k: v[:5] for k, v in theirs.items()}
    report = detections_agreement(ours, fewer)
    assert not report["agree"] and report["num_detections_torchvision"] == 5


def test_a_different_mask_disagrees():
    ours, theirs = _detections()
    theirs["masks"] = theirs["masks"].clone()
    theirs["masks"][2] = 0.0
    report = detections_agreement(ours, theirs)
    assert not report["agree"] and report["min_mask_iou"] == 0.0
