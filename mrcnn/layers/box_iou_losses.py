"""GIoU, DIoU and CIoU losses of paired boxes, without a host synchronisation.

torchvision.ops' losses (and fvcore's ``giou_loss``, which detectron2 uses) set the intersection
of the box pairs that overlap through boolean-mask indexing: five ``nonzero`` calls in the forward
pass and five in the backward pass of every call, each a wait for the device on a GPU. These
losses select with ``torch.where`` instead and give the same values and gradients (tested against
torchvision's).

All take boxes1, boxes2 (N, 4) as (x1, y1, x2, y2), pair i with pair i, and return the loss per
pair (N,) for ``reduction="none"``, or its "sum" or "mean" (0 with a gradient for N = 0).
"""

import math
from typing import Tuple

import torch

__all__ = ["ciou_loss", "diou_loss", "giou_loss", "paired_intersection_and_union"]


def _as_float(boxes: torch.Tensor) -> torch.Tensor:
    return boxes if boxes.is_floating_point() else boxes.float()


def paired_intersection_and_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas (N,) of box pairs (N, 4); a pair that does not overlap
    intersects in 0 (and passes no gradient through its intersection)."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    left, top = torch.max(x1, x1g), torch.max(y1, y1g)
    right, bottom = torch.min(x2, x2g), torch.min(y2, y2g)
    overlaps = (bottom > top) & (right > left)
    intersection = torch.where(overlaps, (right - left) * (bottom - top), torch.zeros_like(x1))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intersection
    return intersection, union


def _enclosing_box(boxes1: torch.Tensor, boxes2: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """(x1, y1, x2, y2) of the smallest box enclosing each pair, each (N,)."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    return torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum'; got {reduction!r}")


def giou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7) -> torch.Tensor:
    """1 - GIoU: 1 - IoU plus the share of the enclosing box that neither box covers."""
    boxes1, boxes2 = _as_float(boxes1), _as_float(boxes2)
    intersection, union = paired_intersection_and_union(boxes1, boxes2)
    iou = intersection / (union + eps)
    left, top, right, bottom = _enclosing_box(boxes1, boxes2)
    enclosing_area = (right - left) * (bottom - top)
    giou = iou - ((enclosing_area - union) / (enclosing_area + eps))
    return _reduce(1 - giou, reduction)


def _diou_loss_and_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    intersection, union = paired_intersection_and_union(boxes1, boxes2)
    iou = intersection / (union + eps)
    left, top, right, bottom = _enclosing_box(boxes1, boxes2)
    diagonal_squared = ((right - left) ** 2) + ((bottom - top) ** 2) + eps
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    centre_x, centre_y = (x2 + x1) / 2, (y2 + y1) / 2
    centre_xg, centre_yg = (x1g + x2g) / 2, (y1g + y2g) / 2
    centres_squared = ((centre_x - centre_xg) ** 2) + ((centre_y - centre_yg) ** 2)
    return 1 - iou + (centres_squared / diagonal_squared), iou


def diou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7) -> torch.Tensor:
    """1 - DIoU: 1 - IoU plus the squared distance of the centres over the enclosing box's
    squared diagonal."""
    boxes1, boxes2 = _as_float(boxes1), _as_float(boxes2)
    loss, _ = _diou_loss_and_iou(boxes1, boxes2, eps)
    return _reduce(loss, reduction)


def ciou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7) -> torch.Tensor:
    """1 - CIoU: the DIoU loss plus alpha * v, v measuring how the aspect ratios differ and alpha
    its weight (not differentiated)."""
    boxes1, boxes2 = _as_float(boxes1), _as_float(boxes2)
    loss, iou = _diou_loss_and_iou(boxes1, boxes2, eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    v = (4 / (math.pi**2)) * torch.pow(torch.atan((x2g - x1g) / (y2g - y1g)) - torch.atan((x2 - x1) / (y2 - y1)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(loss + alpha * v, reduction)
