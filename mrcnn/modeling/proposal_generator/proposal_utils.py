"""Selecting the final RPN proposals of each image: top-k per level, clip, filter, NMS."""

from typing import List, Tuple

import torch

from mrcnn.layers import batched_nms
from mrcnn.structures import Boxes, Instances

__all__ = ["PROPOSAL_RANKINGS", "find_top_rpn_proposals", "proposal_scores"]

# what NMS and the post-NMS top-k rank proposals by (see find_top_rpn_proposals)
PROPOSAL_RANKINGS = ("logit", "probability")


def _clip_to_image(boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """Clamp XYXY boxes (R, 4) into an image of size (height, width)."""
    height, width = image_size
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def _large_enough(boxes: torch.Tensor, min_box_size: float) -> torch.Tensor:
    """(R,) bool mask of boxes whose width and height are both at least ``min_box_size``.

    With ``min_box_size`` 0 the mask keeps only boxes of positive width and height:
    a zero-size box has no IoU with anything and only wastes a slot after NMS.
    """
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    if min_box_size > 0:
        return (widths >= min_box_size) & (heights >= min_box_size)
    return (widths > 0) & (heights > 0)


def proposal_scores(logits: torch.Tensor, ranking: str) -> torch.Tensor:
    """The scores (R,) that rank proposals: the logits themselves, or their sigmoid in at least
    float32 ("probability"), where every logit above about 17 becomes exactly 1.0."""
    if ranking == "logit":
        return logits
    if ranking == "probability":
        return logits.to(torch.promote_types(logits.dtype, torch.float32)).sigmoid()
    raise ValueError(f"Unknown proposal ranking {ranking!r}; valid: {list(PROPOSAL_RANKINGS)}")


def _is_descending(values: torch.Tensor) -> bool:
    """Whether every row of (N, R) ``values`` is non-increasing."""
    return bool((values[:, :-1] >= values[:, 1:]).all())


def find_top_rpn_proposals(
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
    ranking: str = "logit",
) -> List[Instances]:
    """Pick the proposals of each image from dense per-level predictions.

    Per image: the ``pre_nms_topk`` highest-scoring boxes of every level, with non-finite
    ones dropped, clipped to the image, without boxes smaller than ``min_box_size``, then
    NMS within each level and the ``post_nms_topk`` best overall.

    ``ranking`` "logit" (detectron2) ranks by the logits. "probability" (torchvision) ranks
    NMS and the final top-k by the float32 sigmoid: logits above about 17 all give 1.0, and
    equal probabilities keep their order in the candidate list (NMS sorts stably), which is
    each level's boxes in descending logit order, levels in order. A level handed over
    already in descending order (the RPN's top-k) keeps its order.

    Args:
        proposals: per level, (N, Hi*Wi*A, 4) decoded boxes.
        pred_objectness_logits: per level, (N, Hi*Wi*A) logits.
        image_sizes: N (height, width) of the unpadded images.
        nms_thresh: IoU threshold of the per-level NMS.
        pre_nms_topk: boxes kept per level before NMS.
        post_nms_topk: boxes kept per image after NMS.
        min_box_size: smallest width / height kept, in input pixels (see ``_large_enough``).
        training: whether non-finite predictions must raise (they mean training diverged).
        ranking: "logit" or "probability", see above.

    Returns:
        N Instances with ``proposal_boxes`` (Boxes) and ``objectness_logits``, best first.
    """
    if ranking not in PROPOSAL_RANKINGS:
        raise ValueError(f"Unknown proposal ranking {ranking!r}; valid: {list(PROPOSAL_RANKINGS)}")
    num_images = len(image_sizes)
    device = proposals[0].device
    batch_index = torch.arange(num_images, device=device)[:, None]

    topk_proposals, topk_logits, level_ids = [], [], []
    for level, (level_proposals, level_logits) in enumerate(zip(proposals, pred_objectness_logits)):
        num_kept = min(pre_nms_topk, level_logits.shape[1])
        if num_kept == level_logits.shape[1] and (ranking == "logit" or _is_descending(level_logits)):
            # every box is kept (the RPN hands over levels already cut to pre_nms_topk): ranked
            # by logit the order does not matter, NMS sorts by score; ranked by probability the
            # order breaks ties, and a level in descending order is what top-k would give
            topk_proposals.append(level_proposals)
            topk_logits.append(level_logits)
        else:
            level_topk_logits, topk_index = level_logits.topk(num_kept, dim=1)
            topk_proposals.append(level_proposals[batch_index, topk_index])
            topk_logits.append(level_topk_logits)
        level_ids.append(torch.full((num_kept,), level, dtype=torch.int64, device=device))
    topk_proposals = torch.cat(topk_proposals, dim=1)
    topk_logits = torch.cat(topk_logits, dim=1)
    level_ids = torch.cat(level_ids, dim=0)

    results = []
    for image_index, image_size in enumerate(image_sizes):
        boxes = topk_proposals[image_index]
        logits = topk_logits[image_index]
        levels = level_ids

        finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(logits)
        if not bool(finite.all()):
            if training:
                raise FloatingPointError(
                    "RPN predicted non-finite proposal boxes or objectness logits: training has diverged"
                )
            boxes, logits, levels = boxes[finite], logits[finite], levels[finite]

        boxes = _clip_to_image(boxes, image_size)
        keep = _large_enough(boxes, min_box_size)
        if not bool(keep.all()):
            boxes, logits, levels = boxes[keep], logits[keep], levels[keep]

        keep = batched_nms(boxes, proposal_scores(logits, ranking), levels, nms_thresh)[:post_nms_topk]
        result = Instances(image_size)
        result.proposal_boxes = Boxes(boxes[keep])
        result.objectness_logits = logits[keep]
        results.append(result)
    return results
