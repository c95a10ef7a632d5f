"""Region proposals: anchor generators, RPN heads and the RPN, each with its registry."""

from .anchor_generator import ANCHOR_GENERATOR_REGISTRY, DefaultAnchorGenerator, build_anchor_generator
from .build import PROPOSAL_GENERATOR_REGISTRY, build_proposal_generator
from .proposal_utils import find_top_rpn_proposals, select_rpn_proposals
from .rpn import RPN
from .rpn_head import RPN_HEAD_REGISTRY, StandardRPNHead, build_rpn_head

__all__ = [
    "ANCHOR_GENERATOR_REGISTRY",
    "DefaultAnchorGenerator",
    "build_anchor_generator",
    "PROPOSAL_GENERATOR_REGISTRY",
    "build_proposal_generator",
    "find_top_rpn_proposals",
    "select_rpn_proposals",
    "RPN",
    "RPN_HEAD_REGISTRY",
    "StandardRPNHead",
    "build_rpn_head",
]
