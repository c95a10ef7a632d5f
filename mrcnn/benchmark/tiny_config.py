"""Small Mask R-CNN configs for tests and quick checks on the CPU."""

from mrcnn.config import CfgNode, get_cfg, load_yaml_with_base
from mrcnn.model_zoo import get_config_file

__all__ = ["fpn_config", "tiny_config"]


def fpn_config(mask_on: bool = True) -> CfgNode:
    """The default config with the model keys of Base-RCNN-FPN.yaml: a ResNet-FPN Mask R-CNN
    (Faster R-CNN with ``mask_on`` False). The defaults themselves describe detectron2's C4 model;
    only MODEL.* is taken from the file, so data, solver and input settings stay the defaults."""
    cfg = get_cfg()
    model_keys = load_yaml_with_base(get_config_file("Base-RCNN-FPN.yaml"))["MODEL"]
    cfg.merge_from_dict({"MODEL": model_keys}, source="Base-RCNN-FPN.yaml")
    cfg.MODEL.MASK_ON = mask_on
    return cfg


def tiny_config(num_classes: int = 3, image_size: int = 64) -> CfgNode:
    """A small Mask R-CNN config (ResNet-18, narrow FPN and heads) for fast CPU tests."""
    cfg = fpn_config()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[8], [16], [32], [64], [128]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 7
    cfg.INPUT.MIN_SIZE_TRAIN = [image_size]
    cfg.INPUT.MAX_SIZE_TRAIN = image_size * 2
    cfg.INPUT.MIN_SIZE_TEST = image_size
    cfg.INPUT.MAX_SIZE_TEST = image_size * 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg
