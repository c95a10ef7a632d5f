"""The (dx, dy, dw, dh) box parameterisation of R-CNN and the box-regression losses.

The losses detectron2 offers by config (MODEL.RPN.BBOX_REG_LOSS_TYPE and
MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE): "smooth_l1" on the deltas (beta 0 is L1), and "giou",
"diou", "ciou" on the decoded boxes (torchvision.ops' generalized, distance and complete IoU losses).
"""

import math
from typing import List, Sequence, Tuple, Union

import torch
from torch.nn import functional as F

__all__ = ["BOX_REG_LOSS_TYPES", "Box2BoxTransform", "box_regression_loss", "check_box_reg_loss_type"]

# exp(dw) is capped so that a box grows at most 1000/16 times in one step; larger deltas
# only come from a diverging model and would overflow to inf.
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)

# loss type -> torchvision.ops function of (pred_boxes, gt_boxes, reduction) for the IoU losses
_IOU_LOSSES = {
    "giou": "generalized_box_iou_loss",
    "diou": "distance_box_iou_loss",
    "ciou": "complete_box_iou_loss",
}
BOX_REG_LOSS_TYPES = ("smooth_l1",) + tuple(_IOU_LOSSES)


def check_box_reg_loss_type(loss_type: str, config_key: str = "BBOX_REG_LOSS_TYPE") -> str:
    """``loss_type`` if it is one of BOX_REG_LOSS_TYPES; else a ValueError naming ``config_key``."""
    if loss_type not in BOX_REG_LOSS_TYPES:
        raise ValueError(
            f"Unknown box regression loss type {loss_type!r} ({config_key}); "
            f"valid types are {', '.join(repr(t) for t in BOX_REG_LOSS_TYPES)}."
        )
    return loss_type


class Box2BoxTransform:
    """Encode a target box relative to a source box as deltas, and decode deltas back.

    With source width ``w``, height ``h`` and centre ``(x, y)`` (width is ``x2 - x1``, no +1):
    ``dx = wx * (x_t - x) / w``, ``dy = wy * (y_t - y) / h``, ``dw = ww * log(w_t / w)``,
    ``dh = wh * log(h_t / h)``.
    """

    def __init__(
        self,
        weights: Tuple[float, float, float, float],
        scale_clamp: float = _DEFAULT_SCALE_CLAMP,
    ):
        """
        Args:
            weights: (wx, wy, ww, wh) multipliers of the deltas.
            scale_clamp: upper bound of dw / dh (after dividing by the weights) when decoding.
        """
        if len(weights) != 4:
            raise ValueError(f"Box2BoxTransform weights must have 4 values, got {weights}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas (N, 4) that turn ``src_boxes`` (N, 4) into ``target_boxes`` (N, 4), XYXY."""
        if not isinstance(src_boxes, torch.Tensor) or not isinstance(target_boxes, torch.Tensor):
            raise TypeError("get_deltas expects two tensors of shape (N, 4)")
        src_widths = src_boxes[:, 2] - src_boxes[:, 0]
        src_heights = src_boxes[:, 3] - src_boxes[:, 1]
        src_ctr_x = src_boxes[:, 0] + 0.5 * src_widths
        src_ctr_y = src_boxes[:, 1] + 0.5 * src_heights

        target_widths = target_boxes[:, 2] - target_boxes[:, 0]
        target_heights = target_boxes[:, 3] - target_boxes[:, 1]
        target_ctr_x = target_boxes[:, 0] + 0.5 * target_widths
        target_ctr_y = target_boxes[:, 1] + 0.5 * target_heights

        wx, wy, ww, wh = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` (N, k*4) against ``boxes`` (N, 4) into boxes (N, k*4), XYXY.

        Computed in float32 (or wider if the deltas are wider) so that half-precision heads
        do not lose box precision; the order of operations is fixed so the result is
        reproducible bit for bit.
        """
        if deltas.dtype not in (torch.float32, torch.float64):
            deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)

        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]

        x1 = pred_ctr_x - 0.5 * pred_w
        y1 = pred_ctr_y - 0.5 * pred_h
        x2 = pred_ctr_x + 0.5 * pred_w
        y2 = pred_ctr_y + 0.5 * pred_h
        return torch.stack((x1, y1, x2, y2), dim=2).reshape(deltas.shape)


def _as_tensor_boxes(boxes) -> torch.Tensor:
    """A (R, 4) tensor from a tensor, a Boxes, or a list of either (concatenated)."""
    if isinstance(boxes, (list, tuple)):
        return torch.cat([_as_tensor_boxes(b) for b in boxes], dim=0)
    return boxes.tensor if hasattr(boxes, "tensor") else boxes


def _stack_per_image(values: Union[torch.Tensor, Sequence[torch.Tensor]], dim: int) -> torch.Tensor:
    return values if isinstance(values, torch.Tensor) else torch.cat(list(values), dim=dim)


def box_regression_loss(
    anchors,
    box2box_transform: Box2BoxTransform,
    pred_deltas: Union[torch.Tensor, List[torch.Tensor]],
    gt_boxes: Union[torch.Tensor, List[torch.Tensor]],
    fg_mask: torch.Tensor,
    loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Summed box-regression loss over the foreground anchors of a batch.

    Args:
        anchors: the R anchors shared by all images: a (R, 4) tensor, a Boxes, or a list of
            either (one per feature level, concatenated in order).
        box2box_transform: the parameterisation of the deltas.
        pred_deltas: (N, R, 4) predicted deltas, or a list of (N, Ri, 4) per level.
        gt_boxes: (N, R, 4) matched ground-truth boxes, or a list of N (R, 4) per image.
        fg_mask: (N, R) bool, the anchors that contribute.
        loss_type: "smooth_l1" (on deltas; beta 0 is L1), or "giou" / "diou" / "ciou" (on the
            boxes the predicted deltas decode to, against the gt boxes).
        smooth_l1_beta: transition point of the smooth-L1 loss.

    Returns:
        a scalar: the loss summed (not averaged) over foreground anchors (and, for smooth-L1,
        coordinates). The caller divides by its normaliser (sampled anchors or RoIs).
    """
    check_box_reg_loss_type(loss_type, "MODEL.RPN.BBOX_REG_LOSS_TYPE or MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE")
    anchors = _as_tensor_boxes(anchors)
    pred_deltas = _stack_per_image(pred_deltas, dim=1)
    gt_boxes = gt_boxes if isinstance(gt_boxes, torch.Tensor) else torch.stack(list(gt_boxes))
    if loss_type == "smooth_l1":
        gt_deltas = torch.stack([box2box_transform.get_deltas(anchors, boxes) for boxes in gt_boxes])
        if smooth_l1_beta < 1e-5:
            # smooth_l1_loss with beta 0 has a 0/0 in its gradient on some versions.
            return F.l1_loss(pred_deltas[fg_mask], gt_deltas[fg_mask], reduction="sum")
        return F.smooth_l1_loss(pred_deltas[fg_mask], gt_deltas[fg_mask], beta=smooth_l1_beta, reduction="sum")
    import torchvision.ops

    # Decoding is per box, so decoding only the foreground gives the boxes a full decode would.
    fg_anchors = anchors.unsqueeze(0).expand(fg_mask.shape[0], -1, -1)[fg_mask]
    pred_boxes = box2box_transform.apply_deltas(pred_deltas[fg_mask], fg_anchors)
    iou_loss = getattr(torchvision.ops, _IOU_LOSSES[loss_type])
    return iou_loss(pred_boxes, gt_boxes[fg_mask].to(pred_boxes.dtype), reduction="sum")
