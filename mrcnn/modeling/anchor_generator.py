"""``modeling.anchor_generator``, where detectron2 users import the anchor generators from; they live
in `mrcnn.modeling.proposal_generator.anchor_generator` (these are the same objects)."""

from .proposal_generator.anchor_generator import (
    ANCHOR_GENERATOR_REGISTRY,
    DefaultAnchorGenerator,
    build_anchor_generator,
)

__all__ = ["ANCHOR_GENERATOR_REGISTRY", "DefaultAnchorGenerator", "build_anchor_generator"]
