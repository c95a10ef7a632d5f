"""The CPU's per-box paste and the batched whole-image paste give the same masks."""

import pytest
import torch

from mrcnn.layers import mask_ops

HEIGHT, WIDTH = 57, 83


def _weights(mode: str, boxes: torch.Tensor, mask_size: int):
    if mode == "grid":
        rows = mask_ops._grid_weights(boxes[:, 1], boxes[:, 3], HEIGHT, mask_size)
        cols = mask_ops._grid_weights(boxes[:, 0], boxes[:, 2], WIDTH, mask_size)
    else:
        int_boxes = mask_ops._torchvision_boxes(boxes, mask_size)
        rows = mask_ops._interpolate_weights(int_boxes[:, 1], int_boxes[:, 3], HEIGHT, mask_size + 2)[..., 1:-1]
        cols = mask_ops._interpolate_weights(int_boxes[:, 0], int_boxes[:, 2], WIDTH, mask_size + 2)[..., 1:-1]
    return rows, cols


@pytest.mark.parametrize("mode", ["grid", "torchvision"])
def test_box_local_paste_equals_whole_image_paste(mode):
    generator = torch.Generator().manual_seed(0)
    count, size = 30, 14
    masks = torch.rand(count, size, size, generator=generator)
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([WIDTH + 30.0, HEIGHT + 30.0]) - 15
    extent = torch.rand(count, 2, generator=generator) * 50 + 0.2
    boxes = torch.cat([corner, corner + extent], dim=1)
    boxes[0] = torch.tensor([-40.0, -40.0, -20.0, -20.0])  # wholly outside
    boxes[1] = torch.tensor([-10.0, -10.0, WIDTH + 10.0, HEIGHT + 10.0])  # larger than the image
    rows, cols = _weights(mode, boxes, size)
    for threshold in (0.5, 0.3, -1.0):
        local = mask_ops._paste_within_boxes(masks, rows, cols, threshold)
        whole = mask_ops._paste_full_images(masks, rows, cols, threshold)
        assert local.dtype == whole.dtype and local.shape == (count, HEIGHT, WIDTH)
        if threshold >= 0:
            assert torch.equal(local, whole)
        else:
            torch.testing.assert_close(local, whole, atol=1e-6, rtol=0)
    pasted = mask_ops._paste_within_boxes(masks, rows, cols, 0.5)
    assert not pasted[0].any() and pasted[1].float().mean() > 0.2
    assert pasted.any(dim=(1, 2)).sum() >= 20  # not a comparison of empty masks


def test_nonzero_extent():
    weights = torch.zeros(3, 6, 2)
    weights[0, 2:4, 0] = 1.0
    weights[1, 5, 1] = 0.5
    extents = mask_ops._nonzero_extent(weights)
    assert extents.tolist() == [[2, 4], [5, 6], [0, 0]]
