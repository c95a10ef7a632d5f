"""Shared steps of the torchvision parity tests (v1 and v2 architectures): converting a torchvision
model's weights with tools/convert_torchvision_weights.py into our model, running both models on
one image, and the checks that their feature maps, detections and masks agree."""

import importlib.util
import os
from typing import Dict, NamedTuple, Tuple

import torch
from torch import nn

from mrcnn.config import get_cfg
from mrcnn.modeling import build_model
from mrcnn.structures import Instances

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torchvision's FPN outputs and ours, finest first
FPN_LEVELS = (("0", "p2"), ("1", "p3"), ("2", "p4"), ("3", "p5"), ("pool", "p6"))


class ParityOutputs(NamedTuple):
    """Both models' outputs on one image: backbone feature maps and detections."""

    torchvision_features: Dict[str, torch.Tensor]
    features: Dict[str, torch.Tensor]
    torchvision_detections: Dict[str, torch.Tensor]
    instances: Instances


def convert_with_tool(torchvision_model: nn.Module, config_file: str, directory: str) -> Tuple[nn.Module, str, dict]:
    """Save ``torchvision_model``'s weights in ``directory``, convert them with the tool and load the
    result strictly into a model built from ``config_file``: (our model in eval mode, the
    torchvision weights file, the converted state dict)."""
    spec = importlib.util.spec_from_file_location(
        "convert_torchvision_weights", os.path.join(ROOT, "tools", "convert_torchvision_weights.py")
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torchvision_path = os.path.join(directory, "torchvision.pth")
    converted_path = os.path.join(directory, "converted.pth")
    torch.save(torchvision_model.state_dict(), torchvision_path)
    assert tool.main([torchvision_path, converted_path]) == 0, "the conversion tool failed"
    converted = torch.load(converted_path, weights_only=True)["model"]
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    model = build_model(cfg).eval()
    model.load_state_dict(converted, strict=True)
    return model, torchvision_path, converted


def run_both(torchvision_model: nn.Module, model: nn.Module, image: torch.Tensor) -> ParityOutputs:
    """One forward per model on ``image`` ((3, H, W) float RGB in 0-255, no resizing needed),
    without gradients; hooks on the backbones keep their feature maps."""
    height, width = image.shape[-2:]
    torchvision_features: Dict[str, torch.Tensor] = {}
    features: Dict[str, torch.Tensor] = {}
    hooks = [
        torchvision_model.backbone.register_forward_hook(lambda _m, _i, output: torchvision_features.update(output)),
        model.backbone.register_forward_hook(lambda _m, _i, output: features.update(output)),
    ]
    try:
        with torch.no_grad():
            torchvision_detections = torchvision_model([image / 255.0])[0]
            instances = model([{"image": image, "height": height, "width": width}])[0]["instances"]
    finally:
        for hook in hooks:
            hook.remove()
    return ParityOutputs(torchvision_features, features, torchvision_detections, instances)


def check_feature_maps(outputs: ParityOutputs) -> None:
    """Every FPN level has torchvision's shape and matches it within 1e-4 of its largest value."""
    for torchvision_name, our_name in FPN_LEVELS:
        a, b = outputs.torchvision_features[torchvision_name], outputs.features[our_name]
        assert a.shape == b.shape, f"{our_name}: shape {tuple(b.shape)}, torchvision {tuple(a.shape)}"
        relative = (a - b).abs().max() / a.abs().max()
        assert relative <= 1e-4, f"{our_name}: relative error {relative:.2e}"


def check_detections(outputs: ParityOutputs) -> None:
    """At least 50 detections, as many as torchvision's, in the same order: same classes, boxes
    within 0.01 px, scores within 1e-4."""
    theirs, ours = outputs.torchvision_detections, outputs.instances
    num = len(theirs["boxes"])
    assert num >= 50, f"only {num} torchvision detections; the test needs at least 50"
    assert len(ours) == num, f"{len(ours)} detections, torchvision {num}"
    assert torch.equal(ours.pred_classes + 1, theirs["labels"]), "classes differ"
    box_difference = (ours.pred_boxes.tensor - theirs["boxes"]).abs().max()
    assert box_difference <= 0.01, f"boxes differ by up to {box_difference:.4f} px"
    score_difference = (ours.scores - theirs["scores"]).abs().max()
    assert score_difference <= 1e-4, f"scores differ by up to {score_difference:.2e}"


def check_masks(outputs: ParityOutputs) -> None:
    """Our boolean masks have torchvision's shape (thresholded at 0.5), at least 50 are non-empty,
    and every non-empty pair overlaps with IoU at least 0.99."""
    their_masks = outputs.torchvision_detections["masks"][:, 0] >= 0.5
    our_masks = outputs.instances.pred_masks
    assert our_masks.dtype == torch.bool, f"masks are {our_masks.dtype}"
    shapes = tuple(our_masks.shape), tuple(their_masks.shape)
    assert shapes[0] == shapes[1], f"masks {shapes[0]}, torchvision {shapes[1]}"
    intersection = (their_masks & our_masks).flatten(1).sum(1).float()
    union = (their_masks | our_masks).flatten(1).sum(1).float()
    nonempty = union > 0
    assert nonempty.sum() >= 50, "too few non-empty masks to compare"
    iou = intersection[nonempty] / union[nonempty]
    assert iou.min() >= 0.99, f"lowest mask IoU {iou.min():.4f}"
