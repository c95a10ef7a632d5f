"""Box predictor: class scores and class-specific box deltas per RoI, their losses and inference."""

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import ShapeSpec, batched_nms, cat
from mrcnn.modeling.box_regression import Box2BoxTransform, box_regression_loss_of_rows, check_box_reg_loss_type
from mrcnn.modeling.cached_tensors import cached_arange
from mrcnn.structures import Boxes, Instances

__all__ = ["FastRCNNOutputLayers", "fast_rcnn_inference", "fast_rcnn_inference_single_image"]


def fast_rcnn_inference(
    boxes: List[torch.Tensor],
    scores: List[torch.Tensor],
    image_shapes: List[Tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
    min_box_size: float = 0.0,
) -> Tuple[List[Instances], List[torch.Tensor]]:
    """Detections per image from per-RoI class scores and class-specific boxes.

    boxes[i]: (R_i, K*4) or (R_i, 4); scores[i]: (R_i, K+1) with background last.
    Returns Instances(pred_boxes, scores, pred_classes) and, per image, the RoI index of each detection.
    """
    results = [
        fast_rcnn_inference_single_image(b, s, shape, score_thresh, nms_thresh, topk_per_image, min_box_size)
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def fast_rcnn_inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: Tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
    min_box_size: float = 0.0,
) -> Tuple[Instances, torch.Tensor]:
    """One image of `fast_rcnn_inference`: clip, threshold, per-class NMS, keep the top k."""
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if not bool(valid.all()):
        boxes, scores = boxes[valid], scores[valid]
    scores = scores[:, :-1]
    num_rois, boxes_per_roi = boxes.shape[0], boxes.shape[1] // 4
    boxes = Boxes(boxes.reshape(-1, 4))
    boxes.clip(image_shape)
    boxes = boxes.tensor.view(num_rois, boxes_per_roi, 4)  # (R, K or 1, 4); R may be 0

    # Candidates are (RoI, class) pairs in RoI-major order, the order NMS breaks ties in.
    keep_mask = scores > score_thresh
    roi_index, class_index = keep_mask.nonzero(as_tuple=True)
    if boxes.shape[1] == 1:
        boxes = boxes[roi_index, 0]
    else:
        boxes = boxes[roi_index, class_index]
    scores = scores[roi_index, class_index]
    if min_box_size > 0:
        sizes_ok = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
        boxes, scores, roi_index, class_index = (
            boxes[sizes_ok],
            scores[sizes_ok],
            roi_index[sizes_ok],
            class_index[sizes_ok],
        )

    keep = batched_nms(boxes, scores, class_index, nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    result = Instances(image_shape)
    result.pred_boxes = Boxes(boxes[keep])
    result.scores = scores[keep]
    result.pred_classes = class_index[keep]
    kept_rois = roi_index[keep]
    if not bool(valid.all()):
        kept_rois = valid.nonzero(as_tuple=True)[0][kept_rois]
    return result, kept_rois


class FastRCNNOutputLayers(nn.Module):
    """``cls_score`` (K+1 logits, background last) and ``bbox_pred`` (K*4 deltas, or 4 agnostic).

    Input (R, D) box-head features; training losses ``loss_cls`` (cross-entropy) and
    ``loss_box_reg`` (on foreground RoIs, normalised by the number of sampled RoIs): smooth-L1 on
    the deltas, or a giou / diou / ciou loss on the decoded boxes (``box_reg_loss_type``).
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        box2box_transform: Box2BoxTransform,
        num_classes: int,
        test_score_thresh: float = 0.05,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        test_min_box_size: float = 0.0,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: Dict[str, float] = None,
    ):
        super().__init__()
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        self.num_classes = num_classes
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        box_dim = len(box2box_transform.weights)
        self.bbox_pred = nn.Linear(input_size, (1 if cls_agnostic_bbox_reg else num_classes) * box_dim)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)
        self.box2box_transform = box2box_transform
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.test_min_box_size = test_min_box_size
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, "MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE")
        self.loss_weight = {"loss_cls": 1.0, "loss_box_reg": 1.0, **(loss_weight or {})}

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        head = cfg.MODEL.ROI_BOX_HEAD
        return {
            "input_shape": input_shape,
            "box2box_transform": Box2BoxTransform(weights=head.BBOX_REG_WEIGHTS),
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "cls_agnostic_bbox_reg": head.CLS_AGNOSTIC_BBOX_REG,
            "smooth_l1_beta": head.SMOOTH_L1_BETA,
            "test_score_thresh": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            "test_nms_thresh": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "test_min_box_size": cfg.MODEL.ROI_HEADS.MIN_BOX_SIZE_TEST,
            "box_reg_loss_type": head.BBOX_REG_LOSS_TYPE,
            "loss_weight": {"loss_box_reg": head.BBOX_REG_LOSS_WEIGHT},
        }

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(R, D...) -> class logits (R, K+1), box deltas (R, K*4)."""
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)

    def losses(
        self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]
    ) -> Dict[str, torch.Tensor]:
        """Losses against the sampled proposals' gt_classes and gt_boxes."""
        scores, proposal_deltas = predictions
        gt_classes = cat([p.gt_classes for p in proposals], dim=0) if proposals else torch.empty(0, dtype=torch.long)
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0) if proposals else torch.empty((0, 4))
        if gt_classes.numel() == 0:
            zero = scores.sum() * 0.0 + proposal_deltas.sum() * 0.0
            return {"loss_cls": zero, "loss_box_reg": zero}
        gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0)
        loss_cls = F.cross_entropy(scores, gt_classes, reduction="mean")

        box_dim = proposal_boxes.shape[1]
        foreground = (gt_classes >= 0) & (gt_classes < self.num_classes)
        if proposal_deltas.shape[1] == box_dim:  # class-agnostic
            fg_deltas = proposal_deltas
        else:
            # every RoI's deltas of its gt class (background RoIs: of class 0, unused)
            rows = cached_arange(0, len(gt_classes), gt_classes.device)
            classes = torch.where(foreground, gt_classes, 0)
            fg_deltas = proposal_deltas.view(-1, self.num_classes, box_dim)[rows, classes]
        if self.box_reg_loss_type == "smooth_l1":
            # all RoIs at once, the background ones held at a zero loss with a zero gradient
            # (their targets are the predictions themselves): the foreground count stays on the
            # device. The sum adds the same terms plus zeros, equal up to float rounding.
            gt_deltas = self.box2box_transform.get_deltas(proposal_boxes, gt_boxes)
            targets = torch.where(foreground[:, None], gt_deltas, fg_deltas.detach())
            if self.smooth_l1_beta < 1e-5:
                loss_box_reg = F.l1_loss(fg_deltas, targets, reduction="sum")
            else:
                loss_box_reg = F.smooth_l1_loss(fg_deltas, targets, beta=self.smooth_l1_beta, reduction="sum")
        else:
            # the IoU losses decode the boxes, which background RoIs must not reach (their gt
            # may be empty): the foreground rows are selected
            foreground = foreground.nonzero(as_tuple=True)[0]
            loss_box_reg = box_regression_loss_of_rows(
                self.box2box_transform,
                proposal_boxes[foreground],
                fg_deltas[foreground],
                gt_boxes[foreground],
                loss_type=self.box_reg_loss_type,
            )
        loss_box_reg = loss_box_reg / max(gt_classes.numel(), 1)
        losses = {"loss_cls": loss_cls, "loss_box_reg": loss_box_reg}
        return {name: value * self.loss_weight.get(name, 1.0) for name, value in losses.items()}

    def predict_boxes(
        self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]
    ) -> List[torch.Tensor]:
        """Decoded class-specific boxes per image: (R_i, K*4)."""
        _, proposal_deltas = predictions
        num_per_image = [len(p) for p in proposals]
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        predicted = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)
        return list(predicted.split(num_per_image))

    def predict_probs(
        self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]
    ) -> List[torch.Tensor]:
        """Softmax class probabilities per image: (R_i, K+1)."""
        scores, _ = predictions
        return list(F.softmax(scores, dim=-1).split([len(p) for p in proposals]))

    def inference(
        self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]
    ) -> Tuple[List[Instances], List[torch.Tensor]]:
        """Final detections per image, with the RoI index each came from."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [p.image_size for p in proposals]
        return fast_rcnn_inference(
            boxes,
            scores,
            image_shapes,
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
            self.test_min_box_size,
        )
