"""Convert torchvision detection / ImageNet state dicts to mrcnn parameter names.

The names on our side are detectron2's (``backbone.bottom_up.res2.0.conv1.weight``), so the same
model also loads detectron2 checkpoints. torchvision's detection heads predict background as
class 0; ours put it last, so the class rows are rotated and the background box/mask rows dropped.

Both Mask/Faster R-CNN generations convert: v1 (plain FPN, one RPN conv, 2fc box head) and v2
(BatchNorm in FPN and heads, two RPN convs -> ``rpn_head.conv.conv0/conv1``, 4conv+1fc box head);
configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_torchvision{,_v2}.yaml build the matching models.
"""

import re
from typing import Dict, Tuple

import torch

__all__ = ["convert_torchvision_state_dict", "is_torchvision_state_dict"]


def _convert_resnet_key(key: str) -> str:
    """torchvision ResNet key (without prefix) -> key under ``bottom_up``; "" to drop it."""
    if key == "conv1.weight":
        return "stem.conv1.weight"
    match = re.match(r"^bn1\.(.+)$", key)
    if match:
        return f"stem.conv1.norm.{match.group(1)}"
    match = re.match(r"^layer(\d)\.(\d+)\.conv(\d)\.weight$", key)
    if match:
        stage, block, conv = match.groups()
        return f"res{int(stage) + 1}.{block}.conv{conv}.weight"
    match = re.match(r"^layer(\d)\.(\d+)\.bn(\d)\.(.+)$", key)
    if match:
        stage, block, conv, field = match.groups()
        return f"res{int(stage) + 1}.{block}.conv{conv}.norm.{field}"
    match = re.match(r"^layer(\d)\.(\d+)\.downsample\.0\.weight$", key)
    if match:
        stage, block = match.groups()
        return f"res{int(stage) + 1}.{block}.shortcut.weight"
    match = re.match(r"^layer(\d)\.(\d+)\.downsample\.1\.(.+)$", key)
    if match:
        stage, block, field = match.groups()
        return f"res{int(stage) + 1}.{block}.shortcut.norm.{field}"
    if key.startswith("fc."):
        return ""  # the ImageNet classifier
    raise KeyError(f"Unexpected torchvision ResNet parameter '{key}'.")


def _conv_norm_suffix(rest: str) -> str:
    """Suffix of a Conv2dNormActivation entry: "0.weight" -> "weight", "1.running_mean" -> "norm.running_mean"."""
    match = re.match(r"^(\d+)\.(.+)$", rest)
    if not match:
        return rest  # a plain nn.Conv2d (older torchvision)
    index, field = match.groups()
    return field if index == "0" else f"norm.{field}"


def _convert_detection_key(key: str, box_head_layout: Dict[int, Tuple[str, int]], num_rpn_convs: int) -> str:
    """torchvision detection key -> mrcnn key ("" to drop)."""
    if key.startswith("backbone.body."):
        converted = _convert_resnet_key(key[len("backbone.body.") :])
        return f"backbone.bottom_up.{converted}" if converted else ""
    match = re.match(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.(.+)$", key)
    if match:
        kind, index, rest = match.groups()
        name = "fpn_lateral" if kind == "inner" else "fpn_output"
        return f"backbone.{name}{int(index) + 2}.{_conv_norm_suffix(rest)}"
    match = re.match(r"^rpn\.head\.conv\.(\d+)\.(\d+)\.(.+)$", key)
    if match:  # a stack of Conv2dNormActivation
        layer, index, field = match.groups()
        suffix = field if index == "0" else f"norm.{field}"
        # StandardRPNHead: one conv is the module "conv"; several are "conv.conv0", "conv.conv1", ...
        if num_rpn_convs == 1:
            return f"proposal_generator.rpn_head.conv.{suffix}"
        return f"proposal_generator.rpn_head.conv.conv{layer}.{suffix}"
    match = re.match(r"^rpn\.head\.conv\.(weight|bias)$", key)
    if match:
        return f"proposal_generator.rpn_head.conv.{match.group(1)}"
    renames = {
        "rpn.head.cls_logits.": "proposal_generator.rpn_head.objectness_logits.",
        "rpn.head.bbox_pred.": "proposal_generator.rpn_head.anchor_deltas.",
        "roi_heads.box_head.fc6.": "roi_heads.box_head.fc1.",
        "roi_heads.box_head.fc7.": "roi_heads.box_head.fc2.",
        "roi_heads.box_predictor.": "roi_heads.box_predictor.",
        "roi_heads.mask_predictor.conv5_mask.": "roi_heads.mask_head.deconv.",
        "roi_heads.mask_predictor.mask_fcn_logits.": "roi_heads.mask_head.predictor.",
    }
    for old, new in renames.items():
        if key.startswith(old):
            return new + key[len(old) :]
    match = re.match(r"^roi_heads\.box_head\.(\d+)\.(.+)$", key)
    if match:  # the conv/fc stack of torchvision's FastRCNNConvFCHead (v2)
        kind, number = box_head_layout[int(match.group(1))]
        if kind == "conv":
            return f"roi_heads.box_head.conv{number}.{_conv_norm_suffix(match.group(2))}"
        return f"roi_heads.box_head.fc{number}.{match.group(2)}"
    match = re.match(r"^roi_heads\.mask_head\.(\d+)\.(.+)$", key)
    if match:  # MaskRCNNHeads as a Sequential of Conv2dNormActivation
        index, rest = match.groups()
        return f"roi_heads.mask_head.mask_fcn{int(index) + 1}.{_conv_norm_suffix(rest)}"
    match = re.match(r"^roi_heads\.mask_head\.mask_fcn(\d)\.(.+)$", key)
    if match:  # older torchvision
        return f"roi_heads.mask_head.mask_fcn{match.group(1)}.{match.group(2)}"
    raise KeyError(f"Unexpected torchvision detection parameter '{key}'.")


def _box_head_layout(state_dict: Dict[str, torch.Tensor]) -> Dict[int, Tuple[str, int]]:
    """Sequential index -> ("conv"|"fc", 1-based number) for torchvision's FastRCNNConvFCHead."""
    indices = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"^roi_heads\.box_head\.(\d+)\.", k))})
    layout, conv_count, fc_count = {}, 0, 0
    for index in indices:
        weight = state_dict.get(f"roi_heads.box_head.{index}.weight")
        if weight is not None and weight.dim() == 2:
            fc_count += 1
            layout[index] = ("fc", fc_count)
        else:
            conv_count += 1
            layout[index] = ("conv", conv_count)
    return layout


def _num_rpn_convs(state_dict: Dict[str, torch.Tensor]) -> int:
    """Convs in torchvision's RPNHead (``conv_depth``): 1 for v1, 2 for v2."""
    layers = {m.group(1) for k in state_dict if (m := re.match(r"^rpn\.head\.conv\.(\d+)\.\d+\.", k))}
    return max(len(layers), 1)


def is_torchvision_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """True for a torchvision detection model or ImageNet ResNet state dict."""
    return any(k.startswith("backbone.body.") for k in state_dict) or (
        "conv1.weight" in state_dict and any(k.startswith("layer1.") for k in state_dict)
    )


def convert_torchvision_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """torchvision maskrcnn/fasterrcnn (v1 or v2) or ImageNet ResNet state dict -> mrcnn names.

    Detection heads: class logits become [1..K, background]; box and mask rows of the background
    class are dropped.
    """
    detection = any(k.startswith("backbone.body.") for k in state_dict)
    converted: Dict[str, torch.Tensor] = {}
    if not detection:
        for key, value in state_dict.items():
            new_key = _convert_resnet_key(key)
            if new_key:
                converted[f"backbone.bottom_up.{new_key}"] = value
        return converted
    box_head_layout = _box_head_layout(state_dict)
    num_rpn_convs = _num_rpn_convs(state_dict)
    for key, value in state_dict.items():
        new_key = _convert_detection_key(key, box_head_layout, num_rpn_convs)
        if not new_key:
            continue
        if new_key.startswith("roi_heads.box_predictor.cls_score."):
            value = torch.cat([value[1:], value[:1]], dim=0)
        elif new_key.startswith("roi_heads.box_predictor.bbox_pred.") and value.shape[0] > 4:
            value = value[4:]
        elif new_key.startswith("roi_heads.mask_head.predictor.") and value.shape[0] > 1:
            value = value[1:]
        converted[new_key] = value
    return converted
