"""Res5ROIHeads (C4): detectron2's parameter names and shapes, the shared res5 stage in training
and inference, and its errors."""

import pytest
import torch
from zoo_model_toys import calibrated_model, narrow_zoo_config

from mrcnn.benchmark import natural_image, synthetic_training_batch
from mrcnn.config import get_cfg
from mrcnn.layers import FrozenBatchNorm2d
from mrcnn.modeling import build_model
from mrcnn.modeling.meta_arch.build import META_ARCH_REGISTRY
from mrcnn.modeling.roi_heads import Res5ROIHeads


def tiny_c4_config(mask_on: bool = True):
    """detectron2's R50-C4 zoo config with narrow widths: res4 128 channels, res5 256."""
    name = "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x" if mask_on else "COCO-Detection/faster_rcnn_R_50_C4_1x"
    return narrow_zoo_config(name + ".yaml")


def test_c4_model_has_detectron2_names_and_shapes():
    cfg = get_cfg()  # the defaults are detectron2's C4 model: R50, res4 for the RPN, res5 per RoI
    cfg.MODEL.MASK_ON = True
    with torch.device("meta"):
        model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert isinstance(model.roi_heads, Res5ROIHeads)
    assert not any(name.startswith("backbone.res5") for name in shapes)
    assert shapes["backbone.res4.5.conv3.weight"] == (1024, 256, 1, 1)
    assert shapes["proposal_generator.rpn_head.conv.weight"] == (1024, 1024, 3, 3)
    assert shapes["proposal_generator.rpn_head.objectness_logits.weight"] == (15, 1024, 1, 1)  # 5 sizes x 3 ratios
    assert shapes["roi_heads.res5.0.conv1.weight"] == (512, 1024, 1, 1)
    assert shapes["roi_heads.res5.0.shortcut.weight"] == (2048, 1024, 1, 1)
    assert shapes["roi_heads.res5.0.shortcut.norm.running_mean"] == (2048,)
    assert shapes["roi_heads.res5.2.conv3.norm.running_var"] == (2048,)
    assert "roi_heads.res5.3.conv1.weight" not in shapes
    assert shapes["roi_heads.box_predictor.cls_score.weight"] == (81, 2048)
    assert shapes["roi_heads.box_predictor.bbox_pred.weight"] == (320, 2048)
    assert shapes["roi_heads.mask_head.deconv.weight"] == (2048, 256, 2, 2)
    assert shapes["roi_heads.mask_head.predictor.weight"] == (80, 256, 1, 1)
    assert not any(name.startswith("roi_heads.mask_head.mask_fcn") for name in shapes)
    # FrozenBN in res5 as in the backbone; the head's first block is strided in its 1x1 (MSRA)
    assert isinstance(model.roi_heads.res5[0].conv1.norm, FrozenBatchNorm2d)
    assert model.roi_heads.res5[0].conv1.stride == (2, 2) and model.roi_heads.pooler.output_size == (14, 14)


def test_training_shares_res5_between_box_and_mask_branches():
    cfg = tiny_c4_config()
    torch.manual_seed(0)
    model = build_model(cfg).train()
    calls = []
    model.roi_heads.res5.register_forward_hook(lambda module, args, out: calls.append(("res5", out.shape)))
    model.roi_heads.mask_head.register_forward_pre_hook(
        lambda module, args: calls.append(("mask", args[0].shape, sum(len(i) for i in args[1])))
    )
    losses = model(synthetic_training_batch(2, 96, 128, num_classes=3, seed=2))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(value) for value in losses.values())
    (kind, res5_shape), (_, mask_input_shape, foreground) = calls  # res5 ran once, for both branches
    assert kind == "res5" and res5_shape[0] == 2 * 32 and tuple(res5_shape[1:]) == (256, 7, 7)
    assert 0 < foreground < res5_shape[0] and tuple(mask_input_shape) == (foreground, 256, 7, 7)
    sum(losses.values()).backward()
    assert model.roi_heads.res5[0].conv1.weight.grad.abs().sum() > 0


def test_inference_runs_res5_again_on_the_detections():
    model = calibrated_model(tiny_c4_config())
    pooled = []
    model.roi_heads.res5.register_forward_hook(lambda module, args, out: pooled.append(out.shape[0]))
    image = torch.from_numpy(natural_image(80, 112, seed=0)).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        instances = model([{"image": image, "height": 160, "width": 224}])[0]["instances"]
    assert len(pooled) == 2 and pooled[0] == 64 and pooled[1] == len(instances)  # proposals, then detections
    assert len(instances) > 10 and instances.scores.max() < 1.0 and instances.scores.min() < 0.5
    assert instances.pred_masks.shape == (len(instances), 160, 224) and instances.pred_masks.any()


def test_box_only_c4_has_no_mask_head():
    model = calibrated_model(tiny_c4_config(mask_on=False))
    assert not hasattr(model.roi_heads, "mask_head")
    image = torch.from_numpy(natural_image(64, 64, seed=1)).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        instances = model([{"image": image}])[0]["instances"]
    assert len(instances) > 0 and not instances.has("pred_masks")


def test_errors_name_the_keys():
    cfg = tiny_c4_config()
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["res3", "res4"]
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.IN_FEATURES"):
        build_model(cfg)
    cfg = tiny_c4_config()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3"]
    cfg.MODEL.RPN.IN_FEATURES = ["res3"]
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["res3"]
    with pytest.raises(ValueError, match="RES2_OUT_CHANNELS"):
        build_model(cfg)
