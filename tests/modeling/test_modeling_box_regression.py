import math
import re

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from mrcnn.modeling.box_regression import Box2BoxTransform, box_regression_loss


def _random_boxes(num, generator, scale=100.0):
    xy = torch.rand(num, 2, generator=generator) * scale
    wh = torch.rand(num, 2, generator=generator) * scale + 1.0
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_round_trip_recovers_boxes(weights):
    generator = torch.Generator().manual_seed(0)
    src = _random_boxes(50, generator)
    target = _random_boxes(50, generator)
    transform = Box2BoxTransform(weights)
    deltas = transform.get_deltas(src, target)
    assert deltas.shape == (50, 4)
    recovered = transform.apply_deltas(deltas, src)
    torch.testing.assert_close(recovered, target, rtol=0, atol=1e-4)
    # relative to size: 1e-5 of the box scale
    assert ((recovered - target).abs() / 100.0).max() < 1e-5


def test_deltas_of_known_boxes():
    transform = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    target = torch.tensor([[5.0, 10.0, 25.0, 30.0]])
    # centres (5, 10) -> (15, 20); sizes (10, 20) -> (20, 20)
    expected = torch.tensor([[10 * 10 / 10, 10 * 10 / 20, 5 * math.log(2.0), 5 * math.log(1.0)]])
    torch.testing.assert_close(transform.get_deltas(src, target), expected)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_matches_torchvision_box_coder(weights):
    generator = torch.Generator().manual_seed(1)
    boxes = _random_boxes(40, generator)
    deltas = torch.randn(40, 3 * 4, generator=generator) * 2.0
    deltas[0, 2] = 50.0  # exercises the scale clamp
    ours = Box2BoxTransform(weights).apply_deltas(deltas, boxes)
    reference = BoxCoder(weights).decode_single(deltas, boxes)
    assert ours.shape == (40, 12)
    assert torch.equal(ours, reference)
    target = _random_boxes(40, generator)
    torch.testing.assert_close(
        Box2BoxTransform(weights).get_deltas(boxes, target), BoxCoder(weights).encode_single(target, boxes)
    )


def test_scale_clamp_bounds_growth():
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = transform.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), boxes)
    torch.testing.assert_close(out[0, 2] - out[0, 0], torch.tensor(1000.0))


def test_half_deltas_are_decoded_in_float32():
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = transform.apply_deltas(torch.zeros(1, 4, dtype=torch.float16), boxes)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, boxes)


def test_box_regression_loss_is_summed_l1_over_foreground():
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]])
    gt = torch.tensor([[1.0, 1.0, 11.0, 11.0], [10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]])
    gt_boxes = [gt, gt]  # two images
    pred = torch.zeros(2, 3, 4, requires_grad=True)
    fg_mask = torch.tensor([[True, True, False], [True, False, False]])
    loss = box_regression_loss([anchors[:2], anchors[2:]], transform, [pred[:, :2], pred[:, 2:]], gt_boxes, fg_mask)
    # anchor 0 has target deltas (0.1, 0.1, 0, 0) (L1 = 0.2), anchor 1 zero; counted twice.
    torch.testing.assert_close(loss, torch.tensor(0.4))
    loss.backward()
    assert pred.grad[0, 0].abs().sum() > 0 and pred.grad[0, 2].abs().sum() == 0
    smooth = box_regression_loss(anchors, transform, pred.detach(), torch.stack(gt_boxes), fg_mask, smooth_l1_beta=1.0)
    torch.testing.assert_close(smooth, torch.tensor(4 * 0.5 * 0.1**2))


def test_unknown_loss_type_is_named():
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="BBOX_REG_LOSS_TYPE"):
        box_regression_loss(
            torch.zeros(1, 4),
            transform,
            torch.zeros(1, 1, 4),
            torch.zeros(1, 1, 4),
            torch.ones(1, 1, dtype=torch.bool),
            loss_type="l3",
        )


# --- IoU losses (detectron2's BBOX_REG_LOSS_TYPE giou / diou / ciou) ----------------------------
def _iou_losses_by_hand(pred, gt):
    """(giou, diou, ciou) losses of two XYXY boxes, from their definitions."""
    (px1, py1, px2, py2), (gx1, gy1, gx2, gy2) = pred, gt
    inter = max(0.0, min(px2, gx2) - max(px1, gx1)) * max(0.0, min(py2, gy2) - max(py1, gy1))
    union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    iou = inter / union
    cw, ch = max(px2, gx2) - min(px1, gx1), max(py2, gy2) - min(py1, gy1)
    giou = 1 - iou + (cw * ch - union) / (cw * ch)
    centre_distance = ((px1 + px2) / 2 - (gx1 + gx2) / 2) ** 2 + ((py1 + py2) / 2 - (gy1 + gy2) / 2) ** 2
    diou = 1 - iou + centre_distance / (cw**2 + ch**2)
    v = 4 / math.pi**2 * (math.atan((gx2 - gx1) / (gy2 - gy1)) - math.atan((px2 - px1) / (py2 - py1))) ** 2
    alpha = v / (1 - iou + v)
    return giou, diou, diou + alpha * v


@pytest.mark.parametrize("loss_type, index", [("giou", 0), ("diou", 1), ("ciou", 2)])
def test_iou_losses_are_summed_over_foreground_decoded_boxes(loss_type, index):
    transform = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0], [0.0, 0.0, 5.0, 5.0]])
    gt = torch.tensor([[5.0, 0.0, 15.0, 10.0], [18.0, 22.0, 38.0, 42.0], [50.0, 50.0, 60.0, 60.0]])
    # the second anchor's deltas move it 2 px right before the loss: x 22..42
    pred = torch.tensor(
        [[[0.0, 0.0, 0.0, 0.0], [10 * 2 / 20, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]], requires_grad=True
    )
    fg_mask = torch.tensor([[True, True, False]])
    loss = box_regression_loss(anchors, transform, pred, gt[None], fg_mask, loss_type=loss_type)
    expected = _iou_losses_by_hand((0, 0, 10, 10), (5, 0, 15, 10))[index]
    expected += _iou_losses_by_hand((22, 20, 42, 30), (18, 22, 38, 42))[index]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert pred.grad[0, :2].abs().sum() > 0 and pred.grad[0, 2].abs().sum() == 0  # background: no gradient


def test_box_head_iou_loss_is_normalised_by_sampled_rois():
    from mrcnn.layers import ShapeSpec
    from mrcnn.modeling.roi_heads import FastRCNNOutputLayers
    from mrcnn.structures import Boxes, Instances

    predictor = FastRCNNOutputLayers(
        ShapeSpec(channels=8),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=2,
        box_reg_loss_type="diou",
        loss_weight={"loss_box_reg": 2.0},
    )
    proposals = Instances((100, 100))
    proposals.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0], [5.0, 5, 9, 9]]))
    proposals.gt_boxes = Boxes(torch.tensor([[5.0, 0.0, 15.0, 10.0], [18.0, 22.0, 38.0, 42.0], [0.0, 0, 1, 1]]))
    proposals.gt_classes = torch.tensor([1, 0, 2])  # the third is background
    scores = torch.zeros(3, 3)
    deltas = torch.zeros(3, 8)  # class-specific: zero deltas, the proposals are the predicted boxes
    losses = predictor.losses((scores, deltas), [proposals])
    expected = (
        _iou_losses_by_hand((0, 0, 10, 10), (5, 0, 15, 10))[1]
        + _iou_losses_by_hand((20, 20, 40, 30), (18, 22, 38, 42))[1]
    )
    assert losses["loss_box_reg"].item() == pytest.approx(2.0 * expected / 3, rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(math.log(3), rel=1e-6)


def test_rpn_iou_loss_is_normalised_by_sampled_anchors():
    from mrcnn.benchmark import tiny_config
    from mrcnn.modeling import build_model
    from mrcnn.structures import Boxes

    cfg = tiny_config()
    cfg.merge_from_list(["MODEL.RPN.BBOX_REG_LOSS_TYPE", "giou", "MODEL.RPN.BBOX_REG_LOSS_WEIGHT", "3.0"])
    rpn = build_model(cfg).proposal_generator
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0], [0.0, 0.0, 5.0, 5.0]]))]
    gt_boxes = [torch.tensor([[5.0, 0.0, 15.0, 10.0], [18.0, 22.0, 38.0, 42.0], [0.0, 0.0, 5.0, 5.0]])]
    losses = rpn.losses(anchors, [torch.zeros(1, 3)], [torch.tensor([1, 1, 0])], [torch.zeros(1, 3, 4)], gt_boxes)
    expected = (
        _iou_losses_by_hand((0, 0, 10, 10), (5, 0, 15, 10))[0]
        + _iou_losses_by_hand((20, 20, 40, 30), (18, 22, 38, 42))[0]
    )
    assert rpn.box_reg_loss_type == "giou"
    assert losses["loss_rpn_loc"].item() == pytest.approx(3.0 * expected / cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE, rel=1e-5)


@pytest.mark.parametrize("key", ["MODEL.RPN.BBOX_REG_LOSS_TYPE", "MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE"])
def test_unknown_loss_type_in_config_names_the_key(key):
    from mrcnn.benchmark import tiny_config
    from mrcnn.modeling import build_model

    cfg = tiny_config()
    cfg.merge_from_list([key, "iou"])
    with pytest.raises(ValueError, match=re.escape(key)):
        build_model(cfg)
