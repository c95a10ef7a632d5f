"""Test-time augmentation (TEST.AUG): box mapping of resized and mirrored passes, the two merges,
and a single plain pass reproducing the model's own inference."""

import pytest
import torch

from mrcnn.benchmark import natural_image, tiny_config
from mrcnn.data.transforms import ResizeShortestEdge
from mrcnn.modeling import build_model
from mrcnn.modeling.test_time_augmentation import (
    GeneralizedRCNNWithTTA,
    _from_output,
    _to_output,
)
from mrcnn.utils.resize_shape import shortest_edge_resized_shape


def _tiny_model(cascade: bool = False):
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    if cascade:
        cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
        cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
        cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = [0.5, 0.6]
        cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = [[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0]]
    return cfg, build_model(cfg).eval()


def _image(height=64, width=96):
    return torch.from_numpy(natural_image(height, width, seed=1)).permute(2, 0, 1).contiguous()


def test_boxes_of_a_mirrored_resized_pass_map_to_the_output_and_back():
    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0], [0.0, 0.0, 96.0, 64.0]])
    # a pass at twice the size, mirrored: x1 = 192 - 60 = 132 in the pass, 66 in the output
    in_pass = torch.tensor([[132.0, 10.0, 172.0, 50.0], [0.0, 0.0, 192.0, 128.0]])
    torch.testing.assert_close(_to_output(in_pass, (128, 192), True, (64, 96)), boxes)
    torch.testing.assert_close(_from_output(boxes, (128, 192), True, (64, 96)), in_pass)
    torch.testing.assert_close(_to_output(boxes * 1.5, (96, 144), False, (64, 96)), boxes)


@pytest.mark.parametrize(
    "height, width, size, max_size", [(64, 96, 80, 1000), (480, 640, 800, 1333), (1, 5000, 800, 1333)]
)
def test_pass_sizes_are_those_of_the_test_resize(height, width, size, max_size):
    expected = ResizeShortestEdge.get_output_shape(height, width, size, max_size)
    assert shortest_edge_resized_shape(height, width, size, max_size) == expected


def _wrapper(model, merge, **kwargs):
    defaults = {"min_sizes": (64,), "max_size": 1000, "flip": False, "merge": merge}
    return GeneralizedRCNNWithTTA(model, **{**defaults, **kwargs})


def test_average_merge_averages_matched_boxes_of_the_same_class_only():
    _, model = _tiny_model()
    tta = _wrapper(model, "average", match_iou=0.7)
    reference = (
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]]),
        torch.tensor([0.9, 0.5]),
        torch.tensor([0, 1]),
    )
    other = (
        torch.tensor([[0.0, 0.0, 10.0, 11.0], [20.0, 20.0, 40.0, 42.0], [60.0, 60.0, 70.0, 70.0]]),
        torch.tensor([0.7, 0.9, 0.8]),
        torch.tensor([0, 2, 1]),  # the second overlaps box 1 but is another class
    )
    far = (torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.tensor([0.1]), torch.tensor([0]))  # IoU 0.25 with box 0
    boxes, scores, classes = tta._merge([reference, other, far])
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 10.0, 10.5], [20.0, 20.0, 40.0, 40.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.8, 0.5]))
    assert classes.tolist() == [0, 1]  # detections only other passes found are not added


def test_nms_merge_pools_the_passes_and_keeps_the_best_per_cluster():
    _, model = _tiny_model()
    tta = _wrapper(model, "nms", nms_thresh=0.5, detections_per_image=2)
    first = (torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([0.6]), torch.tensor([0]))
    second = (
        torch.tensor([[0.0, 0.0, 10.0, 11.0], [50.0, 50.0, 60.0, 60.0], [80.0, 0.0, 90.0, 9.0]]),
        torch.tensor([0.9, 0.3, 0.2]),
        torch.tensor([0, 1, 1]),
    )
    boxes, scores, classes = tta._merge([first, second])
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 10.0, 11.0], [50.0, 50.0, 60.0, 60.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.3]))


@pytest.mark.parametrize("cascade", [False, True])
@pytest.mark.parametrize("merge", ["nms", "average"])
def test_one_plain_pass_is_the_model_itself(cascade, merge):
    cfg, model = _tiny_model(cascade)
    inputs = [{"image": _image(), "height": 128, "width": 192}]
    tta = _wrapper(model, merge, nms_thresh=cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST)
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
        got = tta(inputs)[0]["instances"]
    assert len(expected) > 0 and got.image_size == expected.image_size == (128, 192)
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor)
    torch.testing.assert_close(got.scores, expected.scores)
    assert torch.equal(got.pred_classes, expected.pred_classes)
    assert torch.equal(got.pred_masks, expected.pred_masks)


def test_flipped_and_resized_passes_give_boxes_in_the_image_and_masks_of_its_size():
    cfg, model = _tiny_model(cascade=True)
    inputs = [{"image": _image(), "height": 64, "width": 96}]
    tta = _wrapper(model, "average", min_sizes=(64, 80), flip=True, match_iou=0.3)  # an untrained model
    assert tta.passes == [(64, False), (64, True), (80, False), (80, True)]
    with torch.no_grad():
        plain = model(inputs)[0]["instances"]
        merged = tta(inputs)[0]["instances"]
    assert len(merged) == len(plain)  # "average" keeps the first pass's detections
    assert merged.pred_masks.shape == (len(merged), 64, 96)
    boxes = merged.pred_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
    moved = (boxes - plain.pred_boxes.tensor).abs().sum(dim=1) > 1e-3
    assert moved.any()  # the other passes moved some of them


def test_a_mirrored_pass_is_the_model_on_the_mirrored_image_mirrored_back():
    cfg, model = _tiny_model()
    image = _image()
    tta = _wrapper(model, "nms", nms_thresh=cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST)
    tta.passes = [(64, True)]  # the mirrored pass alone
    with torch.no_grad():
        expected = model([{"image": image.flip(-1)}])[0]["instances"]
        got = tta([{"image": image}])[0]["instances"]
    assert len(expected) > 0
    x0, y0, x1, y1 = expected.pred_boxes.tensor.unbind(1)
    torch.testing.assert_close(got.pred_boxes.tensor, torch.stack([96 - x1, y0, 96 - x0, y1], dim=1))
    torch.testing.assert_close(got.scores, expected.scores)
    agreement = (got.pred_masks == expected.pred_masks.flip(-1)).float().mean()
    assert agreement > 0.995  # pasting is not exactly mirror-symmetric at pixel borders


def test_bad_settings_are_named():
    _, model = _tiny_model()
    with pytest.raises(ValueError, match="TEST.AUG.MERGE"):
        _wrapper(model, "vote")
    with pytest.raises(ValueError, match="TEST.AUG.MIN_SIZES"):
        _wrapper(model, "nms", min_sizes=())
