"""Our model built from the torchvision v2 config, loaded with converted torchvision weights,
reproduces torchvision's maskrcnn_resnet50_fpn_v2 (BatchNorm FPN and heads, 2-conv RPN head,
4conv+1fc box head): feature maps, boxes, scores, classes, masks. Tolerances are those of the
v1 parity test."""
import importlib.util
import os

import pytest
import torch
from torch import nn

torchvision = pytest.importorskip("torchvision")
from torchvision.models.detection import maskrcnn_resnet50_fpn_v2  # noqa: E402

from mrcnn.checkpoint import DetectionCheckpointer  # noqa: E402
from mrcnn.config import get_cfg  # noqa: E402
from mrcnn.modeling import build_model  # noqa: E402
from mrcnn.benchmark import natural_image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision_v2.yaml")
HEIGHT, WIDTH = 800, 1067
LEVELS = [("0", "p2"), ("1", "p3"), ("2", "p4"), ("3", "p5"), ("pool", "p6")]


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "convert_torchvision_weights_v2", os.path.join(ROOT, "tools", "convert_torchvision_weights.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _capture_output(module: nn.Module, store: dict):
    return module.register_forward_hook(lambda _m, _inputs, output: store.update(output))


def run_parity(tmp_dir: str):
    """torchvision's and our outputs on one image: (tv features, our features, tv dict, Instances)."""
    torch.set_grad_enabled(False)
    try:
        image = torch.from_numpy(natural_image(HEIGHT, WIDTH, seed=3)).permute(2, 0, 1).float()
        tv_model = _calibrated_torchvision_model(image)
        tv_path, our_path = os.path.join(tmp_dir, "tv_v2.pth"), os.path.join(tmp_dir, "ours_v2.pth")
        torch.save(tv_model.state_dict(), tv_path)
        assert _load_tool().main([tv_path, our_path]) == 0

        cfg = get_cfg()
        cfg.merge_from_file(CONFIG)
        model = build_model(cfg).eval()
        converted = torch.load(our_path, weights_only=True)["model"]
        model.load_state_dict(converted, strict=True)
        # The checkpointer recognises the raw torchvision file and converts it the same way.
        by_checkpointer = build_model(cfg).eval()
        DetectionCheckpointer(by_checkpointer).load(tv_path)
        for key, value in by_checkpointer.state_dict().items():
            assert torch.equal(value, converted[key]), key

        # One forward per model; the backbone hooks keep its feature maps.
        tv_features, our_features = {}, {}
        tv_hook = _capture_output(tv_model.backbone, tv_features)
        our_hook = _capture_output(model.backbone, our_features)
        tv_out = tv_model([image / 255.0])[0]
        our_out = model([{"image": image, "height": HEIGHT, "width": WIDTH}])[0]["instances"]
        tv_hook.remove()
        our_hook.remove()
    finally:
        torch.set_grad_enabled(True)
    return tv_features, our_features, tv_out, our_out


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    return run_parity(str(tmp_path_factory.mktemp("tv_v2")))


def test_v2_feature_maps_match(parity):
    tv_features, our_features, _, _ = parity
    for tv_name, our_name in LEVELS:
        a, b = tv_features[tv_name], our_features[our_name]
        assert a.shape == b.shape
        relative = (a - b).abs().max() / a.abs().max()
        assert relative <= 1e-4, f"{our_name}: relative error {relative:.2e}"


def test_v2_detections_match(parity):
    _, _, tv_out, ours = parity
    num = len(tv_out["boxes"])
    assert num >= 50, f"only {num} torchvision detections; the test needs at least 50"
    assert len(ours) == num
    assert torch.equal(ours.pred_classes + 1, tv_out["labels"])
    assert (ours.pred_boxes.tensor - tv_out["boxes"]).abs().max() <= 0.01
    assert (ours.scores - tv_out["scores"]).abs().max() <= 1e-4
    # the scores spread, so the comparison above is about ordering as well as values
    assert tv_out["scores"].max() - tv_out["scores"].min() >= 0.1


def test_v2_masks_match(parity):
    _, _, tv_out, ours = parity
    tv_masks = tv_out["masks"][:, 0] >= 0.5
    our_masks = ours.pred_masks
    assert our_masks.shape == tv_masks.shape and our_masks.dtype == torch.bool
    intersection = (tv_masks & our_masks).flatten(1).sum(1).float()
    union = (tv_masks | our_masks).flatten(1).sum(1).float()
    nonempty = union > 0
    assert nonempty.sum() >= 50, "too few non-empty masks to compare"
    iou = intersection[nonempty] / union[nonempty]
    assert iou.min() >= 0.99, f"lowest mask IoU {iou.min():.4f}"


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
