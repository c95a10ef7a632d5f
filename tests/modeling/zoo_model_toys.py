"""Narrow versions of model-zoo configs and random weights that detect like a trained model,
shared by the modeling tests of the zoo architectures (imported by them; not a test file)."""

from typing import Sequence

import torch
from torch import nn

from mrcnn.benchmark import synthetic_training_batch
from mrcnn.config import CfgNode
from mrcnn.model_zoo import get_config
from mrcnn.modeling import build_model

# res2 32 channels, bottlenecks of 8 (res5 256 channels), 3 classes, a few hundred proposals
NARROW_OPTS = [
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.NORM", "BN",
    "MODEL.BACKBONE.FREEZE_AT", "0",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
    "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "300",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "300",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "64",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
]  # fmt: skip


def narrow_zoo_config(config_file: str, extra: Sequence[str] = ()) -> CfgNode:
    """A zoo config (model_zoo.get_config) with NARROW_OPTS and ``extra`` (KEY VALUE ...) merged;
    one-level models (C4, DC5) get anchors of 16-64 px, fitting 100 px test images."""
    cfg = get_config(config_file)
    cfg.merge_from_list(NARROW_OPTS + list(extra))
    if len(cfg.MODEL.RPN.IN_FEATURES) == 1:
        cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16, 32, 64]]
    return cfg


def calibrated_model(cfg: CfgNode, seed: int = 0) -> nn.Module:
    """``build_model(cfg)`` in eval mode whose BatchNorm statistics are those of one batch, with the
    predictors scaled so that scores spread over (0, 1) and masks are not flat."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # running statistics = those of the calibration batch
    model.train()
    with torch.no_grad():
        model(synthetic_training_batch(2, 96, 128, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES, seed=1))
        heads = model.roi_heads
        model.proposal_generator.rpn_head.objectness_logits.weight.mul_(30.0)
        heads.box_predictor.cls_score.weight.mul_(8.0)
        heads.box_predictor.bbox_pred.weight.mul_(30.0)
        if cfg.MODEL.MASK_ON:
            heads.mask_head.predictor.weight.mul_(300.0)
            heads.mask_head.predictor.bias.uniform_(-1.0, 1.0)
    return model.eval()
