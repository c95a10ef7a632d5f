"""PROPOSAL_GENERATOR_REGISTRY and building the proposal generator a config names."""

from typing import Dict, Optional

from torch import nn

from mrcnn.utils.registry import Registry

__all__ = ["PROPOSAL_GENERATOR_REGISTRY", "build_proposal_generator"]

PROPOSAL_GENERATOR_REGISTRY = Registry("PROPOSAL_GENERATOR")
PROPOSAL_GENERATOR_REGISTRY.__doc__ = """
Proposal generators: modules called as ``proposals, losses = m(images, features, gt_instances)``.
A registered class is built as ``cls(cfg, input_shape)``, where ``input_shape`` is
a dict from feature name to ShapeSpec
(decorate ``__init__`` with ``mrcnn.config.configurable`` and add ``from_config``).
"""


def build_proposal_generator(cfg, input_shape: Dict[str, "ShapeSpec"]) -> Optional[nn.Module]:  # noqa: F821
    """The proposal generator named by MODEL.PROPOSAL_GENERATOR.NAME.

    Precomputed proposals are not supported, so a generator is always built.
    """
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals":
        raise ValueError("MODEL.PROPOSAL_GENERATOR.NAME 'PrecomputedProposals' is not supported; use 'RPN'")
    return PROPOSAL_GENERATOR_REGISTRY.get(name)(cfg, input_shape)
