"""Caffe2 (Detectron / MSRA) blob names -> mrcnn parameter names.

The ImageNet backbones of detectron2's model zoo (``ImageNetPretrained/MSRA/R-50.pkl``) and the
original Detectron's detection models name their arrays the Caffe2 way: ``conv1_w``,
``res_conv1_bn_s``, ``res2_0_branch2a_w``, ``res2_0_branch1_bn_b``, ``fpn_inner_res5_2_sum_w``,
``conv_rpn_fpn2_w``, ``fc6_w``, ``cls_score_w``, ``_[mask]_fcn1_w``, ...

A name is a layer plus a parameter suffix. Batch norm in these files is already folded into an
affine ``_bn_s`` / ``_bn_b`` pair, so the matching running statistics are written as mean 0 and
variance 1, which makes our frozen batch norm apply exactly that affine map (up to its eps).
Detectron's class-specific outputs put background first; ours put it last (see `convert_c2_names`).

The names give no hint of the model they are loaded into, so the ResNet is named as in a ResNet-FPN
(``backbone.bottom_up.res4...``); `align_resnet_names` moves it where a model without FPN keeps it:
``backbone.res4...`` (C4, DC5), and ``roi_heads.res5...`` for the res5 a C4 model runs per RoI.
"""

import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

__all__ = ["align_resnet_names", "convert_c2_names", "is_c2_state_dict", "c2_name_to_mrcnn"]

# Longest first: "_bn_b" must win over "_b".
_PARAM_SUFFIXES: List[Tuple[str, str]] = [
    ("_bn_riv", "norm.running_var"),
    ("_bn_rm", "norm.running_mean"),
    ("_bn_s", "norm.weight"),
    ("_bn_b", "norm.bias"),
    ("_gn_s", "norm.weight"),
    ("_gn_b", "norm.bias"),
    ("_w", "weight"),
    ("_b", "bias"),
]

_BRANCH_CONV = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "shortcut"}


def _layer_name(layer: str) -> Optional[str]:
    """Caffe2 layer name -> mrcnn module path; None for layers nothing in mrcnn uses."""
    if layer in ("conv1", "res_conv1"):
        return "backbone.bottom_up.stem.conv1"
    match = re.match(r"^res(\d)_(\d+)_branch(2[abc]|1)$", layer)
    if match:
        stage, block, branch = match.groups()
        return f"backbone.bottom_up.res{stage}.{block}.{_BRANCH_CONV[branch]}"
    match = re.match(r"^fpn_inner_res(\d)_\d+_sum(?:_lateral)?$", layer)
    if match:
        return f"backbone.fpn_lateral{match.group(1)}"
    match = re.match(r"^fpn_res(\d)_\d+_sum$", layer)
    if match:
        return f"backbone.fpn_output{match.group(1)}"
    # The RPN shares one head over the FPN levels; Caffe2 stores it under the first level.
    rpn = {"conv_rpn": "conv", "rpn_cls_logits": "objectness_logits", "rpn_bbox_pred": "anchor_deltas"}
    match = re.match(r"^(conv_rpn|rpn_cls_logits|rpn_bbox_pred)(?:_fpn\d)?$", layer)
    if match:
        return f"proposal_generator.rpn_head.{rpn[match.group(1)]}"
    match = re.match(r"^head_conv(\d+)$", layer)
    if match:
        return f"roi_heads.box_head.conv{match.group(1)}"
    box = {
        "fc6": "roi_heads.box_head.fc1",
        "fc7": "roi_heads.box_head.fc2",
        "cls_score": "roi_heads.box_predictor.cls_score",
        "bbox_pred": "roi_heads.box_predictor.bbox_pred",
        "conv5_mask": "roi_heads.mask_head.deconv",
        "mask_fcn_logits": "roi_heads.mask_head.predictor",
    }
    if layer in box:
        return box[layer]
    match = re.match(r"^_\[mask\]_fcn(\d+)$", layer)
    if match:
        return f"roi_heads.mask_head.mask_fcn{match.group(1)}"
    return None


def c2_name_to_mrcnn(name: str) -> Optional[str]:
    """One Caffe2 blob name -> mrcnn parameter name; None when the blob has no counterpart
    (the ImageNet classifier ``fc1000``/``pred``, optimizer ``_momentum`` blobs, unknown names)."""
    if name.endswith("_momentum"):
        return None
    for suffix, param in _PARAM_SUFFIXES:
        if name.endswith(suffix):
            layer = _layer_name(name[: -len(suffix)])
            return f"{layer}.{param}" if layer else None
    return None


def is_c2_state_dict(state_dict: Dict[str, object]) -> bool:
    """True when the names follow the Caffe2 scheme (at least one stem or residual-block blob)."""
    return any(
        key in ("conv1_w", "res_conv1_bn_s", "conv1_gn_s") or re.match(r"^res\d_\d+_branch", key) for key in state_dict
    )


def _rotate_background(name: str, value: np.ndarray) -> np.ndarray:
    """Detectron's [background, class 1..K] rows -> ours: [class 1..K, background] / no background."""
    if name.startswith("roi_heads.box_predictor.cls_score."):
        return np.concatenate([value[1:], value[:1]], axis=0)
    if name.startswith("roi_heads.box_predictor.bbox_pred.") and value.shape[0] > 4:
        return value[4:]  # class-specific (or agnostic bg+fg) deltas: drop the background's 4
    if name.startswith("roi_heads.mask_head.predictor.") and value.shape[0] > 1:
        return value[1:]
    return value


def convert_c2_names(
    blobs: Dict[str, np.ndarray], log: Optional[Callable[[str], None]] = None
) -> Dict[str, np.ndarray]:
    """Rename a Caffe2 blob dict to mrcnn parameter names (arrays unchanged except class rows).

    Blobs without a counterpart are dropped and, with ``log``, listed. Batch norms given only as
    ``_bn_s``/``_bn_b`` get running mean 0 and variance 1. Note that Detectron (v1) detection
    models were trained with its "+1" box-width convention, so their boxes come out shifted by
    about a pixel; backbones are unaffected.
    """
    converted: Dict[str, np.ndarray] = {}
    dropped: List[str] = []
    folded_norms: List[str] = []
    for name, value in blobs.items():
        new_name = c2_name_to_mrcnn(name)
        if new_name is None:
            dropped.append(name)
            continue
        converted[new_name] = _rotate_background(new_name, np.asarray(value))
        if name.endswith("_bn_s"):
            folded_norms.append(new_name[: -len("weight")])
    for prefix in folded_norms:
        channels = converted[prefix + "weight"].shape[0]
        converted.setdefault(prefix + "running_mean", np.zeros(channels, dtype=np.float32))
        converted.setdefault(prefix + "running_var", np.ones(channels, dtype=np.float32))
    dropped = [name for name in dropped if not name.endswith("_momentum")]  # optimizer state
    if log is not None and dropped:
        log(f"Caffe2 blobs without a counterpart (not loaded): {', '.join(sorted(dropped))}")
    return converted


_BOTTOM_UP = "backbone.bottom_up."


def align_resnet_names(
    state_dict: Dict[str, Any], model_keys: Iterable[str], log: Optional[Callable[[str], None]] = None
) -> Dict[str, Any]:
    """``backbone.bottom_up.<name>`` -> ``backbone.<name>`` or ``roi_heads.<name>``, whichever
    ``model_keys`` has, when the model has no ``backbone.bottom_up`` (a ResNet without FPN).

    Other names and models with an FPN are left as they are. With ``log``, says how many moved.
    """
    model_keys = set(model_keys)
    if any(key.startswith(_BOTTOM_UP) for key in model_keys) or not any(k.startswith(_BOTTOM_UP) for k in state_dict):
        return state_dict
    aligned, moved = {}, 0
    for key, value in state_dict.items():
        if key.startswith(_BOTTOM_UP):
            rest = key[len(_BOTTOM_UP) :]
            for candidate in ("backbone." + rest, "roi_heads." + rest):
                if candidate in model_keys:
                    key, moved = candidate, moved + 1
                    break
        aligned[key] = value
    if log is not None and moved:
        log(f"Placed {moved} ResNet tensors named for a ResNet-FPN into this model's backbone and RoI heads.")
    return aligned
