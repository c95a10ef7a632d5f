"""Keys that exist for detectron2 compatibility but name features mrcnn does not have.

Such keys are accepted while they hold their default (the feature off); asking for the feature
is an error naming the key, checked when the model is built.
"""
from typing import Any, List, Tuple

from .config import ConfigError

__all__ = ["UNSUPPORTED_WHEN_CHANGED", "check_supported_features"]

# (dotted key, value meaning "feature off", what the feature is)
UNSUPPORTED_WHEN_CHANGED: List[Tuple[str, Any, str]] = [
    ("MODEL.KEYPOINT_ON", False, "keypoint detection"),
    ("MODEL.LOAD_PROPOSALS", False, "precomputed proposals"),
    ("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, False, False, False], "deformable convolutions"),
    ("MODEL.RESNETS.DEFORM_MODULATED", False, "deformable convolutions"),
    ("MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES", False, "training on predicted boxes"),
    ("DATASETS.PROPOSAL_FILES_TRAIN", [], "precomputed proposals"),
    ("DATASETS.PROPOSAL_FILES_TEST", [], "precomputed proposals"),
    ("SOLVER.REFERENCE_WORLD_SIZE", 0, "automatic rescaling of the schedule by world size"),
    ("TEST.AUG.ENABLED", False, "test-time augmentation"),
    ("TEST.PRECISE_BN.ENABLED", False, "precise BatchNorm statistics"),
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
