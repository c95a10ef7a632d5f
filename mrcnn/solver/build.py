"""Build the optimizer, the lr schedule and the gradient clipper from SOLVER.* keys."""

import logging
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

import torch
from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler, ParamScheduler
from torch import nn

from .lr_scheduler import LRMultiplier, WarmupParamScheduler

__all__ = [
    "NORM_MODULE_TYPES",
    "get_default_optimizer_params",
    "build_optimizer",
    "build_lr_scheduler",
    "build_lr_multiplier",
    "build_gradient_clipper",
]

logger = logging.getLogger(__name__)

NORM_MODULE_TYPES: Tuple[Type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
_NORM_NAME_ENDINGS = ("Norm", "Norm1d", "Norm2d", "Norm3d")


def get_default_optimizer_params(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float = 0.0,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: Optional[float] = None,
    norm_module_types: Sequence[Type[nn.Module]] = NORM_MODULE_TYPES,
) -> List[Dict[str, Any]]:
    """Param groups for ``model``: norm-layer parameters get ``weight_decay_norm``, biases get
    ``base_lr * bias_lr_factor`` and ``weight_decay_bias`` (None: ``weight_decay``).

    Parameters with the same (lr, weight decay) share a group; each parameter appears once even
    when modules share it, and frozen parameters (requires_grad False) are left out.
    """
    if weight_decay_bias is None:
        weight_decay_bias = weight_decay
    norm_types = tuple(norm_module_types)
    groups: Dict[Tuple[float, float], List[nn.Parameter]] = {}
    seen = set()
    for module in model.modules():
        # The name test catches norm layers defined outside torch (plugins, mrcnn.layers).
        is_norm = isinstance(module, norm_types) or type(module).__name__.endswith(_NORM_NAME_ENDINGS)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lr, decay = base_lr, weight_decay
            if is_norm:
                decay = weight_decay_norm
            elif name == "bias":
                lr, decay = base_lr * bias_lr_factor, weight_decay_bias
            groups.setdefault((lr, decay), []).append(param)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def build_optimizer(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over the default param groups."""
    solver = cfg.SOLVER
    # detectron2 writes None for "same as WEIGHT_DECAY"; we also accept any negative value.
    bias_decay = solver.WEIGHT_DECAY_BIAS
    weight_decay_bias = bias_decay if bias_decay is not None and bias_decay >= 0 else solver.WEIGHT_DECAY
    params = get_default_optimizer_params(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        bias_lr_factor=solver.BIAS_LR_FACTOR,
        weight_decay_bias=weight_decay_bias,
    )
    if not params:
        raise ValueError("The model has no trainable parameters (all have requires_grad=False).")
    name = solver.OPTIMIZER.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=solver.BASE_LR, momentum=solver.MOMENTUM, nesterov=solver.NESTEROV)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=solver.BASE_LR, betas=tuple(solver.BETAS), eps=solver.EPS)
    raise ValueError(f"SOLVER.OPTIMIZER must be 'SGD' or 'AdamW'; got '{solver.OPTIMIZER}'.")


def build_lr_multiplier(cfg: Any) -> ParamScheduler:
    """The lr multiplier as a function of training progress, warm-up included."""
    solver = cfg.SOLVER
    max_iter = solver.MAX_ITER
    name = solver.LR_SCHEDULER_NAME
    if name == "WarmupMultiStepLR":
        steps = [int(step) for step in solver.STEPS if step < max_iter]
        if len(steps) != len(solver.STEPS):
            logger.warning(
                f"SOLVER.STEPS {list(solver.STEPS)} has steps at or past MAX_ITER={max_iter}; ignoring them."
            )
        if sorted(set(steps)) != steps:
            raise ValueError(f"SOLVER.STEPS must be strictly increasing; got {list(solver.STEPS)}.")
        if steps and steps[0] <= 0:
            raise ValueError(f"SOLVER.STEPS must be positive; got {list(solver.STEPS)}.")
        scheduler: ParamScheduler = MultiStepParamScheduler(
            values=[solver.GAMMA**k for k in range(len(steps) + 1)],
            milestones=steps,
            num_updates=max(max_iter, len(steps) + 1),
        )
    elif name == "WarmupCosineLR":
        end_value = solver.BASE_LR_END / solver.BASE_LR if solver.BASE_LR > 0 else 0.0
        scheduler = CosineParamScheduler(1.0, end_value)
    else:
        raise ValueError(f"SOLVER.LR_SCHEDULER_NAME must be 'WarmupMultiStepLR' or 'WarmupCosineLR'; got '{name}'.")
    warmup_length = solver.WARMUP_ITERS / max_iter
    if solver.WARMUP_ITERS <= 0:
        return scheduler
    if warmup_length >= 1.0:
        logger.warning(
            f"SOLVER.WARMUP_ITERS={solver.WARMUP_ITERS} covers all of MAX_ITER={max_iter}; "
            f"warming up over the whole run."
        )
        warmup_length = 1.0 - 1.0 / (max_iter + 1)
    return WarmupParamScheduler(
        scheduler,
        solver.WARMUP_FACTOR,
        warmup_length,
        solver.WARMUP_METHOD,
        rescale_interval=solver.RESCALE_INTERVAL,
    )


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> LRMultiplier:
    """The per-iteration lr scheduler named by SOLVER.LR_SCHEDULER_NAME, with warm-up."""
    return LRMultiplier(optimizer, build_lr_multiplier(cfg), max_iter=cfg.SOLVER.MAX_ITER)


def build_gradient_clipper(cfg: Any) -> Optional[Callable[[Iterable[torch.Tensor]], None]]:
    """A function clipping the gradients of the parameters it is given, or None when disabled.

    CLIP_TYPE "value" clamps every gradient element to [-CLIP_VALUE, CLIP_VALUE]; "norm" rescales
    all gradients together so that their total NORM_TYPE-norm is at most CLIP_VALUE.
    """
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not clip.ENABLED:
        return None
    value = float(clip.CLIP_VALUE)
    if not value > 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be positive; got {value}.")
    if clip.CLIP_TYPE == "value":
        return lambda params: torch.nn.utils.clip_grad_value_(list(params), value)
    if clip.CLIP_TYPE == "norm":
        norm_type = float(clip.NORM_TYPE)
        if not (norm_type > 0 or math.isinf(norm_type)):
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.NORM_TYPE must be positive or inf; got {norm_type}.")
        return lambda params: torch.nn.utils.clip_grad_norm_(list(params), value, norm_type=norm_type)
    raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE must be 'value' or 'norm'; got '{clip.CLIP_TYPE}'.")
