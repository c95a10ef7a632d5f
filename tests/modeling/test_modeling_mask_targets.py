"""Mask-head training targets: detectron2's binary crop-and-resize (the default) and torchvision's
soft RoIAlign of the whole-image mask, equal to torchvision's own targets and loss."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import maskrcnn_loss, project_masks_on_boxes

from mrcnn.config import get_cfg
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.roi_heads import mask_targets as mask_targets_module
from mrcnn.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead, build_mask_head, mask_rcnn_loss
from mrcnn.modeling.roi_heads.mask_targets import mask_targets, roi_align_image_masks
from mrcnn.structures import BitMasks, Boxes, Instances, PolygonMasks

HEIGHT, WIDTH = 50, 70
MASK_SIZE = 14


def _ellipse(cx, cy, rx, ry, vertices=20):
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).reshape(-1)


def _gt_polygons():
    """Three instances: an ellipse, two polygons (an ellipse and a triangle), a thin ellipse at the border."""
    return PolygonMasks(
        [
            [_ellipse(20.3, 18.7, 12.2, 9.6)],
            [_ellipse(50.0, 30.0, 8.0, 14.0), np.array([30.0, 40.0, 45.0, 48.5, 28.5, 49.0])],
            [_ellipse(66.0, 10.0, 6.5, 3.2)],
        ]
    )


def _rois():
    """RoIs as the RoI heads hand them over: boxes near (and past) each instance, the gt masks
    indexed per RoI, so RoIs of one instance share its polygons."""
    generator = torch.Generator().manual_seed(0)
    owner = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2, 2, 0])
    centres = torch.tensor([[20.3, 18.7], [46.0, 36.0], [66.0, 10.0]])[owner]
    half = torch.tensor([[13.0, 10.0], [12.0, 15.0], [7.0, 4.0]])[owner]
    jitter = torch.randn(len(owner), 4, generator=generator) * 3
    boxes = torch.cat([centres - half, centres + half], dim=1) + jitter
    return owner, boxes


def _torchvision_targets(owner, boxes, image_masks):
    return project_masks_on_boxes(image_masks, boxes, owner, MASK_SIZE)


def test_polygon_targets_equal_torchvision():
    owner, boxes = _rois()
    gt = _gt_polygons()
    image_masks = torch.from_numpy(BitMasks.from_polygon_masks(gt, HEIGHT, WIDTH).tensor.numpy().astype(np.uint8))
    ours = roi_align_image_masks(gt[owner], boxes, MASK_SIZE, (HEIGHT, WIDTH))
    expected = _torchvision_targets(owner, boxes, image_masks)
    assert torch.equal(ours, expected)
    # soft targets: RoIAlign averages the mask across the object's edge
    assert ((ours > 0) & (ours < 1)).any() and ours.min() >= 0 and ours.max() <= 1


def test_bitmask_targets_equal_torchvision_across_chunks():
    owner, boxes = _rois()
    owner, boxes = owner.repeat(4), boxes.repeat(4, 1)  # 40 RoIs: more than one chunk
    image_masks = BitMasks.from_polygon_masks(_gt_polygons(), HEIGHT, WIDTH)
    ours = roi_align_image_masks(image_masks[owner], boxes, MASK_SIZE, (HEIGHT, WIDTH))
    assert torch.equal(ours, _torchvision_targets(owner, boxes, image_masks.tensor.to(torch.uint8)))


def test_each_instance_is_rasterised_once(monkeypatch):
    calls = []
    rasterise = mask_targets_module.polygons_to_bitmask_in_window

    def counting(polygons, height, width):
        calls.append((height, width))
        return rasterise(polygons, height, width)

    monkeypatch.setattr(mask_targets_module, "polygons_to_bitmask_in_window", counting)
    owner, boxes = _rois()
    roi_align_image_masks(_gt_polygons()[owner], boxes, MASK_SIZE, (HEIGHT, WIDTH))
    assert calls == [(HEIGHT, WIDTH)] * 3


def _foreground_rois():
    owner, boxes = _rois()
    instances = Instances((HEIGHT, WIDTH))
    instances.proposal_boxes = Boxes(boxes)
    instances.gt_masks = _gt_polygons()[owner]
    instances.gt_classes = torch.tensor([3, 0, 3, 1, 0, 0, 3, 1, 1, 3])[: len(owner)]
    return owner, instances


def test_default_targets_are_crop_and_resize():
    _, instances = _foreground_rois()
    targets = mask_targets(instances, MASK_SIZE, "crop_and_resize")
    expected = instances.gt_masks.crop_and_resize(instances.proposal_boxes.tensor, MASK_SIZE)
    assert targets.dtype == torch.float32 and torch.equal(targets, expected.float())
    with pytest.raises(ValueError, match="MODEL.ROI_MASK_HEAD.TARGET_MODE"):
        mask_targets(instances, MASK_SIZE, "paste")


def test_loss_equals_torchvision_maskrcnn_loss():
    owner, instances = _foreground_rois()
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(len(owner), 4, MASK_SIZE, MASK_SIZE, generator=generator) * 3
    ours = mask_rcnn_loss(logits, [instances], "roi_align_image_mask")
    image_masks = BitMasks.from_polygon_masks(_gt_polygons(), HEIGHT, WIDTH).tensor.to(torch.uint8)
    # torchvision's labels count background as 0; its logits carry one channel more
    torchvision_logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
    gt_labels = torch.tensor([3, 0, 1]) + 1
    expected = maskrcnn_loss(torchvision_logits, [instances.proposal_boxes.tensor], [image_masks], [gt_labels], [owner])
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=0)
    detectron2_style = mask_rcnn_loss(logits, [instances], "crop_and_resize")
    assert abs(float(detectron2_style - expected)) > 1e-4 * float(expected)


def test_target_mode_from_config():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 4
    shape = ShapeSpec(channels=8, height=7, width=7)
    assert build_mask_head(cfg, shape).target_mode == "crop_and_resize"
    cfg.MODEL.ROI_MASK_HEAD.TARGET_MODE = "roi_align_image_mask"
    assert build_mask_head(cfg, shape).target_mode == "roi_align_image_mask"
    with pytest.raises(ValueError, match="MODEL.ROI_MASK_HEAD.TARGET_MODE"):
        MaskRCNNConvUpsampleHead(shape, num_classes=4, conv_dims=[8, 8], target_mode="roi_align")


def test_no_rois_give_empty_targets():
    empty = roi_align_image_masks(_gt_polygons()[[]], torch.zeros(0, 4), MASK_SIZE, (HEIGHT, WIDTH))
    assert empty.shape == (0, MASK_SIZE, MASK_SIZE)
    with pytest.raises(ValueError, match="2 boxes for 3 masks"):
        roi_align_image_masks(_gt_polygons(), torch.zeros(2, 4), MASK_SIZE, (HEIGHT, WIDTH))


@pytest.mark.parametrize("mode", ["roi_align_image_mask", "crop_and_resize"])
def test_targets_of_several_images_equal_image_by_image(mode):
    """Images of one size resampled together, another size apart, bit masks on their own: the
    targets of each image's mask_targets, concatenated in order."""
    from mrcnn.modeling.roi_heads.mask_targets import mask_targets_of_images

    owner, boxes = _rois()
    images = []
    for size, masks, rows in [
        ((HEIGHT, WIDTH), _gt_polygons(), slice(0, 4)),
        ((HEIGHT, WIDTH), _gt_polygons(), slice(4, 10)),
        ((HEIGHT + 10, WIDTH), _gt_polygons(), slice(2, 7)),
        ((HEIGHT, WIDTH), BitMasks.from_polygon_masks(_gt_polygons(), HEIGHT, WIDTH), slice(0, 10)),
        ((HEIGHT, WIDTH), _gt_polygons(), slice(3, 8)),
    ]:
        instances = Instances(size)
        instances.proposal_boxes = Boxes(boxes[rows])
        instances.gt_masks = masks[owner[rows]]
        images.append(instances)
    together = mask_targets_of_images(images, MASK_SIZE, mode)
    one_by_one = torch.cat([mask_targets(instances, MASK_SIZE, mode) for instances in images])
    assert together.dtype == torch.float32 and torch.equal(together, one_by_one)
