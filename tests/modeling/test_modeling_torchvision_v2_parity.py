"""Our model built from the torchvision v2 config, loaded with converted torchvision weights,
reproduces torchvision's maskrcnn_resnet50_fpn_v2 (BatchNorm FPN and heads, 2-conv RPN head,
4conv+1fc box head): feature maps, proposals, boxes, scores, classes, masks, and a training step's
losses and gradients. The cases and tolerances are those of the v1 parity test."""

import copy
import os

import pytest
import torch
from torch import nn
from torchvision.models.detection import maskrcnn_resnet50_fpn_v2
from torchvision_parity_checks import (
    ROOT,
    check_detections,
    check_feature_maps,
    check_masks,
    check_portrait_with_saturated_objectness,
    check_proposals,
    check_training_step,
    convert_with_tool,
    image_tensor,
    run_both,
)

from mrcnn.benchmark import freeze_batchnorms, synthetic_training_batch, training_step
from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.config import get_cfg
from mrcnn.modeling import build_model

CONFIG = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision_v2.yaml")
HEIGHT, WIDTH = 800, 1067
TRAINING_SIZE = (192, 256)  # one small image keeps both models' forward and backward cheap


def _calibrate(module: nn.Module, *inputs) -> None:
    """One training-mode pass, so every BatchNorm inside keeps this batch's statistics."""
    module.train()
    module(*inputs)
    module.eval()


def _calibrated_torchvision_model(image: torch.Tensor) -> nn.Module:
    """A seeded random maskrcnn_resnet50_fpn_v2 whose BN statistics come from the image, with
    heads scaled so that scores spread and the detection order is well defined."""
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one pass stores that batch's statistics
            module.reset_running_stats()
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(30.0)
        model.rpn.head.bbox_pred.weight.mul_(5.0)
        images, _ = model.transform([image / 255.0])
        # Backbone statistics, then the heads' on RoIs pooled from those (train-mode) features.
        model.backbone.train()
        features = model.backbone(images.tensors)
        model.backbone.eval()
        proposals, _ = model.rpn(images, features)
        roi_heads = model.roi_heads
        _calibrate(roi_heads.box_head, roi_heads.box_roi_pool(features, proposals, images.image_sizes))
        top = [p[:200] for p in proposals]
        _calibrate(roi_heads.mask_head, roi_heads.mask_roi_pool(features, top, images.image_sizes))
        roi_heads.box_predictor.cls_score.weight.mul_(30.0)
        roi_heads.box_predictor.bbox_pred.weight.mul_(5.0)
        roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(4.0)
        # Without a bias, RoI cells whose features are all zero after ReLU give probability
        # exactly 0.5, and the threshold would decide them by rounding noise.
        roi_heads.mask_predictor.mask_fcn_logits.bias.uniform_(-1.0, 1.0)
    return model


def _as_torchvision_fine_tunes(torchvision_model: nn.Module) -> nn.Module:
    """A copy set up for training as torchvision sets up maskrcnn_resnet50_fpn_v2 with pretrained
    weights (trainable_backbone_layers=3): frozen BatchNorm in the ResNet, its stem and layer1
    frozen, as our config's FrozenBN and FREEZE_AT 2; the FPN and heads keep training BatchNorm."""
    torchvision_model = copy.deepcopy(torchvision_model)
    freeze_batchnorms(torchvision_model.backbone.body)
    for name, parameter in torchvision_model.backbone.body.named_parameters():
        parameter.requires_grad_(name.startswith(("layer2.", "layer3.", "layer4.")))
    return torchvision_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The calibrated torchvision v2 model and our model holding its converted weights; the
    checkpointer must convert the raw torchvision file the same way."""
    torchvision_model = _calibrated_torchvision_model(image_tensor(HEIGHT, WIDTH))
    model, torchvision_path, converted = convert_with_tool(
        torchvision_model, CONFIG, str(tmp_path_factory.mktemp("tv_v2"))
    )
    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    by_checkpointer = build_model(cfg).eval()
    DetectionCheckpointer(by_checkpointer).load(torchvision_path)
    for key, value in by_checkpointer.state_dict().items():
        assert torch.equal(value, converted[key]), key
    return torchvision_model, model


@pytest.fixture(scope="module")
def parity(models):
    return run_both(*models, image_tensor(HEIGHT, WIDTH))


def test_v2_feature_maps_match(parity):
    check_feature_maps(parity)


def test_v2_detections_match(parity):
    check_proposals(parity)
    check_detections(parity)
    # the scores spread, so the comparison above is about ordering as well as values
    scores = parity.torchvision_detections["scores"]
    assert scores.max() - scores.min() >= 0.1


def test_v2_masks_match(parity):
    check_masks(parity)


def test_v2_portrait_image_with_saturated_objectness_matches(models):
    """As in the v1 test: with the nominal 64-px strides 4 proposals move by 5 to 30 px; ranked by
    logit, 396 of 1000 proposals come in another order."""
    check_portrait_with_saturated_objectness(*models)


def test_v2_training_step_matches(models):
    """Training BatchNorm in the FPN and heads included: batch statistics over the same RoIs."""
    torchvision_model, model = models
    batch = synthetic_training_batch(1, *TRAINING_SIZE, instances_per_image=3, num_classes=90, seed=1)
    check_training_step(training_step(_as_torchvision_fine_tunes(torchvision_model), model, batch))


def test_v2_heads_are_config_keys():
    """The v2 layout comes from config keys of our heads, not from new modules."""
    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    model = build_model(cfg)
    names = dict(model.named_modules())
    assert isinstance(names["proposal_generator.rpn_head.conv.conv1"], nn.Conv2d)
    assert isinstance(names["backbone.fpn_lateral2.norm"], nn.BatchNorm2d)
    assert isinstance(names["roi_heads.box_head.conv4.norm"], nn.BatchNorm2d)
    assert "roi_heads.box_head.fc2" not in names and names["roi_heads.box_head.fc1"].out_features == 1024
    assert isinstance(names["roi_heads.mask_head.mask_fcn4.norm"], nn.BatchNorm2d)
    assert names["backbone.fpn_output3"].bias is None  # a conv followed by a norm has no bias
