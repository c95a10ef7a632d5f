"""Our model built from the torchvision config, loaded with converted torchvision weights,
reproduces torchvision's maskrcnn_resnet50_fpn: feature maps, proposals, boxes, scores, classes,
masks, and a training step's losses and gradients.

One calibrated model pair serves every case: the 800x1067 landscape image (padded to 800x1088, so
at p6 13 rows of 61 px), a portrait image whose padded sides are not multiples of 64 (anchor
strides of 59 x 57 px at p6) with saturated objectness (float32 probabilities of exactly 1.0), and
a training step on a synthetic image.
"""

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
    check_portrait_with_saturated_objectness,
    check_proposals,
    check_training_step,
    convert_with_tool,
    image_tensor,
    run_both,
)

from mrcnn.benchmark import calibrated_torchvision_maskrcnn, synthetic_training_batch, training_step
from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
from mrcnn.config import get_cfg
from mrcnn.modeling import build_model

CONFIG = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision.yaml")
HEIGHT, WIDTH = 800, 1067
TRAINING_SIZE = (192, 256)  # one small image keeps both models' forward and backward cheap


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A seeded torchvision model calibrated on the landscape image (scores spread, so the
    detection order is well defined) and our model holding its converted weights."""
    torchvision_model = calibrated_torchvision_maskrcnn(image_tensor(HEIGHT, WIDTH))
    model, _, _ = convert_with_tool(torchvision_model, CONFIG, str(tmp_path_factory.mktemp("tv")))
    return torchvision_model, model


@pytest.fixture(scope="module")
def parity(models):
    return run_both(*models, image_tensor(HEIGHT, WIDTH))


def test_feature_maps_match(parity):
    check_feature_maps(parity)


def test_detections_match(parity):
    check_proposals(parity)
    check_detections(parity)


def test_masks_match(parity):
    check_masks(parity)


def test_portrait_image_with_saturated_objectness_matches(models):
    """A portrait image whose padded sides are not multiples of 64 (p6 anchors torchvision's 59 x 57
    px apart), with the objectness weights scaled by 10 so that hundreds of float32 probabilities
    are exactly 1.0 and torchvision's tie order decides which proposals NMS keeps. With the nominal
    64-px strides 5 proposals move by 5 to 25 px and 37 of 100 detections have no counterpart;
    ranked by logit, 889 of 1000 proposals come in another order and 55 detections have none."""
    check_portrait_with_saturated_objectness(*models)


def test_training_step_matches(models):
    batch = synthetic_training_batch(1, *TRAINING_SIZE, instances_per_image=3, num_classes=90, seed=1)
    check_training_step(training_step(*models, batch))


def test_training_step_with_fast_paths_matches(models):
    """The step as it is timed (fast paths on: folded norms, channels-last, our RoIAlign gradient),
    two images, held to the same tolerances."""
    batch = synthetic_training_batch(2, *TRAINING_SIZE, instances_per_image=3, num_classes=90, seed=2)
    check_training_step(training_step(*models, batch, fast_paths=True))


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
