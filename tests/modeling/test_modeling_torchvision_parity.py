"""Our model built from the torchvision config, loaded with converted torchvision weights,
reproduces torchvision's maskrcnn_resnet50_fpn: feature maps, boxes, scores, classes, masks."""
import importlib.util
import os

import pytest
import torch
from torch import nn

torchvision = pytest.importorskip("torchvision")
from torchvision.models.detection import MaskRCNN  # noqa: E402
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor  # noqa: E402
from torchvision.models.resnet import resnet50  # noqa: E402
from torchvision.ops import FrozenBatchNorm2d  # noqa: E402

from mrcnn.config import get_cfg  # noqa: E402
from mrcnn.modeling import build_model  # noqa: E402
from mrcnn.benchmark import freeze_batchnorms  # noqa: E402
from mrcnn.benchmark import natural_image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision.yaml")
HEIGHT, WIDTH = 800, 1067


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "convert_torchvision_weights", os.path.join(ROOT, "tools", "convert_torchvision_weights.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calibrated_torchvision_model(image: torch.Tensor) -> nn.Module:
    """A seeded random torchvision Mask R-CNN whose frozen BN statistics come from the image,
    with heads scaled so that scores spread and the detection order is well defined."""
    torch.manual_seed(0)
    body = resnet50(weights=None, norm_layer=lambda c: nn.BatchNorm2d(c, momentum=None))
    # One pass in training mode measures realistic per-channel statistics for every BN.
    body.train()
    with torch.no_grad():
        normalized = (image / 255.0 - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor(
            [0.229, 0.224, 0.225]
        )[:, None, None]
        body(normalized[None])
    for module in body.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.2, 0.2)
    body = freeze_batchnorms(body)
    backbone = _resnet_fpn_extractor(body, 3)
    model = MaskRCNN(backbone, num_classes=91)
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(30.0)
        model.rpn.head.bbox_pred.weight.mul_(5.0)
        model.roi_heads.box_predictor.cls_score.weight.mul_(400.0)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(50.0)
        model.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(4.0)
        # Without a bias, RoI cells whose features are all zero after ReLU give probability
        # exactly 0.5, and the threshold would decide them by rounding noise.
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.uniform_(-1.0, 1.0)
    return model.eval()


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    torch.set_grad_enabled(False)
    image = torch.from_numpy(natural_image(HEIGHT, WIDTH, seed=3)).permute(2, 0, 1).float()
    tv_model = _calibrated_torchvision_model(image)
    tmp = tmp_path_factory.mktemp("tv")
    tv_path, our_path = str(tmp / "tv.pth"), str(tmp / "ours.pth")
    torch.save(tv_model.state_dict(), tv_path)
    assert _load_tool().main([tv_path, our_path]) == 0

    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    model = build_model(cfg).eval()
    checkpoint = torch.load(our_path, weights_only=True)
    model.load_state_dict(checkpoint["model"], strict=True)

    tv_images, _ = tv_model.transform([image / 255.0])
    tv_features = tv_model.backbone(tv_images.tensors)
    tv_out = tv_model([image / 255.0])[0]
    inputs = [{"image": image, "height": HEIGHT, "width": WIDTH}]
    our_features = model.backbone(model.preprocess_image(inputs).tensor)
    our_out = model(inputs)[0]["instances"]
    torch.set_grad_enabled(True)
    return tv_features, our_features, tv_out, our_out


def test_feature_maps_match(parity):
    tv_features, our_features, _, _ = parity
    for tv_name, our_name in zip(["0", "1", "2", "3", "pool"], ["p2", "p3", "p4", "p5", "p6"]):
        a, b = tv_features[tv_name], our_features[our_name]
        assert a.shape == b.shape
        relative = (a - b).abs().max() / a.abs().max()
        assert relative <= 1e-4, f"{our_name}: relative error {relative:.2e}"


def test_detections_match(parity):
    _, _, tv_out, ours = parity
    num = len(tv_out["boxes"])
    assert num >= 50, f"only {num} torchvision detections; the test needs at least 50"
    assert len(ours) == num
    assert torch.equal(ours.pred_classes + 1, tv_out["labels"])
    assert (ours.pred_boxes.tensor - tv_out["boxes"]).abs().max() <= 0.01
    assert (ours.scores - tv_out["scores"]).abs().max() <= 1e-4


def test_masks_match(parity):
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


def test_imagenet_resnet_converts_to_backbone():
    from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict

    torch.manual_seed(1)
    state = resnet50(weights=None, norm_layer=FrozenBatchNorm2d).state_dict()
    converted = convert_torchvision_state_dict(state)
    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    model = build_model(cfg)
    bottom_up = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.bottom_up.")}
    assert set(converted) == set(bottom_up)
    for key, value in converted.items():
        assert value.shape == bottom_up[key].shape, key
