"""FastRCNNOutputLayers: the box loss over all sampled RoIs, and detections when nothing is left to detect."""

import pytest
import torch
import torch.nn.functional as F
from training_rois import NUM_CLASSES, sampled_training_rois

from mrcnn.config import get_cfg
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.roi_heads import FastRCNNOutputLayers
from mrcnn.modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image


def _predictor(loss_type="smooth_l1", beta=0.0, agnostic=False):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE = loss_type
    cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = beta
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = agnostic
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
    return FastRCNNOutputLayers(cfg, ShapeSpec(channels=8))


@pytest.mark.parametrize(
    "loss_type, beta, agnostic", [("smooth_l1", 0.0, False), ("smooth_l1", 0.5, True), ("giou", 0.0, False)]
)
def test_box_loss_of_all_rois_equals_the_loss_of_the_foreground(loss_type, beta, agnostic):
    """The box loss taken over every RoI with the background held at zero equals the loss of the
    foreground RoIs alone (within float rounding: the sums add zeros), with the same gradient;
    background RoIs of an image without ground truth (zero gt boxes) stay harmless."""
    sampled = sampled_training_rois()
    predictor = _predictor(loss_type, beta, agnostic)
    generator = torch.Generator().manual_seed(2)
    num_rois = sum(len(p) for p in sampled)
    scores = torch.randn(num_rois, NUM_CLASSES + 1, generator=generator)
    deltas = (torch.randn(num_rois, predictor.bbox_pred.out_features, generator=generator) * 0.3).requires_grad_()
    losses = predictor.losses((scores, deltas), sampled)
    (gradient,) = torch.autograd.grad(losses["loss_box_reg"], deltas)

    classes = torch.cat([p.gt_classes for p in sampled])
    foreground = ((classes >= 0) & (classes < NUM_CLASSES)).nonzero().flatten()
    boxes = torch.cat([p.proposal_boxes.tensor for p in sampled])[foreground]
    gt_boxes = torch.cat([p.gt_boxes.tensor for p in sampled])[foreground]
    fg_deltas = (
        deltas[foreground] if agnostic else deltas.view(num_rois, NUM_CLASSES, 4)[foreground, classes[foreground]]
    )
    transform = predictor.box2box_transform
    if loss_type == "smooth_l1":
        targets_deltas = transform.get_deltas(boxes, gt_boxes)
        loss = (
            F.smooth_l1_loss(fg_deltas, targets_deltas, beta=beta, reduction="sum")
            if beta
            else F.l1_loss(fg_deltas, targets_deltas, reduction="sum")
        )
    else:
        from torchvision.ops import generalized_box_iou_loss

        loss = generalized_box_iou_loss(transform.apply_deltas(fg_deltas, boxes), gt_boxes, reduction="sum")
    expected = loss / num_rois
    (expected_gradient,) = torch.autograd.grad(expected, deltas)
    torch.testing.assert_close(losses["loss_box_reg"], expected, rtol=1e-6, atol=0)
    # equal but for the last bit of a log or exp (the CPU's vector and scalar paths may differ there)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-5, atol=1e-9)
    background = torch.ones(num_rois, dtype=torch.bool)
    background[foreground] = False
    assert torch.isfinite(gradient).all() and (gradient[background] == 0).all() and len(foreground) > 2


@pytest.mark.parametrize("boxes_per_roi", [1, NUM_CLASSES])
def test_inference_without_valid_rois_returns_empty_detections(boxes_per_roi):
    """No RoI (or only RoIs with non-finite scores or boxes) gives empty detections of the usual
    fields, dtypes and shapes instead of a reshape error."""
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(4, boxes_per_roi * 4, generator=generator) * 20
    scores = torch.full((4, NUM_CLASSES + 1), float("nan"))
    scores[1, 0] = 0.9  # the other classes of this RoI are still NaN
    for rois, roi_scores in [(boxes, scores), (boxes[:0], scores[:0])]:
        result, kept = fast_rcnn_inference_single_image(rois, roi_scores, (30, 40), 0.05, 0.5, 100)
        assert result.image_size == (30, 40) and len(result) == 0
        assert result.pred_boxes.tensor.shape == (0, 4) and result.pred_boxes.tensor.dtype == torch.float32
        assert result.scores.shape == (0,) and result.pred_classes.dtype == torch.int64
        assert kept.shape == (0,) and kept.dtype == torch.int64
    # one valid RoI among invalid ones is still detected, with its index among all RoIs
    scores[2] = torch.tensor([0.1, 0.7, 0.05, 0.05, 0.05, 0.05])
    result, kept = fast_rcnn_inference_single_image(boxes, scores, (30, 40), 0.05, 0.5, 100)
    assert result.pred_classes.tolist() == [1, 0] and kept.tolist() == [2, 2]
