"""Training hooks, one concern each.

`DefaultTrainer` registers them in this order (the order they run in at every point of the loop):

1. `IterationTimer`         time per iteration ("time"), total training speed at the end
2. `LRScheduler`            records "lr", steps the lr schedule
3. `ModelEMAHook`           (MODEL_EMA.ENABLED) the moving average of the weights, which evaluations use
4. `PreciseBN`              (TEST.PRECISE_BN.ENABLED) BatchNorm statistics recomputed before each evaluation
5. `ValidationLoss`         (TEST.VAL_LOSS_PERIOD > 0) losses on held-out images
6. `PeriodicCheckpointer`   every SOLVER.CHECKPOINT_PERIOD, keeps the newest N, model_final at the end
7. `EvalHook`               every TEST.EVAL_PERIOD and at the end; results become scalars
8. `BestCheckpointer`       (SOLVER.BEST_CHECKPOINT.ENABLED) model_best.pth by a metric
9. `EarlyStopping`          (SOLVER.EARLY_STOP.ENABLED) stop when a metric stops improving
10. `PeriodicWriter`        console, metrics.json, TensorBoard; last, so it sees every scalar above
"""

import datetime
import logging
import os
import time
from typing import Any, Callable, Iterable, Optional

from fvcore.common.timer import Timer

from mrcnn.utils import comm
from mrcnn.utils.env import capture_rng_states
from mrcnn.utils.events import EventWriter

from .evaluation_hooks import BestCheckpointer, EarlyStopping, EvalHook, ValidationLoss
from .model_ema import ModelEMAHook
from .precise_bn import PreciseBN
from .train_loop import HookBase

__all__ = [
    "HookBase",
    "CallbackHook",
    "IterationTimer",
    "LRScheduler",
    "ModelEMAHook",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "PreciseBN",
    "EvalHook",
    "BestCheckpointer",
    "ValidationLoss",
    "EarlyStopping",
    "flatten_results_dict",  # noqa: F822 (provided lazily by __getattr__ below)
]

logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    # `mrcnn.evaluation.flatten_results_dict`, still importable from here; looked up on first use
    # because mrcnn.evaluation pulls in the data and COCO stack, which `import mrcnn.engine` avoids.
    if name == "flatten_results_dict":
        from mrcnn.evaluation import flatten_results_dict

        return flatten_results_dict
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")


class CallbackHook(HookBase):
    """A hook made of plain functions, each called with the trainer."""

    def __init__(
        self,
        *,
        before_train: Optional[Callable[[Any], None]] = None,
        after_train: Optional[Callable[[Any], None]] = None,
        before_step: Optional[Callable[[Any], None]] = None,
        after_step: Optional[Callable[[Any], None]] = None,
    ):
        self._before_train = before_train
        self._after_train = after_train
        self._before_step = before_step
        self._after_step = after_step

    def before_train(self) -> None:
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self) -> None:
        if self._after_train:
            self._after_train(self.trainer)

    def before_step(self) -> None:
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self) -> None:
        if self._after_step:
            self._after_step(self.trainer)


class IterationTimer(HookBase):
    """Record the seconds each iteration took as "time"; log the overall speed at the end.

    Register it first so its time covers the other hooks' before_step and the step itself. The
    first ``warmup_iter`` iterations (slow: allocations, cudnn autotuning) are left out.
    """

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_timer = Timer()
        self._start_time = time.perf_counter()
        self._total_timer = Timer()

    def before_train(self) -> None:
        self._start_time = time.perf_counter()
        self._total_timer.reset()
        self._total_timer.pause()

    def after_train(self) -> None:
        total = time.perf_counter() - self._start_time
        measured = self._total_timer.seconds()
        num_iter = self.trainer.steps_run - self._warmup_iter
        if num_iter > 0 and measured > 0:
            logger.info(
                f"Overall training speed: {num_iter} iterations in "
                f"{datetime.timedelta(seconds=int(measured))} ({measured / num_iter:.4f} s / it)"
            )
        logger.info(
            f"Total training time: {datetime.timedelta(seconds=int(total))} "
            f"({datetime.timedelta(seconds=int(total - measured))} on hooks)"
        )

    def before_step(self) -> None:
        self._step_timer.reset()
        self._total_timer.resume()

    def after_step(self) -> None:
        done = self.trainer.iter - self.trainer.start_iter + 1
        if done > self._warmup_iter:
            self.trainer.storage.put_scalars(time=self._step_timer.seconds())
        else:
            self._start_time = time.perf_counter()
            self._total_timer.reset()
        self._total_timer.pause()


class LRScheduler(HookBase):
    """Record the learning rate used in each iteration as "lr", then step the scheduler.

    "lr" is that of the param group holding the most parameter elements (the weights, whose lr
    is SOLVER.BASE_LR; biases may have a multiple of it).
    """

    def __init__(self, optimizer: Any = None, scheduler: Any = None):
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._group_index = 0

    def before_train(self) -> None:
        self._optimizer = self._optimizer or self.trainer.optimizer
        self._scheduler = self._scheduler or self.trainer.scheduler
        sizes = [sum(p.numel() for p in group["params"]) for group in self._optimizer.param_groups]
        self._group_index = max(range(len(sizes)), key=lambda i: sizes[i])

    def after_step(self) -> None:
        lr = self._optimizer.param_groups[self._group_index]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self._scheduler.step()

    @property
    def scheduler(self) -> Any:
        """The scheduler stepped by this hook."""
        return self._scheduler or self.trainer.scheduler


class PeriodicCheckpointer(HookBase):
    """Save ``{prefix}_{iteration:07d}.pth`` every ``period`` iterations and ``{prefix}_final.pth`` at the end.

    Only the newest ``max_to_keep`` periodic files are kept (None or 0 keeps all). Each file also
    holds every rank's random generator states, for exact resume. When a signal stopped training
    (see mrcnn.engine.preemption), the last iteration is saved under its periodic name instead of
    the final one and ``trainer.stop_checkpoint`` names the file. Nothing is saved after a failed
    iteration: an exception skips after_step and the final save.
    """

    def __init__(self, checkpointer: Any, period: int, max_to_keep: Optional[int] = None, file_prefix: str = "model"):
        if period <= 0:
            raise ValueError(f"Checkpoint period must be positive; got {period} (SOLVER.CHECKPOINT_PERIOD).")
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_to_keep = max_to_keep or None
        self.file_prefix = file_prefix
        self._last_saved: Optional[str] = None

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self.period == 0:
            self.save(f"{self.file_prefix}_{self.trainer.iter:07d}")
            self._remove_old()

    def after_train(self) -> None:
        if self.trainer.steps_run == 0:
            return
        if self.trainer.finished:
            self.save(f"{self.file_prefix}_final")
        elif getattr(self.trainer, "stopped_by", None) is not None:
            name = f"{self.file_prefix}_{self.trainer.iter:07d}"
            if self._last_saved != name:  # not saved by after_step of this very iteration
                self.save(name)
                self._remove_old()
            if self.checkpointer.save_dir:
                self.trainer.stop_checkpoint = os.path.join(self.checkpointer.save_dir, f"{name}.pth")

    def save(self, name: str) -> None:
        """Save now under ``name`` (every rank must call it: the generator states are gathered)."""
        rng_states = comm.all_gather(capture_rng_states())
        self.checkpointer.save(name, iteration=self.trainer.iter, rng_states=rng_states)
        self._last_saved = name

    def _remove_old(self) -> None:
        if self.max_to_keep is None or not comm.is_main_process():
            return
        periodic = self.checkpointer.periodic_checkpoints(self.file_prefix)
        last = self.checkpointer.get_checkpoint_file()
        for path in periodic[: -self.max_to_keep]:
            if os.path.abspath(path) != os.path.abspath(last):
                os.remove(path)


class PeriodicWriter(HookBase):
    """Call every writer every ``period`` iterations, at the last iteration and after training."""

    def __init__(self, writers: Iterable[EventWriter], period: int = 20):
        self._writers = list(writers)
        for writer in self._writers:
            if not isinstance(writer, EventWriter):
                raise TypeError(f"Writers must subclass EventWriter; got {type(writer).__name__}.")
        self._period = period

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            for writer in self._writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self._writers:
            # Evaluation results of the final iteration are written here.
            writer.write()
            writer.close()
