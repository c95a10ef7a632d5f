"""Whether two models' detections on one image agree, detection by detection, within the parity
tolerances, and the float32 setting they are compared under."""

from contextlib import contextmanager
from typing import Dict, Iterator

import torch

from mrcnn.structures import Instances

__all__ = ["detections_agreement", "full_float32"]


@contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """Convolutions and matmuls in IEEE float32 on CUDA (no TF32), restored afterwards; a no-op
    elsewhere. TF32 rounds inputs to 10 mantissa bits, enough to move a box by more than the
    agreement tolerance, so two models are compared without it."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def detections_agreement(ours: Instances, theirs: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """How closely our Instances match torchvision's output dict for one image.

    Each of our detections is paired with the unpaired torchvision detection of the same class with
    the nearest box and score (greedy, in our order), so detections with equal scores may come in
    either order. Returns the detection counts, ``classes_equal`` (every detection paired),
    ``same_order`` (paired in the same order), the largest box and score differences over the
    pairs, the lowest mask IoU over non-empty masks, and ``agree``: all within the parity test's
    tolerances (boxes 0.01 px, scores 1e-4, mask IoU 0.99).
    """
    num_ours, num_theirs = len(ours), len(theirs["boxes"])
    report = {"num_detections": num_ours, "num_detections_torchvision": num_theirs}
    if num_ours != num_theirs:
        return {**report, "agree": False}
    ours = ours.to("cpu")
    theirs = {k: v.cpu() for k, v in theirs.items()}
    our_boxes, their_boxes = ours.pred_boxes.tensor.double(), theirs["boxes"].double()
    box_diff = (our_boxes[:, None, :] - their_boxes[None, :, :]).abs().amax(dim=2)  # (N, N)
    score_diff = (ours.scores.double()[:, None] - theirs["scores"].double()[None, :]).abs()
    same_class = (ours.pred_classes + 1)[:, None] == theirs["labels"][None, :]
    # a score difference at the tolerance (1e-4) weighs like 0.01 px; other classes never pair
    cost = torch.where(same_class, box_diff + 100 * score_diff, torch.full_like(box_diff, float("inf")))
    partner = torch.full((num_ours,), -1, dtype=torch.int64)
    for index in range(num_ours):
        best = int(cost[index].argmin())
        if torch.isfinite(cost[index, best]):
            partner[index] = best
            cost[:, best] = float("inf")
    classes_equal = bool((partner >= 0).all())
    if not classes_equal:
        return {**report, "classes_equal": False, "same_order": False, "agree": False}
    rows = torch.arange(num_ours)
    max_box = float(box_diff[rows, partner].max()) if num_ours else 0.0
    max_score = float(score_diff[rows, partner].max()) if num_ours else 0.0
    min_iou = 1.0
    if ours.has("pred_masks") and "masks" in theirs and num_ours:
        their_masks = theirs["masks"][partner, 0] >= 0.5
        our_masks = ours.pred_masks
        intersection = (their_masks & our_masks).flatten(1).sum(1).float()
        union = (their_masks | our_masks).flatten(1).sum(1).float()
        nonempty = union > 0
        if bool(nonempty.any()):
            min_iou = float((intersection[nonempty] / union[nonempty]).min())
    agree = max_box <= 0.01 and max_score <= 1e-4 and min_iou >= 0.99
    return {
        **report,
        "classes_equal": True,
        "same_order": bool(torch.equal(partner, rows)),
        "max_box_difference": max_box,
        "max_score_difference": max_score,
        "min_mask_iou": min_iou,
        "agree": agree,
    }
