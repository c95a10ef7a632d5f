"""The training loop: a trainer runs its hooks around every iteration.

Order of calls in `TrainerBase.train`::

    hook.before_train()            for every hook, in registration order
    for iteration in [start_iter, max_iter):
        hook.before_step()
        trainer.run_step()         # data, forward, backward, hook.after_backward(), metrics, step
        hook.after_step()
        (stop early if a hook called trainer.request_stop())
        (stop if any rank got SIGTERM or SIGINT: see mrcnn.engine.preemption)
    hook.after_train()             always, also after an exception
    raise TrainingInterrupted      after a stop on a signal (a SystemExit with status 75)

`SimpleTrainer` does one plain fp32 step; `AMPTrainer` runs the forward pass under autocast.
"""

import logging
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch
import torch.distributed as dist
from torch import nn

from mrcnn.utils import comm
from mrcnn.utils.env import restore_rng_states
from mrcnn.utils.events import EventStorage, get_event_storage

from .preemption import StopSignals, TrainingInterrupted, leave_stop_signals_to_trainer

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer"]

logger = logging.getLogger(__name__)


class HookBase:
    """One concern of training (timing, checkpoints, evaluation, ...) run at fixed points of the loop.

    ``self.trainer`` is set (as a weak proxy) when the hook is registered. Hooks that must survive
    a resume return their state from `state_dict` and take it back in `load_state_dict`.
    """

    trainer: "TrainerBase"

    def before_train(self) -> None:
        """Called once before the first iteration."""

    def after_train(self) -> None:
        """Called once after the last iteration, also when training failed (see trainer.finished)."""

    def before_step(self) -> None:
        """Called before each iteration."""

    def after_backward(self) -> None:
        """Called after the backward pass, before the optimizer step."""

    def after_step(self) -> None:
        """Called after each iteration."""

    def state_dict(self) -> Dict[str, Any]:
        """State to save in checkpoints; empty for stateless hooks."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class TrainerBase:
    """Runs registered hooks around ``run_step`` for iterations ``[start_iter, max_iter)``.

    Attributes: ``iter`` (the current, then the last run iteration), ``start_iter``, ``max_iter``,
    ``storage`` (the `EventStorage` of this run), ``finished`` (True once the loop ended
    without an exception, including an early stop, but not a stop on a signal), ``stopped_by``
    (the name of the signal that stopped the loop, else None) and ``stop_checkpoint`` (set by a
    checkpointing hook to the file it saved after such a stop).
    """

    def __init__(self) -> None:
        self._hooks: List[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage: Optional[EventStorage] = None
        self.finished = False
        self.steps_run = 0
        self._stop_reason: Optional[str] = None
        self.stopped_by: Optional[str] = None
        self.stop_checkpoint: Optional[str] = None
        self._pending_rng_states: Optional[Dict[str, Any]] = None

    def register_hooks(self, hooks: Iterable[Optional[HookBase]]) -> None:
        """Append hooks (None entries are skipped); they run in the order given."""
        for hook in hooks:
            if hook is None:
                continue
            if not isinstance(hook, HookBase):
                raise TypeError(f"Hooks must subclass HookBase; got {type(hook).__name__}.")
            # A proxy avoids a reference cycle trainer -> hook -> trainer.
            hook.trainer = weakref.proxy(self)
            self._hooks.append(hook)

    @property
    def hooks(self) -> List[HookBase]:
        """Registered hooks, in call order."""
        return list(self._hooks)

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end after the current iteration (e.g. early stopping); training counts as finished."""
        self._stop_reason = reason

    def restore_rng_states_at_start(self, states: Optional[Dict[str, Any]]) -> None:
        """Put the random generators into ``states`` right before the first iteration of `train`.

        Applying them at the last moment (after hooks and the data iterator are set up) makes a
        resumed run draw exactly the random numbers an uninterrupted run would have drawn.
        """
        self._pending_rng_states = states

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter`` .. ``max_iter - 1`` with the hooks.

        Raises `TrainingInterrupted` (exit status 75) after SIGTERM or SIGINT stopped the loop.
        """
        logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.finished = False
        self.steps_run = 0
        self._stop_reason = None
        self.stopped_by = None
        self.stop_checkpoint = None
        # Handlers first, so that data loader processes forked during training do not die of
        # SIGINT (those of the training loader ignore both signals, see _start_data_iterator).
        with EventStorage(start_iter) as self.storage, StopSignals() as stop_signals:
            try:
                self.before_train()
                self._start_data_iterator()
                if self._pending_rng_states is not None:
                    restore_rng_states(self._pending_rng_states)
                    self._pending_rng_states = None
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.steps_run += 1
                    self.after_step()
                    # Every rank asks at every iteration but the last, so all stop at the same one.
                    signal_name = stop_signals.agreed_signal() if self.iter < max_iter - 1 else None
                    if self._stop_reason is not None:
                        logger.info(f"Stopping after iteration {self.iter}: {self._stop_reason}")
                        break
                    if signal_name is not None:
                        self.stopped_by = signal_name
                        break
                self.finished = self.stopped_by is None
            except Exception:
                logger.exception(f"Training failed at iteration {self.iter}:")
                raise
            finally:
                self.after_train()
        if self.stopped_by is not None:
            interrupted = TrainingInterrupted(self.stopped_by, self.iter, self.stop_checkpoint)
            resume = "; continue with --resume" if self.stop_checkpoint else "; no checkpoint was saved"
            logger.warning(f"{interrupted}{resume}.")
            raise interrupted

    def before_train(self) -> None:
        for hook in self._hooks:
            hook.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for hook in self._hooks:
            hook.after_train()

    def before_step(self) -> None:
        # Scalars put during this iteration (by hooks or the model) are stamped with it.
        self.storage.iter = self.iter
        for hook in self._hooks:
            hook.before_step()

    def after_backward(self) -> None:
        for hook in self._hooks:
            hook.after_backward()

    def after_step(self) -> None:
        for hook in self._hooks:
            hook.after_step()

    def run_step(self) -> None:
        """One training iteration."""
        raise NotImplementedError

    def _start_data_iterator(self) -> None:
        """Create the data iterator (subclasses that read data do it here, before RNG restore)."""

    def state_dict(self) -> Dict[str, Any]:
        """The iteration and the state of stateful hooks."""
        hooks_state = {}
        for hook in self._hooks:
            state = hook.state_dict()
            if state:
                hooks_state[type(hook).__qualname__] = state
        return {"iteration": self.iter, "hooks": hooks_state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the iteration and hook states from `state_dict`."""
        self.iter = int(state["iteration"])
        hook_states = dict(state.get("hooks", {}))
        for hook in self._hooks:
            key = type(hook).__qualname__
            if key in hook_states:
                hook.load_state_dict(hook_states.pop(key))
        for key in hook_states:
            logger.warning(f"The checkpoint holds the state of a hook '{key}' that is not registered; ignored.")


class SimpleTrainer(TrainerBase):
    """One optimizer step per iteration: next batch, losses, backward, optional clipping, step.

    The model takes a batch and returns a dict of scalar losses, which are summed. Every
    iteration the losses are averaged over ranks and recorded; a non-finite loss raises
    `FloatingPointError` naming every loss term, before the optimizer step and before any hook
    could save a checkpoint of the iteration.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        grad_clipper: Optional[Callable[[Iterable[torch.Tensor]], Any]] = None,
        zero_grad_before_forward: bool = False,
    ):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.grad_clipper = grad_clipper
        self.zero_grad_before_forward = zero_grad_before_forward
        self._data_loader_iter_obj = None

    @property
    def _data_loader_iter(self):
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def _start_data_iterator(self) -> None:
        # A stop signal to the whole process group must not kill the loader's processes under the
        # iteration in flight: the trainer stops and shuts them down.
        leave_stop_signals_to_trainer(self.data_loader)
        self._data_loader_iter  # noqa: B018 (creating the iterator may draw random numbers)

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("SimpleTrainer: the model was put in eval mode; training needs model.train().")
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        try:
            loss_dict = self._forward(data)
        except FloatingPointError as error:
            # The model found non-finite values (e.g. the RPN's boxes); it cannot know the remedies.
            raise FloatingPointError(
                f"Training diverged at iteration {self.iter}: {error}. {self._divergence_advice()}"
            ) from error
        losses = _sum_losses(loss_dict)
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        self._backward(losses)
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self._optimizer_step()

    def _forward(self, data: Any) -> Dict[str, torch.Tensor]:
        loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        return loss_dict

    def _backward(self, losses: torch.Tensor) -> None:
        losses.backward()

    def _trainable_parameters(self) -> List[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]

    def _optimizer_step(self) -> None:
        if self.grad_clipper is not None:
            self.grad_clipper(self._trainable_parameters())
        self.optimizer.step()

    def _write_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float, prefix: str = "") -> None:
        """Average the losses over ranks, stop on non-finite values, record them on the main process."""
        names = list(loss_dict.keys())
        values = _gather_loss_values(loss_dict, data_time)  # (world_size, num_losses + 1)
        loss_values = values[:, :-1]
        if not torch.isfinite(loss_values).all():
            raise FloatingPointError(_non_finite_message(names, values, self.iter) + " " + self._divergence_advice())
        if comm.is_main_process():
            means = loss_values.mean(dim=0).tolist()
            storage = get_event_storage()
            storage.put_scalar(f"{prefix}total_loss", sum(means))
            storage.put_scalars(**{f"{prefix}{name}": value for name, value in zip(names, means)})
            storage.put_scalar("data_time", float(values[:, -1].max()))

    def _divergence_advice(self) -> str:
        """What may prevent a divergence, given how this trainer is set up (clipping on or off)."""
        return _divergence_advice(self.grad_clipper is not None, getattr(self, "precision", None))

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def _sum_losses(loss_dict: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if not isinstance(loss_dict, Mapping) or not loss_dict:
        raise TypeError(
            f"In training the model must return a non-empty dict of losses; got {type(loss_dict).__name__}."
        )
    for name, value in loss_dict.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TypeError(f"Loss '{name}' must be a scalar tensor; got {value!r:.80}.")
    return sum(loss_dict.values())


def _gather_loss_values(loss_dict: Mapping[str, torch.Tensor], data_time: float) -> torch.Tensor:
    """Every rank's loss values and data time: (world_size, num_losses + 1) float64 on the CPU."""
    first = next(iter(loss_dict.values()))
    local = torch.stack(
        [value.detach().reshape(()).to(torch.float64) for value in loss_dict.values()]
        + [torch.tensor(data_time, dtype=torch.float64, device=first.device)]
    )
    world_size = comm.get_world_size()
    if world_size == 1:
        return local.cpu()[None]
    if dist.get_backend() == "nccl" and local.device.type != "cuda":
        local = local.cuda()
    gathered = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(gathered, local)
    return torch.stack(gathered).cpu()


def _non_finite_message(names: List[str], values: torch.Tensor, iteration: int) -> str:
    rank = comm.get_rank()
    bad_ranks = [r for r in range(values.shape[0]) if not torch.isfinite(values[r, :-1]).all()]
    shown = rank if rank in bad_ranks else bad_ranks[0]
    terms = ", ".join(f"{name}={value:.6g}" for name, value in zip(names, values[shown, :-1].tolist()))
    where = "" if values.shape[0] == 1 else f" on rank {shown} (non-finite on ranks {bad_ranks})"
    return (
        f"Loss became non-finite at iteration {iteration}{where}: {terms}, "
        f"total_loss={values[shown, :-1].sum().item():.6g}. Training stopped before the optimizer "
        f"step; no checkpoint is written after a non-finite loss, so the last one saved is intact."
    )


def _divergence_advice(gradient_clipping: bool, amp_precision: Optional[torch.dtype]) -> str:
    if gradient_clipping:
        advice = (
            "Gradient clipping is already on (SOLVER.CLIP_GRADIENTS) and did not prevent this: lower "
            "SOLVER.BASE_LR, lengthen the warm-up (SOLVER.WARMUP_ITERS) or clip harder "
            "(a smaller SOLVER.CLIP_GRADIENTS.CLIP_VALUE)."
        )
    else:
        advice = (
            "Lower SOLVER.BASE_LR, lengthen the warm-up (SOLVER.WARMUP_ITERS) or turn on gradient "
            "clipping (SOLVER.CLIP_GRADIENTS.ENABLED True)."
        )
    if amp_precision == torch.float16:
        advice += (
            " Mixed precision runs the forward pass in float16, whose range is small: "
            "SOLVER.AMP.DTYPE bfloat16 (where supported) or SOLVER.AMP.ENABLED False may avoid the overflow."
        )
    return advice


class AMPTrainer(SimpleTrainer):
    """`SimpleTrainer` with the forward pass under autocast (mixed precision).

    On CUDA, ``precision=torch.float16`` uses a gradient scaler against underflow and
    ``torch.bfloat16`` needs none. On the CPU autocast supports bfloat16 only, which is used
    whatever ``precision`` says.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        precision: torch.dtype = torch.float16,
        grad_scaler: Optional["torch.amp.GradScaler"] = None,
        grad_clipper: Optional[Callable[[Iterable[torch.Tensor]], Any]] = None,
        zero_grad_before_forward: bool = False,
    ):
        super().__init__(
            model, data_loader, optimizer, grad_clipper=grad_clipper, zero_grad_before_forward=zero_grad_before_forward
        )
        if precision not in (torch.float16, torch.bfloat16):
            raise ValueError(f"AMP precision must be torch.float16 or torch.bfloat16; got {precision}.")
        first_param = next(model.parameters(), None)
        self.device_type = first_param.device.type if first_param is not None else "cpu"
        if self.device_type == "cpu" and precision == torch.float16:
            logger.info("AMP on the CPU runs in bfloat16 (CPU autocast has no float16).")
            precision = torch.bfloat16
        self.precision = precision
        if grad_scaler is None and precision == torch.float16:
            grad_scaler = torch.amp.GradScaler(self.device_type)
        self.grad_scaler = grad_scaler

    def _forward(self, data: Any) -> Dict[str, torch.Tensor]:
        with torch.autocast(device_type=self.device_type, dtype=self.precision):
            loss_dict = super()._forward(data)
        # Losses are summed and reported in float32 whatever precision the heads computed them in.
        return {name: value.float() for name, value in loss_dict.items()}

    def _backward(self, losses: torch.Tensor) -> None:
        if self.grad_scaler is None:
            losses.backward()
        else:
            self.grad_scaler.scale(losses).backward()

    def _optimizer_step(self) -> None:
        if self.grad_scaler is None:
            super()._optimizer_step()
            return
        if self.grad_clipper is not None:
            self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            self.grad_clipper(self._trainable_parameters())
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        if comm.is_main_process():
            get_event_storage().put_scalar("amp_loss_scale", self.grad_scaler.get_scale(), smoothing_hint=False)

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
