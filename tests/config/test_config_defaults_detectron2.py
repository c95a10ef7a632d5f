"""Every MODEL.* default that detectron2 also has equals detectron2's, so that its zoo files, which
leave many keys to the defaults, mean the same model here.

The table is detectron2's ``detectron2/config/defaults.py`` (MODEL section), written out by hand;
keys only detectron2 has (RetinaNet, keypoints, panoptic, ...) live in mrcnn/config/compat.py.
"""

from mrcnn.config import get_cfg
from mrcnn.config.compat import DETECTRON2_ONLY_DEFAULTS

DETECTRON2_MODEL_DEFAULTS = {
    "LOAD_PROPOSALS": False,
    "MASK_ON": False,
    "KEYPOINT_ON": False,
    "META_ARCHITECTURE": "GeneralizedRCNN",
    "WEIGHTS": "",
    "PIXEL_MEAN": [103.530, 116.280, 123.675],
    "PIXEL_STD": [1.0, 1.0, 1.0],
    "BACKBONE.NAME": "build_resnet_backbone",
    "BACKBONE.FREEZE_AT": 2,
    "FPN.IN_FEATURES": [],
    "FPN.OUT_CHANNELS": 256,
    "FPN.NORM": "",
    "FPN.FUSE_TYPE": "sum",
    "PROPOSAL_GENERATOR.NAME": "RPN",
    "PROPOSAL_GENERATOR.MIN_SIZE": 0,
    "ANCHOR_GENERATOR.NAME": "DefaultAnchorGenerator",
    "ANCHOR_GENERATOR.SIZES": [[32, 64, 128, 256, 512]],
    "ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
    "ANCHOR_GENERATOR.ANGLES": [[-90, 0, 90]],
    "ANCHOR_GENERATOR.OFFSET": 0.0,
    "RPN.HEAD_NAME": "StandardRPNHead",
    "RPN.IN_FEATURES": ["res4"],
    "RPN.BOUNDARY_THRESH": -1,
    "RPN.IOU_THRESHOLDS": [0.3, 0.7],
    "RPN.IOU_LABELS": [0, -1, 1],
    "RPN.BATCH_SIZE_PER_IMAGE": 256,
    "RPN.POSITIVE_FRACTION": 0.5,
    "RPN.BBOX_REG_LOSS_TYPE": "smooth_l1",
    "RPN.BBOX_REG_LOSS_WEIGHT": 1.0,
    "RPN.BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
    "RPN.SMOOTH_L1_BETA": 0.0,
    "RPN.LOSS_WEIGHT": 1.0,
    "RPN.PRE_NMS_TOPK_TRAIN": 12000,
    "RPN.PRE_NMS_TOPK_TEST": 6000,
    "RPN.POST_NMS_TOPK_TRAIN": 2000,
    "RPN.POST_NMS_TOPK_TEST": 1000,
    "RPN.NMS_THRESH": 0.7,
    "RPN.CONV_DIMS": [-1],
    "ROI_HEADS.NAME": "Res5ROIHeads",
    "ROI_HEADS.NUM_CLASSES": 80,
    "ROI_HEADS.IN_FEATURES": ["res4"],
    "ROI_HEADS.IOU_THRESHOLDS": [0.5],
    "ROI_HEADS.IOU_LABELS": [0, 1],
    "ROI_HEADS.BATCH_SIZE_PER_IMAGE": 512,
    "ROI_HEADS.POSITIVE_FRACTION": 0.25,
    "ROI_HEADS.SCORE_THRESH_TEST": 0.05,
    "ROI_HEADS.NMS_THRESH_TEST": 0.5,
    "ROI_HEADS.PROPOSAL_APPEND_GT": True,
    "ROI_BOX_HEAD.NAME": "",
    "ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE": "smooth_l1",
    "ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT": 1.0,
    "ROI_BOX_HEAD.BBOX_REG_WEIGHTS": [10.0, 10.0, 5.0, 5.0],
    "ROI_BOX_HEAD.SMOOTH_L1_BETA": 0.0,
    "ROI_BOX_HEAD.POOLER_RESOLUTION": 14,
    "ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": 0,
    "ROI_BOX_HEAD.POOLER_TYPE": "ROIAlignV2",
    "ROI_BOX_HEAD.NUM_FC": 0,
    "ROI_BOX_HEAD.FC_DIM": 1024,
    "ROI_BOX_HEAD.NUM_CONV": 0,
    "ROI_BOX_HEAD.CONV_DIM": 256,
    "ROI_BOX_HEAD.NORM": "",
    "ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": False,
    "ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES": False,
    "ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS": [
        [10.0, 10.0, 5.0, 5.0],
        [20.0, 20.0, 10.0, 10.0],
        [30.0, 30.0, 15.0, 15.0],
    ],
    "ROI_BOX_CASCADE_HEAD.IOUS": [0.5, 0.6, 0.7],
    "ROI_MASK_HEAD.NAME": "MaskRCNNConvUpsampleHead",
    "ROI_MASK_HEAD.POOLER_RESOLUTION": 14,
    "ROI_MASK_HEAD.POOLER_SAMPLING_RATIO": 0,
    "ROI_MASK_HEAD.NUM_CONV": 0,
    "ROI_MASK_HEAD.CONV_DIM": 256,
    "ROI_MASK_HEAD.NORM": "",
    "ROI_MASK_HEAD.CLS_AGNOSTIC_MASK": False,
    "ROI_MASK_HEAD.POOLER_TYPE": "ROIAlignV2",
    "RESNETS.DEPTH": 50,
    "RESNETS.OUT_FEATURES": ["res4"],
    "RESNETS.NUM_GROUPS": 1,
    "RESNETS.NORM": "FrozenBN",
    "RESNETS.WIDTH_PER_GROUP": 64,
    "RESNETS.STRIDE_IN_1X1": True,
    "RESNETS.RES5_DILATION": 1,
    "RESNETS.RES2_OUT_CHANNELS": 256,
    "RESNETS.STEM_OUT_CHANNELS": 64,
    "RESNETS.DEFORM_ON_PER_STAGE": [False, False, False, False],
    "RESNETS.DEFORM_MODULATED": False,
    "RESNETS.DEFORM_NUM_GROUPS": 1,
}

# Ours on purpose: detectron2's "cuda" fails on machines without a GPU (see the comment in defaults.py).
DIFFERENT_ON_PURPOSE = {"DEVICE"}


def _lookup(node, dotted):
    for part in dotted.split("."):
        node = node[part]
    return node


def test_model_defaults_equal_detectron2s():
    model = get_cfg().MODEL
    ours = {key: _lookup(model, key) for key in DETECTRON2_MODEL_DEFAULTS if key.split(".")[0] in model}
    different = {
        key: (ours[key], DETECTRON2_MODEL_DEFAULTS[key]) for key in ours if ours[key] != DETECTRON2_MODEL_DEFAULTS[key]
    }
    assert different == {}
    # every key of the table is either ours or a detectron2-only key accepted at its default
    for key in DETECTRON2_MODEL_DEFAULTS:
        assert key in ours or f"MODEL.{key}" in DETECTRON2_ONLY_DEFAULTS, key
    assert model.DEVICE == "cpu" and DIFFERENT_ON_PURPOSE == {"DEVICE"}


def test_bare_defaults_build_detectron2s_c4_model():
    import torch

    from mrcnn.modeling.meta_arch.build import META_ARCH_REGISTRY

    cfg = get_cfg()
    with torch.device("meta"):
        model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    assert type(model.roi_heads).__name__ == "Res5ROIHeads" and not cfg.MODEL.MASK_ON
    assert list(model.backbone.output_shape()) == ["res4"]
    assert model.proposal_generator.anchor_generator.num_anchors == [15]
