"""detectron2's own yaml files load unchanged; keys for features mrcnn lacks are accepted at their
default and refused, by name, when they ask for the feature."""

import textwrap

import pytest

from mrcnn.config import ConfigError, get_cfg
from mrcnn.config.compat import DETECTRON2_ONLY_DEFAULTS

# The contents of detectron2's configs/Base-RCNN-FPN.yaml and
# configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml (comments left out).
D2_BASE_RCNN_FPN = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
    NAME: "StandardROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
  ROI_MASK_HEAD:
    NAME: "MaskRCNNConvUpsampleHead"
    NUM_CONV: 4
    POOLER_RESOLUTION: 14
DATASETS:
  TRAIN: ("coco_2017_train",)
  TEST: ("coco_2017_val",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.02
  STEPS: (60000, 80000)
  MAX_ITER: 90000
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
VERSION: 2
"""

D2_MASK_RCNN_R_50_FPN_3X = """
_BASE_: "../Base-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  MASK_ON: True
  RESNETS:
    DEPTH: 50
SOLVER:
  STEPS: (210000, 250000)
  MAX_ITER: 270000
"""

D2_FASTER_RCNN_R_101_FPN_3X = """
_BASE_: "../Base-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-101.pkl"
  MASK_ON: False
  RESNETS:
    DEPTH: 101
SOLVER:
  STEPS: (210000, 250000)
  MAX_ITER: 270000
"""

# Part of a config.yaml as detectron2's trainer dumps it: every key, at its default.
D2_DUMP_EXTRA_KEYS = """
_BASE_: "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
FLOAT32_PRECISION: ""
DATALOADER:
  REPEAT_SQRT: true
DATASETS:
  PRECOMPUTED_PROPOSAL_TOPK_TEST: 1000
  PRECOMPUTED_PROPOSAL_TOPK_TRAIN: 2000
MODEL:
  KEYPOINT_ON: false
  RETINANET:
    BBOX_REG_LOSS_TYPE: smooth_l1
    BBOX_REG_WEIGHTS: &id001
    - 1.0
    - 1.0
    - 1.0
    - 1.0
    FOCAL_LOSS_ALPHA: 0.25
    FOCAL_LOSS_GAMMA: 2.0
    IN_FEATURES: [p3, p4, p5, p6, p7]
    IOU_LABELS: [0, -1, 1]
    IOU_THRESHOLDS: [0.4, 0.5]
    NMS_THRESH_TEST: 0.5
    NORM: ''
    NUM_CLASSES: 80
    NUM_CONVS: 4
    PRIOR_PROB: 0.01
    SCORE_THRESH_TEST: 0.05
    SMOOTH_L1_LOSS_BETA: 0.1
    TOPK_CANDIDATES_TEST: 1000
  ROI_BOX_CASCADE_HEAD:
    BBOX_REG_WEIGHTS: ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
    IOUS: (0.5, 0.6, 0.7)
  ROI_BOX_HEAD:
    USE_FED_LOSS: false
    USE_SIGMOID_CE: false
  ROI_KEYPOINT_HEAD:
    CONV_DIMS: (512, 512, 512, 512, 512, 512, 512, 512)
    NUM_KEYPOINTS: 17
  SEM_SEG_HEAD:
    NUM_CLASSES: 54
    NORM: GN
  PANOPTIC_FPN:
    COMBINE:
      ENABLED: true
TEST:
  AUG:
    ENABLED: false
    FLIP: true
    MAX_SIZE: 4000
    MIN_SIZES: (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
  KEYPOINT_OKS_SIGMAS: []
"""


@pytest.fixture()
def d2_configs(tmp_path):
    """detectron2's config tree: Base-RCNN-FPN.yaml and two files under their folders."""
    files = {
        "Base-RCNN-FPN.yaml": D2_BASE_RCNN_FPN,
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml": D2_MASK_RCNN_R_50_FPN_3X,
        "COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml": D2_FASTER_RCNN_R_101_FPN_3X,
        "d2_dump.yaml": D2_DUMP_EXTRA_KEYS,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return tmp_path


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def test_detectron2_mask_rcnn_3x_loads_unchanged(d2_configs):
    cfg = get_cfg()
    cfg.merge_from_file(str(d2_configs / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_3x.yaml"))
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert cfg.MODEL.MASK_ON is True and cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.DATASETS.TRAIN == ["coco_2017_train"] and cfg.DATASETS.TEST == ["coco_2017_val"]
    assert cfg.SOLVER.STEPS == [210000, 250000] and cfg.SOLVER.MAX_ITER == 270000
    assert cfg.SOLVER.BASE_LR == 0.02 and cfg.SOLVER.IMS_PER_BATCH == 16
    assert cfg.INPUT.MIN_SIZE_TRAIN == [640, 672, 704, 736, 768, 800]
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN == 1000 and cfg.VERSION == 2


def test_detectron2_faster_rcnn_r101_builds(d2_configs):
    from mrcnn.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(str(d2_configs / "COCO-Detection" / "faster_rcnn_R_101_FPN_3x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    names = dict(model.named_parameters())
    assert cfg.MODEL.MASK_ON is False and not any(n.startswith("roi_heads.mask_head") for n in names)
    assert "backbone.bottom_up.res4.22.conv3.weight" in names  # 23 blocks in res4: ResNet-101
    assert names["roi_heads.box_predictor.cls_score.weight"].shape == (81, 1024)


def test_detectron2_only_keys_at_default_are_accepted(d2_configs):
    reference = get_cfg()
    reference.merge_from_file(str(d2_configs / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_3x.yaml"))
    cfg = get_cfg()
    cfg.merge_from_file(str(d2_configs / "d2_dump.yaml"))
    assert cfg == reference  # the extra keys change nothing
    assert "RETINANET" not in cfg.MODEL
    cfg.merge_from_list(
        [
            "MODEL.RETINANET.NUM_CLASSES",
            "80",
            "TEST.AUG.MIN_SIZES",
            "(400, 500, 600, 700, 800, 900, 1000, 1100, 1200)",
        ]
    )
    assert cfg == reference


@pytest.mark.parametrize(
    "key, yaml_text",
    [
        ("MODEL.RETINANET.NUM_CLASSES", "MODEL:\n  RETINANET:\n    NUM_CLASSES: 20\n"),
        ("MODEL.ROI_BOX_HEAD.USE_FED_LOSS", "MODEL:\n  ROI_BOX_HEAD:\n    USE_FED_LOSS: true\n"),
        ("MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "MODEL:\n  ROI_KEYPOINT_HEAD:\n    NUM_KEYPOINTS: 14\n"),
        ("MODEL.PANOPTIC_FPN.COMBINE.ENABLED", "MODEL:\n  PANOPTIC_FPN:\n    COMBINE:\n      ENABLED: false\n"),
    ],
)
def test_detectron2_feature_keys_are_refused_by_name(d2_configs, key, yaml_text):
    path = _write(d2_configs, "asks_for_feature.yaml", f'_BASE_: "Base-RCNN-FPN.yaml"\n{yaml_text}')
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    assert f"'{key}'" in str(info.value) and "asks_for_feature.yaml" in str(info.value)


def test_feature_switch_in_our_defaults_is_refused_at_build(d2_configs):
    from mrcnn.modeling import build_model

    path = _write(d2_configs, "keypoints.yaml", '_BASE_: "Base-RCNN-FPN.yaml"\nMODEL:\n  KEYPOINT_ON: true\n')
    cfg = get_cfg()
    cfg.merge_from_file(path)
    with pytest.raises(ConfigError, match="MODEL.KEYPOINT_ON"):
        build_model(cfg)


def test_unknown_keys_stay_errors(d2_configs):
    path = _write(d2_configs, "typo.yaml", "MODEL:\n  RETINANET:\n    NUM_CLASSSES: 80\n")
    with pytest.raises(ConfigError, match="MODEL.RETINANET.NUM_CLASSSES"):
        get_cfg().merge_from_file(path)
    with pytest.raises(ConfigError, match="MODEL.RETINANETT"):
        get_cfg().merge_from_list(["MODEL.RETINANETT.NUM_CLASSES", "80"])
    with pytest.raises(ConfigError, match="MODEL.RETINANET.NUM_CLASSES"):
        get_cfg().merge_from_list(["MODEL.RETINANET.NUM_CLASSES", "3"])


def test_detectron2_only_table_does_not_shadow_our_keys():
    cfg = get_cfg()
    ours = set(cfg.all_keys())
    assert not ours & set(DETECTRON2_ONLY_DEFAULTS)
