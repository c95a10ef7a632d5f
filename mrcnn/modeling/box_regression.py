"""The (dx, dy, dw, dh) box parameterisation of R-CNN and the box-regression losses.

The losses detectron2 offers by config (MODEL.RPN.BBOX_REG_LOSS_TYPE and
MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE): "smooth_l1" on the deltas (beta 0 is L1), and "giou",
"diou", "ciou" on the decoded boxes (the generalized, distance and complete IoU losses, with
torchvision.ops' values and gradients but no host synchronisation: mrcnn.layers.box_iou_losses).
"""

import math
from typing import List, Sequence, Tuple, Union

import torch
from torch.nn import functional as F

from mrcnn.layers import ciou_loss, diou_loss, giou_loss

__all__ = [
    "BOX_REG_LOSS_TYPES",
    "Box2BoxTransform",
    "box_regression_loss",
    "box_regression_loss_of_rows",
    "check_box_reg_loss_type",
]

# exp(dw) is capped so that a box grows at most 1000/16 times in one step; larger deltas
# only come from a diverging model and would overflow to inf.
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)

# loss type -> function of (pred_boxes, gt_boxes, reduction) for the IoU losses
_IOU_LOSSES = {"giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}
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
        # x and y side by side: the arithmetic of each coordinate is that of the formulas above
        src_low = src_boxes[:, :2]
        src_sizes = src_boxes[:, 2:] - src_low
        src_centers = src_low + 0.5 * src_sizes
        target_low = target_boxes[:, :2]
        target_sizes = target_boxes[:, 2:] - target_low
        target_centers = target_low + 0.5 * target_sizes

        center_weights, size_weights = self._paired_weights(src_boxes)
        center_deltas = center_weights * (target_centers - src_centers) / src_sizes
        size_deltas = size_weights * torch.log(target_sizes / src_sizes)
        return torch.cat((center_deltas, size_deltas), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` (N, k*4) against ``boxes`` (N, 4) into boxes (N, k*4), XYXY.

        Computed in float32 (or wider if the deltas are wider) so that half-precision heads
        do not lose box precision; the order of operations is fixed so the result is
        reproducible bit for bit.
        """
        if deltas.dtype not in (torch.float32, torch.float64):
            deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)

        low = boxes[:, :2]
        sizes = boxes[:, 2:] - low
        centers = low + 0.5 * sizes
        per_box = deltas.reshape(deltas.shape[0], deltas.shape[1] // 4, 4)  # (N, k, 4)
        center_weights, size_weights = self._paired_weights(deltas)
        center_deltas = per_box[..., :2] / center_weights
        size_deltas = torch.clamp(per_box[..., 2:] / size_weights, max=self.scale_clamp)

        sizes = sizes.unsqueeze(1)
        predicted_centers = center_deltas * sizes + centers.unsqueeze(1)
        half_sizes = 0.5 * (torch.exp(size_deltas) * sizes)
        decoded = torch.cat((predicted_centers - half_sizes, predicted_centers + half_sizes), dim=2)
        return decoded.reshape(deltas.shape)

    def _paired_weights(self, like: torch.Tensor) -> Tuple[Union[float, torch.Tensor], Union[float, torch.Tensor]]:
        """(wx, wy) and (ww, wh), each a Python number when its two weights are equal (the usual
        case, and the arithmetic of a scalar weight exactly), else a tensor of ``like``'s device and dtype."""
        wx, wy, ww, wh = self.weights
        return (
            wx if wx == wy else like.new_tensor((wx, wy)),
            ww if ww == wh else like.new_tensor((ww, wh)),
        )


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
    # the foreground rows in (image, anchor) order, the order a boolean mask selects in
    image_index, anchor_index = fg_mask.nonzero(as_tuple=True)
    return box_regression_loss_of_rows(
        box2box_transform,
        anchors[anchor_index],
        pred_deltas[image_index, anchor_index],
        gt_boxes[image_index, anchor_index],
        loss_type=loss_type,
        smooth_l1_beta=smooth_l1_beta,
    )


def box_regression_loss_of_rows(
    box2box_transform: Box2BoxTransform,
    src_boxes: torch.Tensor,
    pred_deltas: torch.Tensor,
    gt_boxes: torch.Tensor,
    loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Summed box-regression loss of M rows, each a source box (anchor or proposal) (M, 4), the
    deltas predicted for it (M, 4) and the ground-truth box it should become (M, 4).

    ``loss_type`` "smooth_l1" compares the deltas (beta below 1e-5 is L1); "giou", "diou" and
    "ciou" compare the boxes the predicted deltas decode to with the gt boxes.
    """
    if loss_type == "smooth_l1":
        gt_deltas = box2box_transform.get_deltas(src_boxes, gt_boxes)
        if smooth_l1_beta < 1e-5:
            # smooth_l1_loss with beta 0 has a 0/0 in its gradient on some versions.
            return F.l1_loss(pred_deltas, gt_deltas, reduction="sum")
        return F.smooth_l1_loss(pred_deltas, gt_deltas, beta=smooth_l1_beta, reduction="sum")
    check_box_reg_loss_type(loss_type, "MODEL.RPN.BBOX_REG_LOSS_TYPE or MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE")
    pred_boxes = box2box_transform.apply_deltas(pred_deltas, src_boxes)
    return _IOU_LOSSES[loss_type](pred_boxes, gt_boxes.to(pred_boxes.dtype), reduction="sum")
