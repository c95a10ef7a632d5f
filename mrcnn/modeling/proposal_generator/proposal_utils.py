"""Selecting the final RPN proposals of each image: top-k per level, clip, filter, NMS."""

import functools
import itertools
from typing import List, Sequence, Tuple

import torch

from mrcnn.layers import nms
from mrcnn.structures import Boxes, Instances

from ..cached_tensors import cached_tensor

__all__ = ["PROPOSAL_RANKINGS", "find_top_rpn_proposals", "proposal_scores", "select_rpn_proposals"]

# what NMS and the post-NMS top-k rank proposals by (see find_top_rpn_proposals)
PROPOSAL_RANKINGS = ("logit", "probability")

# torchvision's batched_nms runs one NMS per level above this many box coordinates (CPU, other
# devices) and one NMS over level-shifted boxes below; the two differ in float rounding and in
# the order of equal scores, so the proposals follow the same rule to stay torchvision's
_PER_LEVEL_NMS_ABOVE = {"cpu": 4000}
_PER_LEVEL_NMS_ABOVE_OTHER_DEVICES = 100_000


@functools.lru_cache(maxsize=64)
def _level_ids(level_sizes: Tuple[int, ...], device: torch.device) -> torch.Tensor:
    """(sum(level_sizes),) float32 level index of each candidate, levels in order (cached: constant
    for a given image size; made outside inference mode, see cached_tensors)."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.cat([torch.full((size,), float(level), device=device) for level, size in enumerate(level_sizes)])


def _level_ends(level_sizes: Tuple[int, ...], device: torch.device) -> torch.Tensor:
    """(L,) int64 index of the last candidate of each level."""
    return cached_tensor(tuple(itertools.accumulate(level_sizes, initial=-1))[1:], torch.int64, device)


def proposal_scores(logits: torch.Tensor, ranking: str) -> torch.Tensor:
    """The scores (R,) that rank proposals: the logits themselves, or their sigmoid in at least
    float32 ("probability"), where every logit above about 17 becomes exactly 1.0."""
    if ranking == "logit":
        return logits
    if ranking == "probability":
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        return logits.sigmoid()
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
    equal probabilities are ordered as torchvision's ``batched_nms`` orders them: in their
    order in the candidate list (each level's boxes in descending logit order, levels in
    order) when one NMS runs over level-shifted boxes, as it does for up to 1000 candidates of
    an image on the CPU (25000 on a GPU); by the order its final sort of the kept scores gives
    them when it runs one NMS per level. A level handed over already in descending order (the
    RPN's top-k) keeps its order.

    Args:
        proposals: per level, (N, Hi*Wi*A, 4) decoded boxes.
        pred_objectness_logits: per level, (N, Hi*Wi*A) logits.
        image_sizes: N (height, width) of the unpadded images.
        nms_thresh: IoU threshold of the per-level NMS.
        pre_nms_topk: boxes kept per level before NMS.
        post_nms_topk: boxes kept per image after NMS.
        min_box_size: smallest width / height kept, in input pixels (see ``select_rpn_proposals``).
        training: whether non-finite predictions must raise (they mean training diverged).
        ranking: "logit" or "probability", see above.

    Returns:
        N Instances with ``proposal_boxes`` (Boxes) and ``objectness_logits``, best first.
    """
    num_images = len(image_sizes)
    batch_index = torch.arange(num_images, device=proposals[0].device)[:, None]

    topk_proposals, topk_logits = [], []
    for level_proposals, level_logits in zip(proposals, pred_objectness_logits):
        num_kept = min(pre_nms_topk, level_logits.shape[1])
        if num_kept == level_logits.shape[1] and (ranking == "logit" or _is_descending(level_logits)):
            # every box is kept: ranked by logit the order does not matter, NMS sorts by score;
            # ranked by probability the order breaks ties, and a level in descending order is
            # what top-k would give
            topk_proposals.append(level_proposals)
            topk_logits.append(level_logits)
        else:
            level_topk_logits, topk_index = level_logits.topk(num_kept, dim=1)
            topk_proposals.append(level_proposals[batch_index, topk_index])
            topk_logits.append(level_topk_logits)
    return select_rpn_proposals(
        torch.cat(topk_proposals, dim=1),
        torch.cat(topk_logits, dim=1),
        [logits.shape[1] for logits in topk_logits],
        image_sizes,
        nms_thresh,
        post_nms_topk,
        min_box_size,
        training,
        ranking,
    )


def select_rpn_proposals(
    boxes: torch.Tensor,
    logits: torch.Tensor,
    level_sizes: Sequence[int],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
    ranking: str = "logit",
) -> List[Instances]:
    """The proposals of each image from its pre-NMS candidates: without non-finite ones, clipped
    to the image, without boxes smaller than ``min_box_size`` (0: without empty boxes), NMS within
    each level, the ``post_nms_topk`` best (see ``find_top_rpn_proposals``).

    The whole batch is clipped and filtered at once, and how many candidates of each image and
    level survive crosses to the host once (NMS needs it); each image then runs the NMS that
    torchvision's ``batched_nms`` runs on its candidates.

    Args:
        boxes: (N, C, 4) decoded candidate boxes of every image, level after level.
        logits: (N, C) their objectness logits.
        level_sizes: candidates per level, summing to C.
        image_sizes: N (height, width) of the unpadded images.
        nms_thresh, post_nms_topk, min_box_size, training, ranking: see ``find_top_rpn_proposals``.
    """
    if ranking not in PROPOSAL_RANKINGS:
        raise ValueError(f"Unknown proposal ranking {ranking!r}; valid: {list(PROPOSAL_RANKINGS)}")
    level_sizes = tuple(int(size) for size in level_sizes)
    num_images, num_candidates = logits.shape
    device = boxes.device

    finite = torch.isfinite(boxes).all(dim=2) & torch.isfinite(logits)
    boxes = _clip_to_images(boxes, image_sizes)
    sizes = boxes[..., 2:] - boxes[..., :2]
    # with min_box_size 0 only boxes of positive width and height: a zero-size box has no IoU
    # with anything and only wastes a slot after NMS
    large_enough = (sizes >= min_box_size) if min_box_size > 0 else (sizes > 0)
    valid = large_enough.all(dim=2) & finite

    # candidates kept per image and level (and, in training, the finite ones), as running counts
    counted = torch.stack((valid, finite)) if training else valid[None]
    running_counts = counted.cumsum(dim=2)[..., _level_ends(level_sizes, device)].tolist()
    if training and any(counts[-1] != num_candidates for counts in running_counts[1]):
        raise FloatingPointError("RPN predicted non-finite proposal boxes or objectness logits: training has diverged")
    kept_per_level = [[end - start for start, end in zip([0] + counts[:-1], counts)] for counts in running_counts[0]]
    kept_per_image = [counts[-1] for counts in running_counts[0]]

    level_ids = None
    if sum(kept_per_image) == num_images * num_candidates:
        boxes, logits = boxes.flatten(0, 1), logits.flatten()
        if any(_shifted_boxes_nms(4 * kept, device) for kept in kept_per_image):
            level_ids = _level_ids(level_sizes, device).repeat(num_images)
    else:
        image_index, candidate_index = torch.nonzero_static(valid, size=sum(kept_per_image)).unbind(1)
        boxes, logits = boxes[image_index, candidate_index], logits[image_index, candidate_index]
        if any(_shifted_boxes_nms(4 * kept, device) for kept in kept_per_image):
            level_ids = _level_ids(level_sizes, device)[candidate_index]
    # NMS compares float32 boxes and scores, as torchvision's batched_nms casts them
    scores = _as_float32(proposal_scores(logits, ranking))
    nms_boxes = _as_float32(boxes)

    # per image; a tensor that is another's (float32 already) is not split twice
    boxes_per_image, logits_per_image = boxes.split(kept_per_image), logits.split(kept_per_image)
    nms_boxes_per_image = boxes_per_image if nms_boxes is boxes else nms_boxes.split(kept_per_image)
    scores_per_image = logits_per_image if scores is logits else scores.split(kept_per_image)
    level_ids_per_image = [None] * num_images if level_ids is None else level_ids.split(kept_per_image)

    results = []
    for image_size, per_level, image_boxes, image_nms_boxes, image_scores, image_logits, image_level_ids in zip(
        image_sizes,
        kept_per_level,
        boxes_per_image,
        nms_boxes_per_image,
        scores_per_image,
        logits_per_image,
        level_ids_per_image,
    ):
        if len(image_boxes) == 0:
            keep = torch.empty(0, dtype=torch.int64, device=device)
        elif _shifted_boxes_nms(image_boxes.numel(), device):
            keep = _nms_of_shifted_levels(image_nms_boxes, image_scores, image_level_ids, nms_thresh)
        else:
            keep = _nms_per_level(image_nms_boxes, image_scores, per_level, nms_thresh)
        if len(keep) > post_nms_topk:
            keep = keep[:post_nms_topk]
        result = Instances(image_size)
        result.proposal_boxes = Boxes(image_boxes[keep])
        result.objectness_logits = image_logits[keep]
        results.append(result)
    return results


def _as_float32(values: torch.Tensor) -> torch.Tensor:
    return values if values.dtype == torch.float32 else values.float()


def _clip_to_images(boxes: torch.Tensor, image_sizes: List[Tuple[int, int]]) -> torch.Tensor:
    """Clamp XYXY boxes (N, C, 4) into their images: x into [0, width], y into [0, height]."""
    limits = tuple(((width, height, width, height),) for height, width in image_sizes)  # (N, 1, 4)
    return boxes.clamp(min=0).minimum(cached_tensor(limits, boxes.dtype, boxes.device))


def _shifted_boxes_nms(num_coordinates: int, device: torch.device) -> bool:
    """Whether torchvision's batched_nms would take its one-NMS path for this many coordinates."""
    threshold = _PER_LEVEL_NMS_ABOVE.get(device.type, _PER_LEVEL_NMS_ABOVE_OTHER_DEVICES)
    return num_coordinates <= threshold or torch.jit.is_tracing()


def _nms_of_shifted_levels(
    boxes: torch.Tensor, scores: torch.Tensor, level_ids: torch.Tensor, nms_thresh: float
) -> torch.Tensor:
    """One NMS over boxes (K, 4) shifted level by level far enough apart not to overlap: indices
    kept, by decreasing score (equal scores in candidate order)."""
    offsets = level_ids * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, nms_thresh)


def _nms_per_level(
    boxes: torch.Tensor, scores: torch.Tensor, level_counts: List[int], nms_thresh: float
) -> torch.Tensor:
    """One NMS per level over boxes (K, 4) sorted by level with ``level_counts`` per level: the
    kept indices, in ascending order sorted by decreasing score (the sort torchvision applies)."""
    kept, start = [], 0
    for level_boxes, level_scores, count in zip(boxes.split(level_counts), scores.split(level_counts), level_counts):
        if count > 0:
            level_kept = nms(level_boxes, level_scores, nms_thresh)
            kept.append(level_kept + start if start else level_kept)
        start += count
    kept = torch.cat(kept).sort().values
    return kept[scores[kept].sort(descending=True).indices]
