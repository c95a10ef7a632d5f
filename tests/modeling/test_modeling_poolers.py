"""Multi-level RoI pooling: level assignment by box scale, and values equal to single-level RoIAlign."""

import pytest
import torch
from torchvision.ops import roi_align

from mrcnn.modeling.poolers import ROIPooler, assign_boxes_to_levels
from mrcnn.structures import Boxes


def test_level_assignment_follows_box_scale():
    sizes = [16, 56, 111, 112, 223, 224, 447, 448, 896, 2000]
    boxes = Boxes(torch.tensor([[0.0, 0.0, s, s] for s in sizes]))
    levels = assign_boxes_to_levels([boxes], min_level=2, max_level=5) + 2
    # 224 -> P4; halving the side goes one level down; clamped to P2..P5
    assert levels.tolist() == [2, 2, 2, 3, 3, 4, 4, 5, 5, 5]


def test_pooler_matches_roi_align_on_the_assigned_level():
    torch.manual_seed(0)
    features = [torch.randn(2, 4, 64 // 2**i, 64 // 2**i) for i in range(4)]  # strides 4..32 of a 256 image
    pooler = ROIPooler(output_size=5, scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32], sampling_ratio=2, pooler_type="ROIAlignV2")
    box_lists = [
        Boxes(torch.tensor([[10.0, 10, 40, 40], [0, 0, 250, 250]])),
        Boxes(torch.tensor([[20.0, 30, 140, 150]])),
    ]
    pooled = pooler(features, box_lists)
    assert pooled.shape == (3, 4, 5, 5)
    levels = assign_boxes_to_levels(box_lists, 2, 5)
    rows = [(0, box_lists[0].tensor[0]), (0, box_lists[0].tensor[1]), (1, box_lists[1].tensor[0])]
    for index, (image, box) in enumerate(rows):
        level = int(levels[index])
        roi = torch.cat([torch.tensor([float(image)]), box])[None]
        expected = roi_align(
            features[level], roi, 5, spatial_scale=1 / 2 ** (level + 2), sampling_ratio=2, aligned=True
        )
        assert torch.allclose(pooled[index], expected[0], atol=1e-6)


def test_pooler_rejects_scales_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="powers of 2"):
        ROIPooler(7, scales=[1 / 3], sampling_ratio=0, pooler_type="ROIAlignV2")


def _pool_level_by_level(pooler, features, box_lists):
    """The pooled features, each level's boxes selected by a mask and written back in place."""
    rows = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b.tensor], dim=1) for i, b in enumerate(box_lists)])
    levels = assign_boxes_to_levels(box_lists, pooler.min_level, pooler.max_level)
    output = features[0].new_zeros((len(rows), features[0].shape[1]) + pooler.output_size)
    for level, (feature, level_pooler) in enumerate(zip(features, pooler.level_poolers)):
        index = (levels == level).nonzero().flatten()
        if len(index):
            output[index] = level_pooler(feature, rows[index])
    return output


@pytest.mark.parametrize("sides", [(8, 250, 60, 120, 30, 500, 16), (40, 44, 50, 36), (300, 80, 700, 250)])
def test_pooling_in_level_order_equals_pooling_level_by_level(sides):
    """The boxes pooled in level order and put back give the values and the feature gradients of
    pooling each level's boxes where they stand, whichever levels are used (one, several, not P2)."""
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(2, 3, 128 // 2**i, 128 // 2**i, generator=generator, requires_grad=True) for i in range(4)]
    pooler = ROIPooler(output_size=4, scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32], sampling_ratio=2, pooler_type="ROIAlignV2")
    corners = torch.rand(len(sides), 2, generator=generator) * 200
    boxes = torch.cat([corners, corners + torch.tensor(sides, dtype=torch.float32)[:, None]], dim=1)
    box_lists = [Boxes(boxes[: len(sides) // 2]), Boxes(boxes[len(sides) // 2 :])]
    ours = pooler(features, box_lists)
    expected = _pool_level_by_level(pooler, features, box_lists)
    assert torch.equal(ours, expected)
    weights = torch.randn(ours.shape, generator=generator)
    gradients = torch.autograd.grad((ours * weights).sum(), features, allow_unused=True)
    expected_gradients = torch.autograd.grad((expected * weights).sum(), features, allow_unused=True)
    for mine, theirs in zip(gradients, expected_gradients):  # None: a level that pooled no box
        assert (mine is None and theirs is None) or torch.equal(mine, theirs)
    assert pooler(features, [Boxes(torch.zeros(0, 4)), Boxes(torch.zeros(0, 4))]).shape == (0, 3, 4, 4)
