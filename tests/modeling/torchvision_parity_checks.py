"""Shared steps of the torchvision parity tests (v1 and v2 architectures): converting a torchvision
model's weights with tools/convert_torchvision_weights.py into our model, running both models on
one image, the checks that their feature maps, proposals, detections and masks agree, and the
check of one training step of both (``mrcnn.benchmark.training_agreement.training_step``, which
the benchmark also reports) on its losses and gradients."""

import importlib.util
import os
from contextlib import contextmanager
from typing import Dict, Iterator, NamedTuple, Optional, Tuple

import torch
from torch import nn

from mrcnn.benchmark import natural_image
from mrcnn.benchmark.training_agreement import TrainingStep, torchvision_sizes_of
from mrcnn.config import get_cfg
from mrcnn.modeling import build_model
from mrcnn.structures import Instances

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torchvision's FPN outputs and ours, finest first
FPN_LEVELS = (("0", "p2"), ("1", "p3"), ("2", "p4"), ("3", "p5"), ("pool", "p6"))


class ParityOutputs(NamedTuple):
    """Both models' outputs on one image: backbone feature maps, proposals and detections."""

    torchvision_features: Dict[str, torch.Tensor]
    features: Dict[str, torch.Tensor]
    torchvision_detections: Dict[str, torch.Tensor]
    instances: Instances
    torchvision_proposals: torch.Tensor
    proposals: Instances


def image_tensor(height: int, width: int, seed: int = 3) -> torch.Tensor:
    """A natural-looking (3, height, width) float RGB image in 0-255."""
    return torch.from_numpy(natural_image(height, width, seed=seed)).permute(2, 0, 1).float()


@contextmanager
def saturated_objectness(torchvision_model: nn.Module, model: nn.Module, factor: float) -> Iterator[None]:
    """Within the block both models' objectness weights are scaled by ``factor``, so that many
    logits pass 17 and their float32 probabilities are exactly 1.0; restored afterwards."""
    weights = [torchvision_model.rpn.head.cls_logits.weight, model.proposal_generator.rpn_head.objectness_logits.weight]
    saved = [weight.detach().clone() for weight in weights]
    with torch.no_grad():
        for weight in weights:
            weight.mul_(factor)
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, value in zip(weights, saved):
                weight.copy_(value)


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
    """One forward per model on ``image`` ((3, H, W) float RGB in 0-255, not resized by either),
    without gradients; hooks keep the backbones' feature maps and the RPNs' proposals."""
    height, width = image.shape[-2:]
    torchvision_features: Dict[str, torch.Tensor] = {}
    features: Dict[str, torch.Tensor] = {}
    proposals: Dict[str, torch.Tensor] = {}
    hooks = [
        torchvision_model.backbone.register_forward_hook(lambda _m, _i, output: torchvision_features.update(output)),
        model.backbone.register_forward_hook(lambda _m, _i, output: features.update(output)),
        torchvision_model.rpn.register_forward_hook(lambda _m, _i, output: proposals.update(theirs=output[0][0])),
        model.proposal_generator.register_forward_hook(lambda _m, _i, output: proposals.update(ours=output[0][0])),
    ]
    try:
        with torch.no_grad(), torchvision_sizes_of(torchvision_model, height, width):
            torchvision_detections = torchvision_model([image / 255.0])[0]
            instances = model([{"image": image, "height": height, "width": width}])[0]["instances"]
    finally:
        for hook in hooks:
            hook.remove()
    return ParityOutputs(
        torchvision_features, features, torchvision_detections, instances, proposals["theirs"], proposals["ours"]
    )


# padded sides 416 and 288, not multiples of 64: p6 is 7x5 cells, strides 416 // 7 = 59 and 288 // 5 = 57
PORTRAIT = (416, 288)


def check_portrait_with_saturated_objectness(torchvision_model: nn.Module, model: nn.Module) -> None:
    """Proposals, detections and masks agree on a portrait image whose padded sides are not
    multiples of 64, with the objectness weights scaled by 10 so that at least 100 proposals have
    float32 probability exactly 1.0 (torchvision's tie order decides which ones NMS keeps)."""
    with saturated_objectness(torchvision_model, model, 10.0):
        outputs = run_both(torchvision_model, model, image_tensor(*PORTRAIT))
    saturated = int((outputs.proposals.objectness_logits.sigmoid() == 1.0).sum())
    assert saturated >= 100, f"only {saturated} proposals have probability 1.0"
    check_proposals(outputs)
    check_detections(outputs)
    check_masks(outputs)


def check_feature_maps(outputs: ParityOutputs) -> None:
    """Every FPN level has torchvision's shape and matches it within 1e-4 of its largest value."""
    for torchvision_name, our_name in FPN_LEVELS:
        a, b = outputs.torchvision_features[torchvision_name], outputs.features[our_name]
        assert a.shape == b.shape, f"{our_name}: shape {tuple(b.shape)}, torchvision {tuple(a.shape)}"
        relative = (a - b).abs().max() / a.abs().max()
        assert relative <= 1e-4, f"{our_name}: relative error {relative:.2e}"


def _pair_in_order(difference: torch.Tensor, tolerance: float) -> torch.Tensor:
    """For each of our items (rows of the (N, N) ``difference`` to torchvision's), the torchvision
    item it pairs with: the one at its own position when within ``tolerance``, otherwise the first
    unpaired one within it; -1 where there is none."""
    num = difference.shape[0]
    partner = torch.full((num,), -1, dtype=torch.int64)
    taken = torch.zeros(num, dtype=torch.bool)
    in_place = difference.diagonal() <= tolerance
    partner[in_place] = torch.arange(num)[in_place]
    taken[in_place] = True
    for index in (~in_place).nonzero().flatten().tolist():
        candidates = ((difference[index] <= tolerance) & ~taken).nonzero().flatten()
        if len(candidates):
            partner[index] = candidates[0]
            taken[candidates[0]] = True
    return partner


def _out_of_order(partner: torch.Tensor, our_scores: torch.Tensor, tie_breakers: Optional[torch.Tensor] = None) -> int:
    """How many items sit at another position than their torchvision partner without excuse.

    Two items may trade places when their scores differ by at most 1e-4 (the score tolerance):
    float32 rounding orders such near-ties differently in any two implementations. Items with
    exactly equal scores (float32 probabilities saturated at 1.0, or equal near it) are ordered by
    a tie rule, the same on both sides; with ``tie_breakers`` given (the logits that order ties
    within a level) they may trade places only when those agree within 1e-2: rounding moves the
    logits by up to 1e-3 here (v2, objectness weights scaled by 10).
    """
    moved = (partner != torch.arange(len(partner))).nonzero().flatten()
    mine, at_partner = our_scores[moved], our_scores[partner[moved]]
    unexcused = (mine - at_partner).abs() > 1e-4
    if tie_breakers is not None:
        tied = mine == at_partner
        unexcused |= tied & ((tie_breakers[moved] - tie_breakers[partner[moved]]).abs() > 1e-2)
    return int(unexcused.sum())


def check_proposals(outputs: ParityOutputs) -> None:
    """As many proposals as torchvision's, the same boxes within 0.01 px, in the same order up to
    near-ties (see ``_out_of_order``): equal probabilities (1.0) keep torchvision's tie order."""
    theirs, ours = outputs.torchvision_proposals, outputs.proposals.proposal_boxes.tensor
    assert ours.shape == theirs.shape, f"{len(ours)} proposals, torchvision {len(theirs)}"
    partner = _pair_in_order((ours[:, None, :] - theirs[None, :, :]).abs().amax(dim=2), 0.01)
    missing = int((partner < 0).sum())
    assert missing == 0, f"{missing} of our {len(ours)} proposals have no torchvision proposal within 0.01 px"
    logits = outputs.proposals.objectness_logits.float()
    out_of_order = _out_of_order(partner, logits.sigmoid(), tie_breakers=logits)
    assert out_of_order == 0, f"{out_of_order} of {len(ours)} proposals in another order"


def _detection_partners(outputs: ParityOutputs) -> torch.Tensor:
    """For each of our detections, the torchvision detection of the same class with a box within
    0.01 px and a score within 1e-4 (its own position first); -1 where there is none."""
    theirs, ours = outputs.torchvision_detections, outputs.instances
    box_difference = (ours.pred_boxes.tensor[:, None, :] - theirs["boxes"][None, :, :]).abs().amax(dim=2)
    score_difference = (ours.scores[:, None] - theirs["scores"][None, :]).abs()
    same_class = (ours.pred_classes + 1)[:, None] == theirs["labels"][None, :]
    # within tolerance <=> box_difference <= 0.01 and score_difference <= 1e-4
    within = (box_difference <= 0.01) & (score_difference <= 1e-4) & same_class
    return _pair_in_order(torch.where(within, 0.0, 1.0), 0.5)


def check_detections(outputs: ParityOutputs) -> None:
    """At least 50 detections, as many as torchvision's, in the same order: same classes, boxes
    within 0.01 px, scores within 1e-4; detections whose scores differ by at most that 1e-4 may
    trade places (see ``_out_of_order``)."""
    theirs, ours = outputs.torchvision_detections, outputs.instances
    num = len(theirs["boxes"])
    assert num >= 50, f"only {num} torchvision detections; the test needs at least 50"
    assert len(ours) == num, f"{len(ours)} detections, torchvision {num}"
    partner = _detection_partners(outputs)
    unpaired = (partner < 0).nonzero().flatten()
    if len(unpaired):
        index = int(unpaired[0])
        box_difference = (ours.pred_boxes.tensor[index] - theirs["boxes"][index]).abs().max()
        raise AssertionError(
            f"{len(unpaired)} of {num} detections have no torchvision counterpart (same class, box within "
            f"0.01 px, score within 1e-4); at position {index}: class {int(ours.pred_classes[index]) + 1} vs "
            f"{int(theirs['labels'][index])}, box difference {box_difference:.4f} px, score "
            f"{float(ours.scores[index]):.6f} vs {float(theirs['scores'][index]):.6f}"
        )
    out_of_order = _out_of_order(partner, ours.scores)
    assert out_of_order == 0, f"{out_of_order} of {num} detections in another order"


def check_masks(outputs: ParityOutputs) -> None:
    """Our boolean masks have torchvision's shape (thresholded at 0.5), at least 50 are non-empty,
    and every non-empty pair (detections paired as check_detections pairs them) overlaps with IoU
    at least 0.99."""
    their_masks = outputs.torchvision_detections["masks"][:, 0] >= 0.5
    our_masks = outputs.instances.pred_masks
    assert our_masks.dtype == torch.bool, f"masks are {our_masks.dtype}"
    shapes = tuple(our_masks.shape), tuple(their_masks.shape)
    assert shapes[0] == shapes[1], f"masks {shapes[0]}, torchvision {shapes[1]}"
    partner = _detection_partners(outputs)
    assert (partner >= 0).all(), "detections differ (see check_detections)"
    their_masks = their_masks[partner]
    intersection = (their_masks & our_masks).flatten(1).sum(1).float()
    union = (their_masks | our_masks).flatten(1).sum(1).float()
    nonempty = union > 0
    assert nonempty.sum() >= 50, "too few non-empty masks to compare"
    iou = intersection[nonempty] / union[nonempty]
    assert iou.min() >= 0.99, f"lowest mask IoU {iou.min():.4f}"


def check_training_step(step: TrainingStep) -> None:
    """Every loss within 1e-5 of torchvision's (relative); every parameter's gradient within
    5 × (rounding's own effect on it) + 1e-4 of torchvision's (relative L2).

    Why not one fixed tolerance: some gradients are ill-conditioned, decided by a few ReLU inputs
    near zero or a handful of sampled anchors, and float32 rounding moves them by percents: when
    torchvision's image moves by 1e-5, its own gradients of the res3 convs move by 1e-2 (v1) to
    1e-1 (v2), while those of the heads move by 1e-5 to 1e-3. Each gradient is therefore held to
    the scale at which rounding alone moves it. Ours stay below a tenth of that bound. A real
    difference stands far above it: mask targets built the detectron2 way move the mask loss by
    3e-2 (v1) and 7e-3 (v2), and the mask predictor's gradient by 400 (v1) and 30 (v2) times
    its bound.
    """
    for name, (ours, theirs) in step.losses.items():
        assert abs(ours - theirs) <= 1e-5 * abs(theirs), f"{name}: {ours:.8f}, torchvision {theirs:.8f}"
    for name, error in step.gradient_errors.items():
        rounding = step.rounding_errors[name]
        assert error <= 5 * rounding + 1e-4, (
            f"{name}: gradient differs by {error:.2e} from torchvision's, which rounding moves by {rounding:.2e}"
        )
