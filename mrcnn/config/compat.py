"""Keys that exist for detectron2 compatibility but name features mrcnn does not have.

Two kinds, so that detectron2 yaml files load unchanged:

* keys in our defaults whose value selects a feature we lack (``MODEL.KEYPOINT_ON``): accepted
  while they hold the "off" value; otherwise `check_supported_features` refuses them, naming the
  key, when the model is built;
* keys only detectron2 has (``MODEL.RETINANET.*``, ``MODEL.ROI_KEYPOINT_HEAD.*``, ...): not in
  our defaults, so not in ``cfg`` at all. A file or override may still set them to their
  detectron2 default -- detectron2 dumps every key into the config.yaml it saves -- and they are
  then skipped; any other value would be silently ignored, so it is an error naming the key
  (`accept_detectron2_key`, called by the config merge).

The module is tables plus the two functions that read them. It sits below config.py (the merge
imports it; it imports only `ConfigError` and `parse_literal`), so adding a key is adding a row.
"""

from typing import Any, Dict, List, Tuple

from .errors import ConfigError
from .literals import parse_literal

__all__ = [
    "DETECTRON2_ONLY_DEFAULTS",
    "UNSUPPORTED_WHEN_CHANGED",
    "accept_detectron2_key",
    "check_supported_features",
]

# Keys of detectron2's default config that mrcnn does not have, with detectron2's default value.
DETECTRON2_ONLY_DEFAULTS: Dict[str, Any] = {
    "FLOAT32_PRECISION": "",
    "DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN": 2000,
    "DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST": 1000,
    "DATALOADER.REPEAT_SQRT": True,
    "TEST.KEYPOINT_OKS_SIGMAS": [],
    # federated loss / sigmoid classification (LVIS)
    "MODEL.ROI_BOX_HEAD.USE_FED_LOSS": False,
    "MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE": False,
    "MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER": 0.5,
    "MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES": 50,
    # keypoint R-CNN
    "MODEL.ROI_KEYPOINT_HEAD.NAME": "KRCNNConvDeconvUpsampleHead",
    "MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION": 14,
    "MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE": "ROIAlignV2",
    "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS": [512] * 8,
    "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS": 17,
    "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE": 1,
    "MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS": True,
    "MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT": 1.0,
    # semantic and panoptic segmentation
    "MODEL.SEM_SEG_HEAD.NAME": "SemSegFPNHead",
    "MODEL.SEM_SEG_HEAD.IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "MODEL.SEM_SEG_HEAD.IGNORE_VALUE": 255,
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 54,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 128,
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 4,
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT": 1.0,
    "MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT": 1.0,
    "MODEL.PANOPTIC_FPN.COMBINE.ENABLED": True,
    "MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH": 0.5,
    "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT": 4096,
    "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH": 0.5,
    # RetinaNet
    "MODEL.RETINANET.NUM_CLASSES": 80,
    "MODEL.RETINANET.IN_FEATURES": ["p3", "p4", "p5", "p6", "p7"],
    "MODEL.RETINANET.NUM_CONVS": 4,
    "MODEL.RETINANET.IOU_THRESHOLDS": [0.4, 0.5],
    "MODEL.RETINANET.IOU_LABELS": [0, -1, 1],
    "MODEL.RETINANET.PRIOR_PROB": 0.01,
    "MODEL.RETINANET.SCORE_THRESH_TEST": 0.05,
    "MODEL.RETINANET.TOPK_CANDIDATES_TEST": 1000,
    "MODEL.RETINANET.NMS_THRESH_TEST": 0.5,
    "MODEL.RETINANET.BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
    "MODEL.RETINANET.FOCAL_LOSS_GAMMA": 2.0,
    "MODEL.RETINANET.FOCAL_LOSS_ALPHA": 0.25,
    "MODEL.RETINANET.SMOOTH_L1_LOSS_BETA": 0.1,
    "MODEL.RETINANET.BBOX_REG_LOSS_TYPE": "smooth_l1",
    "MODEL.RETINANET.NORM": "",
}

# Groups that exist only in detectron2 ("MODEL.RETINANET", ...), for naming unknown keys inside them.
_DETECTRON2_ONLY_GROUPS = {
    ".".join(key.split(".")[:depth]) for key in DETECTRON2_ONLY_DEFAULTS for depth in range(1, key.count(".") + 1)
}


def _normalized(value: Any) -> Any:
    """Tuples as lists, literal strings ("(0.5, 0.6)") parsed, so yaml spellings compare equal."""
    if isinstance(value, str):
        parsed = parse_literal(value)
        value = parsed if isinstance(parsed, (list, tuple)) else value
    if isinstance(value, (list, tuple)):
        return [_normalized(v) for v in value]
    return value


def accept_detectron2_key(full_key: str, value: Any, source: str) -> bool:
    """Whether ``full_key`` (a leaf, or a group given as a dict) is a detectron2-only key at its default.

    True: the merge may skip it. False: detectron2 does not know it either (the caller reports an
    unknown key). Raises ConfigError naming the key when it holds another value, since mrcnn has
    no feature that would read it.
    """
    if isinstance(value, dict):
        if full_key not in _DETECTRON2_ONLY_GROUPS:
            return False
        for key, child in value.items():
            child_key = f"{full_key}.{key}"
            if not accept_detectron2_key(child_key, child, source):
                raise ConfigError(
                    f"Unknown config key '{child_key}' (from {source}): neither mrcnn nor detectron2 has it."
                )
        return True
    if full_key not in DETECTRON2_ONLY_DEFAULTS:
        return False
    default = DETECTRON2_ONLY_DEFAULTS[full_key]
    if _normalized(value) != _normalized(default):
        raise ConfigError(
            f"Config key '{full_key}' = {value!r} (from {source}) configures a detectron2 feature "
            f"that mrcnn does not have; remove the key or set it to detectron2's default {default!r}."
        )
    return True


# (dotted key, value meaning "feature off", what the feature is)
UNSUPPORTED_WHEN_CHANGED: List[Tuple[str, Any, str]] = [
    ("MODEL.KEYPOINT_ON", False, "keypoint detection"),
    ("MODEL.LOAD_PROPOSALS", False, "precomputed proposals"),
    ("MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES", False, "training on predicted boxes"),
    ("DATASETS.PROPOSAL_FILES_TRAIN", [], "precomputed proposals"),
    ("DATASETS.PROPOSAL_FILES_TEST", [], "precomputed proposals"),
    ("SOLVER.REFERENCE_WORLD_SIZE", 0, "automatic rescaling of the schedule by world size"),
]


def _lookup(cfg, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def check_supported_features(cfg) -> None:
    """Raise ConfigError naming the first key that asks for an unsupported feature."""
    for key, off_value, feature in UNSUPPORTED_WHEN_CHANGED:
        try:
            value = _lookup(cfg, key)
        except KeyError:
            continue
        if isinstance(off_value, list):
            value = list(value)
        if value != off_value:
            raise ConfigError(
                f"Config key '{key}' = {value!r} asks for {feature}, which mrcnn does not support; "
                f"set it to {off_value!r}."
            )
