"""GeneralizedRCNN end to end on tiny inputs: losses, gradients, inference outputs."""

import math

import numpy as np
import pytest
import torch

from mrcnn.benchmark import tiny_config
from mrcnn.modeling import build_model
from mrcnn.structures import BitMasks, Boxes, Instances, PolygonMasks


def _square_polygon(x0, y0, x1, y1):
    return [np.array([x0, y0, x1, y0, x1, y1, x0, y1], dtype=np.float64)]


def _training_batch(mask_format="polygon"):
    torch.manual_seed(0)
    batch = []
    for boxes, classes, size in [
        ([[4, 6, 30, 40], [30, 10, 60, 50]], [0, 2], (64, 72)),
        ([[10, 10, 50, 30]], [1], (64, 64)),
    ]:
        inst = Instances(size)
        inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        inst.gt_classes = torch.tensor(classes)
        polygons = [_square_polygon(*b) for b in boxes]
        masks = PolygonMasks(polygons)
        inst.gt_masks = masks if mask_format == "polygon" else BitMasks.from_polygon_masks(masks, *size)
        image = torch.randint(0, 255, (3,) + size, dtype=torch.uint8)
        batch.append({"image": image, "instances": inst, "height": size[0], "width": size[1]})
    return batch


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
def test_training_returns_five_finite_losses_and_gradients_everywhere(mask_format):
    torch.manual_seed(0)
    model = build_model(tiny_config())
    model.train()
    losses = model(_training_batch(mask_format))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    for name, value in losses.items():
        assert value.dim() == 0 and math.isfinite(value.item()), name
    # a fresh classifier over 4 classes starts near log(4)
    assert losses["loss_cls"].item() == pytest.approx(math.log(4), rel=0.2)
    assert losses["loss_mask"].item() == pytest.approx(math.log(2), rel=0.2)
    sum(losses.values()).backward()
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert no_grad == []
    zero_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert zero_grad == []


def test_frozen_stages_get_no_gradient():
    cfg = tiny_config()
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    model = build_model(cfg).train()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("backbone.bottom_up.stem", "backbone.bottom_up.res2")) for n in frozen)
    assert any(n.startswith("backbone.bottom_up.res2") for n in frozen)


def test_inference_returns_instances_at_requested_size():
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    with torch.no_grad():
        outputs = model([{"image": image, "height": 128, "width": 192}, {"image": image}])
    big, same = outputs[0]["instances"], outputs[1]["instances"]
    assert big.image_size == (128, 192) and same.image_size == (64, 96)
    assert len(big) > 0 and len(big) <= cfg.TEST.DETECTIONS_PER_IMAGE
    assert big.pred_masks.shape == (len(big), 128, 192) and big.pred_masks.dtype == torch.bool
    assert big.pred_classes.max() < 3 and big.scores.min() >= 0
    boxes = big.pred_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 192).all() and (boxes[:, 3] <= 128).all()
    # the same image asked for at twice the size gives the same detections scaled by 2
    assert torch.allclose(boxes, same.pred_boxes.tensor * 2, atol=1e-3)


def test_mask_off_is_faster_rcnn():
    cfg = tiny_config()
    cfg.MODEL.MASK_ON = False
    model = build_model(cfg)
    assert not any(n.startswith("roi_heads.mask_head") for n, _ in model.named_parameters())
    losses = model.train()(_training_batch())
    assert "loss_mask" not in losses and len(losses) == 4
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}])[0]["instances"]
    assert not out.has("pred_masks")


def test_missing_instances_in_training_is_a_clear_error():
    model = build_model(tiny_config()).train()
    with pytest.raises(ValueError, match="instances"):
        model([{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}])
