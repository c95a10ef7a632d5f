"""Whether one training step of ours gives torchvision's losses and gradients on the same batch.

Both models start from the same weights; randomness is matched where both sides draw in the same
order (the RPN samplers, from one seed over the same anchors) and taken out where the order may
differ by float rounding (the RoI samplers take every candidate of few proposals). What is left
is each implementation's float rounding, which is measured too: torchvision's own gradients when
its images move by 1e-5 relative noise.
"""

import copy
from contextlib import contextmanager, nullcontext
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import torch
from torch import nn

from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
from mrcnn.modeling.fast_paths import fast_paths_disabled

from .synthetic_inputs import to_torchvision_training_inputs

__all__ = [
    "LOSS_NAMES",
    "TrainingStep",
    "torchvision_sizes_of",
    "training_step",
    "training_step_agreement",
]

# torchvision's loss names -> ours
LOSS_NAMES = {
    "loss_objectness": "loss_rpn_cls",
    "loss_rpn_box_reg": "loss_rpn_loc",
    "loss_classifier": "loss_cls",
    "loss_box_reg": "loss_box_reg",
    "loss_mask": "loss_mask",
}

# RoI sampler batch size above any candidate count: every proposal is sampled
_EVERY_CANDIDATE = 10**6


class TrainingStep(NamedTuple):
    """One training step of both models: each loss as (ours, torchvision's); for each parameter with
    a gradient, the L2 norm of the gradients' difference over the norm of torchvision's gradient;
    and the same measure between torchvision's gradient and its own with the images perturbed at
    float32-rounding scale (how much rounding alone moves that gradient)."""

    losses: Dict[str, Tuple[float, float]]
    gradient_errors: Dict[str, float]
    rounding_errors: Dict[str, float]


@contextmanager
def torchvision_sizes_of(torchvision_model: nn.Module, height: int, width: int) -> Iterator[None]:
    """torchvision's model resizes inside (to 800 px by default) while ours takes the image as it
    comes: within the block it keeps height × width (its resize factor is exactly 1)."""
    transform = torchvision_model.transform
    saved = transform.min_size, transform.max_size
    transform.min_size, transform.max_size = (min(height, width),), max(height, width)
    try:
        yield
    finally:
        transform.min_size, transform.max_size = saved


def _torchvision_step(
    torchvision_model: nn.Module, images: List[torch.Tensor], targets: List[dict], post_nms_topk: int, seed: int
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """(losses, gradients under our parameter names) of a copy of ``torchvision_model``."""
    torchvision_model = copy.deepcopy(torchvision_model).train()
    torchvision_model.roi_heads.fg_bg_sampler.batch_size_per_image = _EVERY_CANDIDATE
    torchvision_model.rpn._post_nms_top_n["training"] = post_nms_topk
    # torchvision draws a random training size even from a single choice
    torchvision_model.transform.torch_choice = lambda sizes: sizes[0]
    height, width = images[0].shape[-2:]
    with torchvision_sizes_of(torchvision_model, height, width):
        torch.manual_seed(seed)
        losses = torchvision_model(images, copy.deepcopy(targets))
    sum(losses.values()).backward()
    gradients = {name: p.grad for name, p in torchvision_model.named_parameters() if p.grad is not None}
    return {name: loss.detach() for name, loss in losses.items()}, convert_torchvision_state_dict(gradients)


def _relative_differences(gradients: Dict[str, torch.Tensor], reference: Dict[str, torch.Tensor]) -> Dict[str, float]:
    if set(gradients) != set(reference):
        raise ValueError(f"parameters with gradients differ: {sorted(set(gradients) ^ set(reference))[:5]}")
    differences = {}
    for name, value in gradients.items():
        scale = reference[name].norm()
        difference = (value - reference[name]).norm()
        # a gradient that is exactly zero (no anchor or RoI reached it) must stay zero
        differences[name] = float(difference / scale) if scale > 0 else (0.0 if difference == 0 else float("inf"))
    return differences


def training_step(
    torchvision_model: nn.Module,
    model: nn.Module,
    batch: List[dict],
    post_nms_topk: int = 64,
    seed: int = 0,
    fast_paths: bool = False,
) -> TrainingStep:
    """Losses and gradients of one training forward and backward of copies of both models (the
    originals keep their state, BatchNorm statistics included) on ``batch`` (our training inputs,
    all of one size, on the models' device or the host), ours computing the plain way unless
    ``fast_paths``; and torchvision's gradients once more with its images perturbed by 1e-5
    relative noise.

    The RPN samplers draw from the same seed over the same anchors. The RoI samplers take every
    candidate, since the order of proposals whose scores differ only by float rounding may differ;
    the ``post_nms_topk`` proposals per image keep that cheap.
    """
    device = next(model.parameters()).device
    images, targets = to_torchvision_training_inputs(batch)
    images = [image.to(device) for image in images]
    targets = [{key: value.to(device) for key, value in target.items()} for target in targets]
    torchvision_losses, torchvision_gradients = _torchvision_step(
        torchvision_model, images, targets, post_nms_topk, seed
    )
    noise = torch.Generator().manual_seed(seed)
    perturbed = [image * (1 + 1e-5 * torch.randn(image.shape, generator=noise).to(device)) for image in images]
    _, perturbed_gradients = _torchvision_step(torchvision_model, perturbed, targets, post_nms_topk, seed)

    model = copy.deepcopy(model).train()
    model.roi_heads.batch_size_per_image = _EVERY_CANDIDATE
    model.proposal_generator.post_nms_topk[True] = post_nms_topk
    with nullcontext() if fast_paths else fast_paths_disabled():
        torch.manual_seed(seed)
        losses = model(batch)
        sum(losses.values()).backward()
    if set(losses) != set(LOSS_NAMES.values()):
        raise ValueError(f"the model's losses are {sorted(losses)}, not torchvision's {sorted(LOSS_NAMES.values())}")
    gradients = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return TrainingStep(
        {ours: (float(losses[ours]), float(torchvision_losses[theirs])) for theirs, ours in LOSS_NAMES.items()},
        _relative_differences(gradients, torchvision_gradients),
        _relative_differences(perturbed_gradients, torchvision_gradients),
    )


def training_step_agreement(step: TrainingStep, loss_tolerance: float = 1e-5) -> Dict[str, Any]:
    """Summary of a ``training_step``: "losses" {name: [ours, torchvision's]},
    "max_relative_loss_difference", "worst_gradient" (the parameter whose gradient error is the
    largest multiple of the rounding bound 5 × rounding + 1e-4, with "gradient_error" and that
    "bound"), and "agree": every loss within ``loss_tolerance`` (relative) and every gradient
    within its bound, the criteria of the parity tests.
    """
    relative = {name: abs(ours - theirs) / max(abs(theirs), 1e-12) for name, (ours, theirs) in step.losses.items()}
    bounds = {name: 5 * step.rounding_errors[name] + 1e-4 for name in step.gradient_errors}
    worst = max(step.gradient_errors, key=lambda name: step.gradient_errors[name] / bounds[name])
    return {
        "losses": {name: list(values) for name, values in step.losses.items()},
        "max_relative_loss_difference": max(relative.values()),
        "worst_gradient": worst,
        "gradient_error": step.gradient_errors[worst],
        "bound": bounds[worst],
        "agree": max(relative.values()) <= loss_tolerance and step.gradient_errors[worst] <= bounds[worst],
    }
