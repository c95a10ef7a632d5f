"""An mrcnn model that holds the same weights as a torchvision Mask R-CNN and does the same work:
the config that reproduces torchvision's architecture, the converted weights, matched settings."""

import os
from typing import Optional

from torch import nn

from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
from mrcnn.config import CfgNode, get_cfg
from mrcnn.modeling import build_model

__all__ = [
    "TORCHVISION_CONFIG",
    "match_torchvision_settings",
    "mrcnn_model_from_torchvision",
    "torchvision_equivalent_config",
]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TORCHVISION_CONFIG = os.path.join(
    _REPO_ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision.yaml"
)


def torchvision_equivalent_config(opts: Optional[list] = None) -> CfgNode:
    """The config that reproduces torchvision's maskrcnn_resnet50_fpn, with ``opts`` (KEY VALUE ...) merged."""
    cfg = get_cfg()
    cfg.merge_from_file(TORCHVISION_CONFIG)
    if opts:
        cfg.merge_from_list(list(opts))
    return cfg


def match_torchvision_settings(torchvision_model: nn.Module, cfg: CfgNode) -> nn.Module:
    """Give torchvision's Mask R-CNN the proposal, sampling and test-time settings of ``cfg``
    (MODEL.RPN.*, MODEL.ROI_HEADS.*, TEST.DETECTIONS_PER_IMAGE), so both models do the same work."""
    rpn, heads = torchvision_model.rpn, torchvision_model.roi_heads
    rpn._pre_nms_top_n = {"training": cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, "testing": cfg.MODEL.RPN.PRE_NMS_TOPK_TEST}
    rpn._post_nms_top_n = {"training": cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, "testing": cfg.MODEL.RPN.POST_NMS_TOPK_TEST}
    rpn.nms_thresh = cfg.MODEL.RPN.NMS_THRESH
    rpn.fg_bg_sampler.batch_size_per_image = cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE
    rpn.fg_bg_sampler.positive_fraction = cfg.MODEL.RPN.POSITIVE_FRACTION
    heads.fg_bg_sampler.batch_size_per_image = cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
    heads.fg_bg_sampler.positive_fraction = cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION
    heads.score_thresh = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    heads.nms_thresh = cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST
    heads.detections_per_img = cfg.TEST.DETECTIONS_PER_IMAGE
    return torchvision_model


def mrcnn_model_from_torchvision(torchvision_model: nn.Module, cfg: Optional[CfgNode] = None) -> nn.Module:
    """An mrcnn model (eval mode) built from ``cfg`` (default: the torchvision-equivalent config)
    holding ``torchvision_model``'s weights, converted; loading is strict."""
    if cfg is None:
        cfg = torchvision_equivalent_config()
    model = build_model(cfg)
    state = convert_torchvision_state_dict(torchvision_model.state_dict())
    model.load_state_dict({k: v.to(model.device) for k, v in state.items()}, strict=True)
    return model.eval()
