"""Hooks that measure the model while it trains: evaluation, validation loss, best checkpoint, early stop."""

import logging
import math
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import torch

from mrcnn.utils import comm
from mrcnn.utils.env import preserved_rng_states

from .train_loop import HookBase

__all__ = ["EvalHook", "BestCheckpointer", "ValidationLoss", "EarlyStopping"]

logger = logging.getLogger(__name__)


def _scalars_of(results: Mapping[str, Any]) -> Dict[str, float]:
    """The numbers of nested ``results`` as ``{"bbox/AP": 50.1}``; entries that are not numbers are left out."""
    from mrcnn.evaluation import flatten_results_dict

    scalars: Dict[str, float] = {}
    for name, value in flatten_results_dict(results).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[str(name)] = float(value)
        else:
            logger.debug(f"Result '{name}' is not a number ({type(value).__name__}); not recorded as a scalar.")
    return scalars


def _is_better(value: float, best: Optional[float], mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _check_mode(mode: str) -> str:
    if mode not in ("max", "min"):
        raise ValueError(f"Metric mode must be 'max' or 'min'; got '{mode}'.")
    return mode


class EvalHook(HookBase):
    """Call ``eval_function()`` every ``eval_period`` iterations and after training.

    Its result (a possibly nested dict of numbers) is stored as scalars named like "bbox/AP", so
    writers, `BestCheckpointer` and `EarlyStopping` see it. The random generators are restored
    afterwards: evaluating does not change the training that follows.
    """

    def __init__(
        self, eval_period: int, eval_function: Callable[[], Optional[Mapping[str, Any]]], eval_after_train: bool = True
    ):
        self._period = eval_period
        self._func = eval_function
        self._eval_after_train = eval_after_train
        self._last_eval_iter: Optional[int] = None

    def _do_eval(self) -> None:
        with preserved_rng_states():
            results = self._func()
        if results:
            if not isinstance(results, Mapping):
                raise TypeError(f"The evaluation function must return a dict; got {type(results).__name__}.")
            scalars = _scalars_of(results)
            if scalars:
                self.trainer.storage.put_scalars(**scalars, smoothing_hint=False)
        self._last_eval_iter = self.trainer.iter
        # Ranks finish inference at different times; the next training step needs all of them.
        comm.synchronize()

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._do_eval()

    def after_train(self) -> None:
        if self.trainer.finished and self._eval_after_train and self._last_eval_iter != self.trainer.iter:
            self._do_eval()


class ValidationLoss(HookBase):
    """Every ``period`` iterations, average the training losses over a held-out loader.

    The model stays in training mode (losses need targets) under ``torch.no_grad()``; its buffers
    (e.g. BatchNorm running statistics) and the random generators are put back afterwards, so the
    measurement leaves training unchanged. Records "validation_loss" and "validation/<loss name>".
    """

    def __init__(self, period: int, data_loader: Iterable, model: Optional[torch.nn.Module] = None):
        self._period = period
        self._data_loader = data_loader
        self._model = model

    def after_step(self) -> None:
        if self._period > 0 and (self.trainer.iter + 1) % self._period == 0:
            self._measure()

    def _measure(self) -> None:
        model = self._model if self._model is not None else self.trainer.model
        # The bare module: a DDP forward may sync buffers, and ranks may see different batch counts.
        model = getattr(model, "module", model)
        buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
        sums: Dict[str, float] = defaultdict(float)
        num_batches = 0
        with torch.no_grad(), preserved_rng_states():
            for batch in self._data_loader:
                for name, value in model(batch).items():
                    sums[name] += float(value)
                num_batches += 1
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
        all_sums = comm.all_gather((dict(sums), num_batches))
        total_batches = sum(count for _, count in all_sums)
        if not comm.is_main_process() or total_batches == 0:
            return
        means = {name: sum(s.get(name, 0.0) for s, _ in all_sums) / total_batches for name in sums}
        storage = self.trainer.storage
        storage.put_scalar("validation_loss", sum(means.values()), smoothing_hint=False)
        storage.put_scalars(**{f"validation/{name}": value for name, value in means.items()}, smoothing_hint=False)


class BestCheckpointer(HookBase):
    """Keep ``{file_prefix}.pth`` holding the model with the best value of ``val_metric`` so far.

    Looks for a new value of the metric after every ``eval_period``-th iteration (every iteration
    when 0) and after training. The file does not become ``last_checkpoint``: resuming continues
    from the newest periodic checkpoint, not from the best one.
    """

    def __init__(
        self, eval_period: int, checkpointer: Any, val_metric: str, mode: str = "max", file_prefix: str = "model_best"
    ):
        self._period = eval_period
        self._checkpointer = checkpointer
        self._metric = val_metric
        self._mode = _check_mode(mode)
        self._file_prefix = file_prefix
        self.best_value: Optional[float] = None
        self.best_iter: Optional[int] = None
        self._last_seen_iter = -1

    def _check(self) -> None:
        if not comm.is_main_process():
            return
        latest = self.trainer.storage.latest().get(self._metric)
        if latest is None:
            return
        value, iteration = latest
        if iteration <= self._last_seen_iter:
            return
        self._last_seen_iter = iteration
        if not math.isfinite(value):
            logger.warning(f"BestCheckpointer: '{self._metric}' is {value} at iteration {iteration}; ignored.")
            return
        if _is_better(value, self.best_value, self._mode):
            previous = self.best_value
            self.best_value, self.best_iter = value, iteration
            logger.info(f"New best {self._metric}={value:.5g} at iteration {iteration} (previous {previous}); saving.")
            self._checkpointer.save(
                self._file_prefix, tag_last=False, iteration=self.trainer.iter, best_metric={self._metric: value}
            )

    def after_step(self) -> None:
        if self._period <= 0 or (self.trainer.iter + 1) % self._period == 0:
            self._check()

    def after_train(self) -> None:
        if not self.trainer.finished:
            return
        self._check()
        if self.best_value is None and comm.is_main_process():
            known = sorted(self.trainer.storage.latest())
            logger.warning(
                f"BestCheckpointer: metric '{self._metric}' was never recorded, so no {self._file_prefix}.pth "
                f"was written (SOLVER.BEST_CHECKPOINT.METRIC). Recorded scalars: {known}"
            )

    def state_dict(self) -> Dict[str, Any]:
        if self.best_value is None:
            return {}
        return {"best_value": self.best_value, "best_iter": self.best_iter, "last_seen_iter": self._last_seen_iter}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best_value = state.get("best_value")
        self.best_iter = state.get("best_iter")
        self._last_seen_iter = state.get("last_seen_iter", -1)


class EarlyStopping(HookBase):
    """Stop training when ``metric`` has not improved for ``patience`` consecutive measurements.

    Checked every ``check_period`` iterations (the period at which the metric is produced, e.g.
    TEST.EVAL_PERIOD); the main process decides and every rank stops at the same iteration.
    """

    def __init__(
        self, metric: str, mode: str = "max", patience: int = 3, check_period: int = 0, min_delta: float = 0.0
    ):
        if patience < 1:
            raise ValueError(f"Early-stopping patience must be at least 1; got {patience}.")
        self._metric = metric
        self._mode = _check_mode(mode)
        self._patience = patience
        self._period = check_period
        self._min_delta = min_delta
        self.best_value: Optional[float] = None
        self.num_bad = 0
        self._last_seen_iter = -1

    def before_train(self) -> None:
        if self._period <= 0:
            logger.warning(
                f"Early stopping on '{self._metric}' is enabled but the metric is never measured during "
                f"training (set TEST.EVAL_PERIOD or TEST.VAL_LOSS_PERIOD); it will not stop training."
            )

    def _update(self) -> Optional[str]:
        latest = self.trainer.storage.latest().get(self._metric)
        if latest is None or latest[1] <= self._last_seen_iter:
            return None
        value, iteration = latest
        self._last_seen_iter = iteration
        improved = self.best_value is None or (
            value > self.best_value + self._min_delta
            if self._mode == "max"
            else value < self.best_value - self._min_delta
        )
        if improved and math.isfinite(value):
            self.best_value, self.num_bad = value, 0
            return None
        self.num_bad += 1
        if self.num_bad >= self._patience:
            return (
                f"early stopping: {self._metric} has not improved on {self.best_value:.5g} for "
                f"{self.num_bad} measurement(s) (latest {value:.5g})"
            )
        return None

    def after_step(self) -> None:
        if self._period <= 0 or (self.trainer.iter + 1) % self._period != 0:
            return
        decision = self._update() if comm.is_main_process() else None
        if comm.get_world_size() > 1:
            decision = comm.all_gather(decision)[0]
        if decision:
            self.trainer.request_stop(decision)

    def state_dict(self) -> Dict[str, Any]:
        if self.best_value is None:
            return {}
        return {"best_value": self.best_value, "num_bad": self.num_bad, "last_seen_iter": self._last_seen_iter}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best_value = state.get("best_value")
        self.num_bad = int(state.get("num_bad", 0))
        self._last_seen_iter = int(state.get("last_seen_iter", -1))
