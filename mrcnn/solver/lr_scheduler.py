"""Learning-rate schedules: an fvcore param scheduler (a multiplier of the base lr) with warm-up.

The schedule is a function of training progress, ``multiplier(iteration / max_iter)``. `LRMultiplier`
turns it into a torch lr scheduler stepped once per iteration.
"""

import logging
import math
from typing import List

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    LinearParamScheduler,
    ParamScheduler,
)

try:  # torch >= 2.0
    from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler
except ImportError:  # pragma: no cover
    from torch.optim.lr_scheduler import _LRScheduler as _TorchLRScheduler

__all__ = ["WarmupParamScheduler", "LRMultiplier"]

logger = logging.getLogger(__name__)


class WarmupParamScheduler(CompositeParamScheduler):
    """``scheduler`` preceded by a warm-up over the first ``warmup_length`` fraction of training.

    Linear warm-up rises from ``warmup_factor * scheduler(0)`` to the value ``scheduler`` has where
    the warm-up ends; constant warm-up holds ``warmup_factor * scheduler(0)``. The main schedule
    keeps its own time axis (it is not squeezed into the remaining fraction), so STEPS keep meaning
    absolute iterations.
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        if not 0.0 < warmup_length < 1.0:
            raise ValueError(f"warmup_length is a fraction of training in (0, 1); got {warmup_length}.")
        end_value = scheduler(0.0 if rescale_interval else warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        elif warmup_method == "constant":
            warmup = ConstantParamScheduler(start_value)
        else:
            raise ValueError(f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant'; got '{warmup_method}'.")
        super().__init__(
            [warmup, scheduler],
            lengths=[warmup_length, 1 - warmup_length],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
        )


class LRMultiplier(_TorchLRScheduler):
    """A torch lr scheduler whose lr at iteration i is ``base_lr * multiplier(i / max_iter)``.

    Each param group keeps its own base lr (biases may have a larger one), all scaled alike.
    Call `step()` once after every iteration.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int, last_iter: int = -1
    ):
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(f"multiplier must be an fvcore ParamScheduler; got {type(multiplier).__name__}.")
        if max_iter <= 0:
            raise ValueError(f"max_iter must be positive; got {max_iter}.")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # The multiplier is rebuilt from the config; only the position and base lrs are state.
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch, "_step_count": self._step_count}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        self._last_lr = self.get_lr()

    def get_lr(self) -> List[float]:
        # Past max_iter (e.g. the final step call) hold the last value instead of failing.
        where = min(self.last_epoch / self._max_iter, 1.0 - 1e-9)
        factor = self._multiplier(where)
        if not math.isfinite(factor):
            raise FloatingPointError(f"The lr schedule gave {factor} at iteration {self.last_epoch}.")
        return [base_lr * factor for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> List[float]:
        return self.get_lr()
