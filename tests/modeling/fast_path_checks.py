"""A training step of a fast-path model beside its plain twin, on the same proposals."""

import copy
from typing import Dict, List, Tuple

import torch
from torch import nn


def training_steps_on_shared_proposals(
    fast: nn.Module, plain: nn.Module, batch: List[dict], seed: int = 5
) -> Tuple[Tuple[Dict[str, float], Dict[str, torch.Tensor]], Tuple[Dict[str, float], Dict[str, torch.Tensor]]]:
    """((losses, gradients) of ``fast``, (losses, gradients) of ``plain``) for one training step.

    The RPN's proposals are a ranking of near-equal scores: the float rounding of another memory
    layout can reorder them and change which proposals the RoI heads sample. So the fast model's
    proposal generator returns the plain model's proposals (its own losses are kept): every
    difference left is the fast paths' own rounding.
    """
    results = {}
    shared = {}

    def take_plain_proposals(_module, _inputs, output):
        return copy.deepcopy(shared["proposals"]), output[1]

    def keep_proposals(_module, _inputs, output):
        shared["proposals"] = [p.to("cpu") for p in output[0]]

    for name, model in (("plain", plain), ("fast", fast)):
        hook = model.proposal_generator.register_forward_hook(
            keep_proposals if name == "plain" else take_plain_proposals
        )
        model.train()
        torch.manual_seed(seed)  # the samplers draw alike
        try:
            losses = model(batch)
        finally:
            hook.remove()
        sum(losses.values()).backward()
        gradients = {key: p.grad.clone() for key, p in model.named_parameters() if p.grad is not None}
        results[name] = ({key: float(value.detach()) for key, value in losses.items()}, gradients)
    return results["fast"], results["plain"]
