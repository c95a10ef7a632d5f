"""A small batch of proposals and ground truth for the RoI-head tests: three images of other sizes
and proposal counts, the last without ground truth."""

import numpy as np
import torch

from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.roi_heads.roi_heads import sample_proposals
from mrcnn.structures import BitMasks, Boxes, Instances, PolygonMasks

NUM_CLASSES = 5


def _random_boxes(generator, count, height, width):
    xy = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.8, height * 0.8])
    wh = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.5, height * 0.5]) + 2
    return torch.cat([xy, xy + wh], dim=1)


def proposals_and_targets(mask_format):
    """Three images of other sizes and proposal counts; the last has no ground truth."""
    generator = torch.Generator().manual_seed(0)
    proposals, targets = [], []
    for num_proposals, num_gt, (height, width) in [(40, 3, (50, 60)), (25, 1, (40, 40)), (30, 0, (50, 60))]:
        gt_boxes = _random_boxes(generator, num_gt, height, width)
        # proposals scattered around the gt boxes, so that some are foreground
        around = gt_boxes[torch.randint(0, max(num_gt, 1), (num_proposals,), generator=generator)] if num_gt else None
        boxes = _random_boxes(generator, num_proposals, height, width)
        if around is not None:
            boxes[::2] = around[::2] + torch.randn(len(around[::2]), 4, generator=generator)
        proposal = Instances((height, width))
        proposal.proposal_boxes = Boxes(boxes)
        proposal.objectness_logits = torch.randn(num_proposals, generator=generator)
        proposals.append(proposal)
        target = Instances((height, width))
        target.gt_boxes = Boxes(gt_boxes)
        target.gt_classes = torch.randint(0, NUM_CLASSES, (num_gt,), generator=generator)
        polygons = PolygonMasks([[np.array([x0, y0, x1, y0, x1, y1], dtype=np.float64)] for x0, y0, x1, y1 in gt_boxes])
        target.gt_masks = polygons if mask_format == "polygon" else BitMasks.from_polygon_masks(polygons, height, width)
        targets.append(target)
    return proposals, targets


def sampled_training_rois():
    """The sampled RoIs of the three images of ``proposals_and_targets`` (16 per image, half foreground at most)."""
    proposals, targets = proposals_and_targets("polygon")
    torch.manual_seed(0)
    return sample_proposals(proposals, targets, Matcher([0.5], [0, 1]), NUM_CLASSES, 16, 0.5, True)[0]
