"""At inference the mask head computes only each detection's own class channel, equal to slicing
the full K-class output."""

import torch

from mrcnn.layers import ShapeSpec
from mrcnn.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from mrcnn.structures import Boxes, Instances


def _instances(classes):
    instances = Instances((64, 64))
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    instances.pred_boxes = Boxes(torch.zeros(len(classes), 4))
    return instances


def test_predicted_class_masks_equal_full_output():
    torch.manual_seed(0)
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=16, height=7, width=7), num_classes=5, conv_dims=[16, 16, 12])
    with torch.no_grad():
        head.predictor.bias.uniform_(-1, 1)
        head.predictor.weight.mul_(300)  # logits of order one, so the comparison means something
    head.eval()
    x = torch.randn(7, 16, 7, 7)
    images = [_instances([4, 0, 2]), _instances([]), _instances([1, 1, 3, 0])]
    classes = torch.cat([i.pred_classes for i in images])
    with torch.no_grad():
        full = head.layers(x)  # (7, 5, 14, 14)
        expected = full[torch.arange(7), classes].sigmoid()
        head(x, images)
    assert full.shape == (7, 5, 14, 14)
    masks = torch.cat([i.pred_masks for i in images])
    assert masks.shape == (7, 1, 14, 14) and images[1].pred_masks.shape == (0, 1, 14, 14)
    torch.testing.assert_close(masks[:, 0], expected, atol=1e-5, rtol=1e-5)
    assert 0.05 < expected.mean() < 0.95


def test_class_agnostic_head_keeps_its_single_channel():
    torch.manual_seed(1)
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=8, height=5, width=5), num_classes=1, conv_dims=[8, 8]).eval()
    x = torch.randn(3, 8, 5, 5)
    images = [_instances([2, 0, 1])]
    with torch.no_grad():
        expected = head.layers(x).sigmoid()
        head(x, images)
    torch.testing.assert_close(images[0].pred_masks, expected)
