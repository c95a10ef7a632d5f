import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image as torchvision_paste

from mrcnn.layers import mask_ops, paste_masks_in_image
from mrcnn.structures import Boxes

HEIGHT, WIDTH = 48, 64


def _random_boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    """Boxes of every kind: partly outside the image, sub-pixel, larger than the image."""
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([WIDTH + 20.0, HEIGHT + 20.0]) - 10
    size = torch.rand(count, 2, generator=generator) * 40 + 1
    tiny = torch.arange(count) % 5 == 0
    size[tiny] = torch.rand(int(tiny.sum()), 2, generator=generator) * 0.9 + 0.05
    big = torch.arange(count) % 7 == 3
    corner[big] = torch.tensor([-15.0, -12.0])
    size[big] = torch.tensor([WIDTH + 35.0, HEIGHT + 30.0])
    return torch.cat([corner, corner + size], dim=1)


def _grid_sample_reference(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One F.grid_sample per mask, sampling the box-frame mask at every image pixel center."""
    pasted = []
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.tolist()):
        grid_x = (torch.arange(width) + 0.5 - x0) / (x1 - x0) * 2 - 1
        grid_y = (torch.arange(height) + 0.5 - y0) / (y1 - y0) * 2 - 1
        grid = torch.stack([grid_x[None, :].expand(height, width), grid_y[:, None].expand(height, width)], dim=-1)
        sampled = F.grid_sample(
            mask[None, None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=False
        )
        pasted.append(sampled[0, 0])
    return torch.stack(pasted)


def _literal_torchvision_reference(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad, enlarge the box, truncate to int, interpolate, slice-assign: one mask at a time."""
    size = masks.shape[-1]
    scale = (size + 2) / size
    pasted = torch.zeros(len(masks), height, width)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        padded = F.pad(mask, (1, 1, 1, 1))
        center_x, center_y = (box[2] + box[0]) * 0.5, (box[3] + box[1]) * 0.5
        half_w, half_h = (box[2] - box[0]) * 0.5 * scale, (box[3] - box[1]) * 0.5 * scale
        x0, y0, x1, y1 = (
            torch.stack([center_x - half_w, center_y - half_h, center_x + half_w, center_y + half_h])
            .to(torch.int64)
            .tolist()
        )
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(padded[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        for y in range(max(y0, 0), min(y1 + 1, height)):
            for x in range(max(x0, 0), min(x1 + 1, width)):
                pasted[i, y, x] = resized[y - y0, x - x0]
    return pasted


def _assert_thresholded_agree(ours: torch.Tensor, reference_probabilities: torch.Tensor, threshold: float = 0.5):
    disagree = ours != (reference_probabilities >= threshold)
    near_threshold = (reference_probabilities - threshold).abs() <= 1e-5
    assert not (disagree & ~near_threshold).any(), int((disagree & ~near_threshold).sum())


def test_grid_mode_matches_per_mask_grid_sample():
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 28, 28, generator=generator)
    boxes = _random_boxes(generator, 40)
    reference = _grid_sample_reference(masks, boxes, HEIGHT, WIDTH)
    probabilities = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), threshold=-1, mode="grid")
    assert probabilities.dtype == torch.float32 and probabilities.shape == (40, HEIGHT, WIDTH)
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=0)
    binary = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), mode="grid")
    assert binary.dtype == torch.bool
    _assert_thresholded_agree(binary, reference)
    assert binary.any(dim=(1, 2)).sum() > 20  # the comparison is not vacuous


def test_grid_mode_non_square_masks_and_boxes_object():
    generator = torch.Generator().manual_seed(1)
    masks = torch.rand(6, 14, 20, generator=generator)
    boxes = _random_boxes(generator, 6)
    reference = _grid_sample_reference(masks, boxes, 30, 25)
    probabilities = paste_masks_in_image(masks, Boxes(boxes), (30, 25), threshold=-1)
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=0)


def test_torchvision_mode_matches_torchvision_paste():
    generator = torch.Generator().manual_seed(2)
    masks = torch.rand(60, 28, 28, generator=generator)
    boxes = _random_boxes(generator, 60)
    # torchvision's own implementation fails on boxes entirely outside the image; compare the others
    int_boxes = mask_ops._torchvision_boxes(boxes, 28)
    inside = (int_boxes[:, 0] < WIDTH) & (int_boxes[:, 2] >= 0) & (int_boxes[:, 1] < HEIGHT) & (int_boxes[:, 3] >= 0)
    masks, boxes = masks[inside], boxes[inside]
    assert len(masks) >= 40
    reference = torchvision_paste(masks[:, None], boxes, (HEIGHT, WIDTH))[:, 0]
    probabilities = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), threshold=-1, mode="torchvision")
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=0)
    binary = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), mode="torchvision")
    disagree = binary != (reference > 0.5)
    assert not (disagree & ((reference - 0.5).abs() > 1e-5)).any()
    assert binary.sum() > 1000


def test_torchvision_mode_matches_literal_loop_including_boxes_outside():
    generator = torch.Generator().manual_seed(3)
    masks = torch.rand(12, 7, 7, generator=generator)
    boxes = _random_boxes(generator, 12)
    boxes[0] = torch.tensor([-30.0, 5.0, -12.0, 20.0])  # left of the image
    boxes[1] = torch.tensor([WIDTH + 4.0, 2.0, WIDTH + 30.0, 9.0])  # right of the image
    boxes[2] = torch.tensor([3.2, 4.7, 3.3, 4.9])  # far below one pixel
    reference = _literal_torchvision_reference(masks, boxes, HEIGHT, WIDTH)
    probabilities = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), threshold=-1, mode="torchvision")
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=0)
    assert probabilities[0].abs().sum() == 0 and probabilities[1].abs().sum() == 0
    # threshold other than 0.5
    _assert_thresholded_agree(
        paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), threshold=0.3, mode="torchvision"), reference, 0.3
    )


def test_full_mask_fills_its_box():
    masks = torch.ones(2, 28, 28)
    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0], [0.0, 0.0, 64.0, 48.0]])
    pasted = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH))
    expected = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    expected[5:25, 10:30] = True
    assert torch.equal(pasted[0], expected)
    assert pasted[1].all()


def test_chunking_does_not_change_result(monkeypatch):
    generator = torch.Generator().manual_seed(4)
    masks = torch.rand(9, 14, 14, generator=generator)
    boxes = _random_boxes(generator, 9)
    whole = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), mode="torchvision")
    monkeypatch.setattr(mask_ops, "_CHUNK_ELEMENTS", HEIGHT * WIDTH * 2)
    chunked = paste_masks_in_image(masks, boxes, (HEIGHT, WIDTH), mode="torchvision")
    assert torch.equal(whole, chunked)


def test_empty_input_and_bad_arguments():
    empty = paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (20, 30))
    assert empty.shape == (0, 20, 30) and empty.dtype == torch.bool
    assert (
        paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (20, 30), threshold=-1).dtype == torch.float32
    )
    with pytest.raises(ValueError, match="mode 'nearest'"):
        paste_masks_in_image(torch.zeros(1, 4, 4), torch.zeros(1, 4), (8, 8), mode="nearest")
    with pytest.raises(ValueError, match="boxes must be"):
        paste_masks_in_image(torch.zeros(2, 4, 4), torch.zeros(1, 4), (8, 8))
