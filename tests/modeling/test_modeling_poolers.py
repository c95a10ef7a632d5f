"""Multi-level RoI pooling: level assignment by box scale, and values equal to single-level RoIAlign."""

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
    import pytest

    with pytest.raises(ValueError, match="powers of 2"):
        ROIPooler(7, scales=[1 / 3], sampling_ratio=0, pooler_type="ROIAlignV2")
