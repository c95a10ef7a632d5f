import numpy as np
import pytest
import torch

from mrcnn.structures import Boxes, BoxMode, pairwise_intersection, pairwise_ioa, pairwise_iou


def test_box_mode_round_trip_keeps_type_and_values():
    xywh = [10.0, 20.0, 30.0, 40.0]
    xyxy = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(xyxy, list) and xyxy == [10.0, 20.0, 40.0, 60.0]
    assert BoxMode.convert(tuple(xyxy), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS) == (10.0, 20.0, 30.0, 40.0)

    array = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 5.5, 0.5]])
    converted = BoxMode.convert(array, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(converted, np.ndarray)
    np.testing.assert_allclose(converted, [[1, 2, 4, 6], [0, 0, 5.5, 0.5]])
    np.testing.assert_allclose(array, [[1, 2, 3, 4], [0, 0, 5.5, 0.5]])  # input untouched
    np.testing.assert_allclose(BoxMode.convert(converted, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS), array)

    tensor = torch.rand(7, 4) * 50
    back = BoxMode.convert(BoxMode.convert(tensor, 1, 0), 0, 1)
    assert isinstance(back, torch.Tensor)
    torch.testing.assert_close(back, tensor)
    single = BoxMode.convert(torch.tensor([1.0, 1.0, 2.0, 2.0]), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert single.tolist() == [1.0, 1.0, 3.0, 3.0]


def test_box_mode_rejects_wrong_length():
    with pytest.raises(ValueError, match="4"):
        BoxMode.convert([1.0, 2.0, 3.0], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)


def test_pairwise_iou_matches_hand_computed_values():
    boxes1 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]]))
    boxes2 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 5.0, 10.0], [20.0, 20.0, 30.0, 30.0]]))
    expected = torch.tensor([[1.0, 0.5, 0.0], [25.0 / 175.0, 0.0, 0.0]])
    torch.testing.assert_close(pairwise_iou(boxes1, boxes2), expected)
    torch.testing.assert_close(
        pairwise_intersection(boxes1, boxes2), torch.tensor([[100.0, 50.0, 0.0], [25.0, 0.0, 0.0]])
    )
    torch.testing.assert_close(pairwise_ioa(boxes1, boxes2), torch.tensor([[1.0, 1.0, 0.0], [0.25, 0.0, 0.0]]))


def test_pairwise_iou_of_degenerate_boxes_is_zero():
    boxes = Boxes(torch.tensor([[3.0, 3.0, 3.0, 3.0]]))
    assert pairwise_iou(boxes, boxes).item() == 0.0
    assert pairwise_ioa(boxes, boxes).item() == 0.0


def test_area_clip_nonempty_centers_scale():
    boxes = Boxes(torch.tensor([[-5.0, 2.0, 12.0, 30.0], [1.0, 1.0, 1.5, 9.0], [4.0, 4.0, 4.0, 8.0]]))
    torch.testing.assert_close(boxes.area(), torch.tensor([17.0 * 28.0, 0.5 * 8.0, 0.0]))
    torch.testing.assert_close(boxes.get_centers(), torch.tensor([[3.5, 16.0], [1.25, 5.0], [4.0, 6.0]]))
    assert boxes.nonempty().tolist() == [True, True, False]
    assert boxes.nonempty(threshold=1.0).tolist() == [True, False, False]
    assert boxes.inside_box((40, 20)).tolist() == [False, True, True]
    boxes.clip((20, 10))
    torch.testing.assert_close(boxes.tensor[0], torch.tensor([0.0, 2.0, 10.0, 20.0]))
    boxes.scale(2.0, 0.5)
    torch.testing.assert_close(boxes.tensor[1], torch.tensor([2.0, 0.5, 3.0, 4.5]))


def test_indexing_cat_and_empty():
    tensor = torch.arange(20, dtype=torch.float32).view(5, 4)
    boxes = Boxes(tensor)
    assert len(boxes[1]) == 1 and boxes[1].tensor.tolist() == [[4.0, 5.0, 6.0, 7.0]]
    assert boxes[1:3].tensor.shape == (2, 4)
    mask = torch.tensor([True, False, True, False, True])
    torch.testing.assert_close(boxes[mask].tensor, tensor[[0, 2, 4]])
    torch.testing.assert_close(boxes[torch.tensor([4, 0])].tensor, tensor[[4, 0]])
    assert [b.tolist() for b in boxes][2] == [8.0, 9.0, 10.0, 11.0]

    empty = Boxes(torch.zeros(0))
    assert empty.tensor.shape == (0, 4) and len(empty) == 0
    joined = Boxes.cat([boxes, empty, boxes[0]])
    assert len(joined) == 6
    torch.testing.assert_close(joined.tensor[-1], tensor[0])
    clone = boxes.clone()
    clone.tensor[0, 0] = 100.0
    assert boxes.tensor[0, 0] == 0.0
    assert boxes.to("cpu").device == torch.device("cpu")
    assert Boxes(torch.tensor([[1, 2, 3, 4]])).tensor.dtype == torch.float32


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Boxes(torch.zeros(3, 5))


def test_pairwise_iou_tensors_is_torchvisions_box_iou_over_a_batch():
    """Bit for bit torchvision's box_iou (0 where the union is empty), for every image of a batch."""
    from torchvision.ops import box_iou

    from mrcnn.structures import pairwise_iou_tensors

    generator = torch.Generator().manual_seed(0)
    boxes1 = torch.rand(2, 6, 4, generator=generator) * 50
    boxes1[..., 2:] += boxes1[..., :2]
    boxes1[0, 0] = torch.tensor([3.0, 3.0, 3.0, 3.0])  # degenerate
    boxes2 = torch.rand(30, 4, generator=generator) * 60
    boxes2[:, 2:] += boxes2[:, :2] * torch.rand(30, 2, generator=generator)
    boxes2[0] = boxes1[0, 0]
    iou = pairwise_iou_tensors(boxes1, boxes2)
    assert iou.shape == (2, 6, 30)
    for image in range(2):
        expected = torch.nan_to_num(box_iou(boxes1[image], boxes2), nan=0.0)
        assert torch.equal(iou[image], expected)
        assert torch.equal(pairwise_iou(Boxes(boxes1[image]), Boxes(boxes2)), expected)
    assert iou[0, 0, 0] == 0.0
    assert pairwise_iou_tensors(boxes1, boxes2[:0]).shape == (2, 6, 0)
