"""Our model built from the torchvision config, loaded with converted torchvision weights,
reproduces torchvision's maskrcnn_resnet50_fpn: feature maps, boxes, scores, classes, masks."""

import os

import pytest
import torch
from torchvision.models.resnet import resnet50
from torchvision.ops import FrozenBatchNorm2d
from torchvision_parity_checks import (
    ROOT,
    check_detections,
    check_feature_maps,
    check_masks,
    convert_with_tool,
    run_both,
)

from mrcnn.benchmark import calibrated_torchvision_maskrcnn, natural_image
from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
from mrcnn.config import get_cfg
from mrcnn.modeling import build_model

CONFIG = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision.yaml")
HEIGHT, WIDTH = 800, 1067


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """A seeded torchvision model calibrated on the image (scores spread, so the detection order
    is well defined), our model holding its converted weights, and both models' outputs."""
    image = torch.from_numpy(natural_image(HEIGHT, WIDTH, seed=3)).permute(2, 0, 1).float()
    torchvision_model = calibrated_torchvision_maskrcnn(image)
    model, _, _ = convert_with_tool(torchvision_model, CONFIG, str(tmp_path_factory.mktemp("tv")))
    return run_both(torchvision_model, model, image)


def test_feature_maps_match(parity):
    check_feature_maps(parity)


def test_detections_match(parity):
    check_detections(parity)


def test_masks_match(parity):
    check_masks(parity)


def test_imagenet_resnet_converts_to_backbone():
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
