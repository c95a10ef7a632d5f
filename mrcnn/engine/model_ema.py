"""An exponential moving average (EMA) of a model's weights, and the hook that keeps it.

After every optimizer step the average moves towards the trained weights::

    average = decay_t * average + (1 - decay_t) * weights,   decay_t = min(decay, (1 + t) / (10 + t))

where t counts the updates so far: early on, while the weights change fast, the average follows
them closely; later it averages over about 1 / (1 - decay) iterations. Floating-point parameters
and buffers (BatchNorm running statistics too) are averaged; integer buffers are copied.

With MODEL_EMA.ENABLED the trainer evaluates the averaged weights, and every checkpoint holds both:
"model" (the trained weights, for resuming bit for bit) and "model_ema" (this state). Loading such
a checkpoint as MODEL.WEIGHTS (evaluation, tools/demo.py, export, fine-tuning) takes the averaged
weights; see `mrcnn.checkpoint.DetectionCheckpointer`.
"""

import contextlib
import logging
from typing import Any, ContextManager, Dict, Iterator, List, Optional

import torch
from torch import nn

from mrcnn.checkpoint import EMA_CHECKPOINT_KEY

from .train_loop import HookBase

__all__ = ["ModelEMA", "ModelEMAHook", "averaged_weights"]

logger = logging.getLogger(__name__)


class ModelEMA:
    """The moving average of ``model``'s state dict (see the module docstring for the rule).

    Args:
        model: the model being trained (a DistributedDataParallel wrapper is looked through).
        decay: the long-run decay; 1 / (1 - decay) is about the number of iterations averaged.

    Until `reset` or `load_state_dict` fills it, the average is empty (`initialized` is False).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MODEL_EMA.DECAY must be in [0, 1); got {decay}.")
        self.model = getattr(model, "module", model)  # through a DistributedDataParallel wrapper
        self.decay = float(decay)
        self.num_updates = 0
        self.weights: Dict[str, torch.Tensor] = {}

    @property
    def initialized(self) -> bool:
        return bool(self.weights)

    def _model_tensors(self) -> Dict[str, torch.Tensor]:
        return {name: tensor.detach() for name, tensor in self.model.state_dict(keep_vars=True).items()}

    def reset(self) -> None:
        """Start the average at the model's current weights."""
        self.weights = {name: tensor.clone() for name, tensor in self._model_tensors().items()}
        self.num_updates = 0

    def decay_at(self, num_updates: int) -> float:
        """The decay of update number ``num_updates`` (0-based), with the warm-up of the module docstring."""
        return min(self.decay, (1.0 + num_updates) / (10.0 + num_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average one step towards the model's weights."""
        if not self.initialized:
            self.reset()
        weight = 1.0 - self.decay_at(self.num_updates)
        averages: List[torch.Tensor] = []
        currents: List[torch.Tensor] = []
        for name, current in self._model_tensors().items():
            average = self.weights[name]
            if average.is_floating_point():
                averages.append(average)
                currents.append(current)
            else:
                average.copy_(current)
        if averages:
            torch._foreach_lerp_(averages, currents, weight)
        self.num_updates += 1

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; the trained ones come back after.

        The weights are written in place, so parameters keep their identity (the optimizer and
        DistributedDataParallel still hold them) and caches keyed on tensor versions see the change.
        """
        if not self.initialized:
            yield
            return
        with torch.no_grad():
            tensors = self._model_tensors()
            trained = {name: tensor.clone() for name, tensor in tensors.items()}
            for name, tensor in tensors.items():
                tensor.copy_(self.weights[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, tensor in tensors.items():
                    tensor.copy_(trained[name])

    @torch.no_grad()
    def take_buffers(self) -> None:
        """Make the model's buffers the average's: after recomputing BatchNorm statistics under the
        averaged weights (`PreciseBN`), inside `applied`."""
        buffer_names = {name for name, _ in self.model.named_buffers()}
        for name, tensor in self._model_tensors().items():
            if name in buffer_names:
                self.weights[name].copy_(tensor)

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "weights": dict(self.weights)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        expected = self._model_tensors()
        weights = state.get("weights", {})
        missing = sorted(set(expected) - set(weights))
        if missing:
            raise KeyError(
                f"The checkpoint's '{EMA_CHECKPOINT_KEY}' lacks {len(missing)} of the model's tensors "
                f"(first: {missing[0]}); it was written for another model."
            )
        self.weights = {name: weights[name].to(expected[name].device).clone() for name in expected}
        self.num_updates = int(state.get("num_updates", 0))
        if float(state.get("decay", self.decay)) != self.decay:
            logger.info(f"MODEL_EMA.DECAY is {self.decay}; the checkpoint's average was kept with {state['decay']}.")


def averaged_weights(model_ema: Optional[ModelEMA]) -> ContextManager[None]:
    """``model_ema.applied()``; a block that changes nothing when there is no average (None)."""
    return model_ema.applied() if model_ema is not None else contextlib.nullcontext()


class ModelEMAHook(HookBase):
    """Update a `ModelEMA` after every optimizer step; start it at the weights training starts from."""

    def __init__(self, ema: ModelEMA):
        self.ema = ema

    def before_train(self) -> None:
        if not self.ema.initialized:  # not restored by a resume: start at the loaded weights
            self.ema.reset()

    def after_step(self) -> None:
        self.ema.update()
