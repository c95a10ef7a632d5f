"""The sync-free GIoU, DIoU and CIoU losses against torchvision.ops' on the same boxes."""

import pytest
import torch
import torchvision.ops
from torch.profiler import ProfilerActivity, profile

from mrcnn.benchmark.dispatch_count import SYNCHRONIZING_OPERATORS
from mrcnn.layers import ciou_loss, diou_loss, giou_loss, paired_intersection_and_union

LOSSES = [
    (giou_loss, torchvision.ops.generalized_box_iou_loss),
    (diou_loss, torchvision.ops.distance_box_iou_loss),
    (ciou_loss, torchvision.ops.complete_box_iou_loss),
]


def _box_pairs(seed: int, n: int = 400):
    """Pairs that overlap, are disjoint, touch along an edge, coincide or contain one another."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 1
    boxes1 = torch.cat([xy, xy + wh], dim=1)
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 120
    scale = torch.rand(n, 2, generator=g) * 1.5 + 0.25
    xy2 = xy + shift
    boxes2 = torch.cat([xy2, xy2 + wh * scale], dim=1)
    boxes2[:20] = boxes1[:20]  # the same box
    boxes2[20:40, 0] = boxes1[20:40, 2]  # touching: boxes2 starts where boxes1 ends
    boxes2[20:40, 2] = boxes2[20:40, 0] + 5
    boxes2[40:60] = boxes1[40:60] + torch.tensor([2.0, 2.0, -2.0, -2.0])  # inside
    return boxes1.double(), boxes2.double()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("ours,theirs", LOSSES, ids=["giou", "diou", "ciou"])
def test_values_and_gradients_match_torchvision(ours, theirs, reduction, seed):
    boxes1, boxes2 = _box_pairs(seed)
    assert ((boxes2[:, 0] >= boxes1[:, 2]) | (boxes2[:, 2] <= boxes1[:, 0])).sum() > 40  # disjoint pairs too
    results = []
    for loss in (ours, theirs):
        a, b = boxes1.clone().requires_grad_(), boxes2.clone().requires_grad_()
        value = loss(a, b, reduction=reduction)
        weights = torch.linspace(0.5, 1.5, value.numel(), dtype=value.dtype).reshape(value.shape)
        (value * weights).sum().backward()
        results.append((value.detach(), a.grad, b.grad))
    for mine, reference in zip(*results):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)


def test_giou_is_bit_identical_in_float32():
    boxes1, boxes2 = (b.float() for b in _box_pairs(2))
    values = []
    for loss in (giou_loss, torchvision.ops.generalized_box_iou_loss):
        a = boxes1.clone().requires_grad_()
        value = loss(a, boxes2, reduction="sum")
        value.backward()
        values.append((value.detach(), a.grad))
    assert torch.equal(values[0][0], values[1][0]) and torch.equal(values[0][1], values[1][1])


def test_intersection_of_disjoint_touching_and_nested_boxes():
    boxes1 = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    boxes2 = torch.tensor([[20.0, 20, 30, 30], [10, 0, 20, 10], [2, 3, 4, 8], [5, 5, 15, 15]])
    intersection, union = paired_intersection_and_union(boxes1, boxes2)
    assert intersection.tolist() == [0, 0, 10, 25]
    assert union.tolist() == [200, 200, 100, 175]


def test_no_host_synchronisation_forward_or_backward():
    boxes1, boxes2 = (b.float() for b in _box_pairs(3))
    for loss, _ in LOSSES:
        a = boxes1.clone().requires_grad_()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            loss(a, boxes2, reduction="sum").backward()
        assert not [e.name for e in prof.events() if e.name in SYNCHRONIZING_OPERATORS], loss.__name__


def test_empty_input_integer_boxes_and_bad_reduction():
    empty = torch.zeros((0, 4), requires_grad=True)
    value = giou_loss(empty, empty.detach(), reduction="mean")
    value.backward()
    assert value.item() == 0.0 and empty.grad.shape == (0, 4)
    assert giou_loss(empty, empty, reduction="none").shape == (0,)
    integer = torch.tensor([[0, 0, 10, 10]])
    assert giou_loss(integer, integer).dtype == torch.float32
    assert giou_loss(integer, integer).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        giou_loss(integer, integer, reduction="max")
