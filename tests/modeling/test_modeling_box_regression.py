import math

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
