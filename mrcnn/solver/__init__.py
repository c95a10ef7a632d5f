"""Optimizers and learning-rate schedules built from SOLVER.* config keys."""

from .build import (
    NORM_MODULE_TYPES,
    build_gradient_clipper,
    build_lr_multiplier,
    build_lr_scheduler,
    build_optimizer,
    get_default_optimizer_params,
)
from .lr_scheduler import LRMultiplier, WarmupParamScheduler

__all__ = [
    "NORM_MODULE_TYPES",
    "build_gradient_clipper",
    "build_lr_multiplier",
    "build_lr_scheduler",
    "build_optimizer",
    "get_default_optimizer_params",
    "LRMultiplier",
    "WarmupParamScheduler",
]
