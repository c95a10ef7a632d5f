"""Stopping training cleanly on SIGTERM or SIGINT: pre-emption, Ctrl-C, a launcher that went away.

While `TrainerBase.train` runs its loop, SIGTERM and SIGINT no longer end the process: they are
recorded, the iteration in flight finishes, and after it every rank learns whether any rank got a
signal (one all-reduce of a small CPU integer per iteration, see `StopSignals.agreed_signal`), so
all ranks stop after the same iteration. The `PeriodicCheckpointer` hook then saves a checkpoint of
that iteration (atomically, as always) and logs its path, and `train` raises `TrainingInterrupted`:
a `SystemExit` with status `EXIT_CODE_INTERRUPTED` (75, ``EX_TEMPFAIL`` of sysexits.h: "try
again later"), so the process ends with that status unless its caller catches it. ``--resume``
continues from the checkpoint exactly as from a periodic one.

While the loop runs, the processes of the training data loader ignore both signals
(`leave_stop_signals_to_trainer`): a signal sent to a whole process group (Ctrl-C in a terminal;
SLURM signals every process of a job step) would otherwise kill them under the iteration in
flight, and the trainer would fail on their death instead of saving. Outside the loop (e.g. when
the trainer's process exits and terminates them) the signals act on them as before.

A repeated signal during the stop is logged and ignored: schedulers, terminals and launchers often
deliver the same signal twice (to the whole process group, and forwarded by a parent), and the
checkpoint must not be cut short. SIGKILL still ends a process at once. A signal whose handler was
SIG_IGN when training started (e.g. SIGINT of a job started in the background) stays ignored.
"""

import logging
import multiprocessing
import os
import signal
import threading
from types import FrameType
from typing import Any, Callable, Dict, Optional

import torch

from mrcnn.utils import comm

__all__ = [
    "EXIT_CODE_INTERRUPTED",
    "STOP_SIGNALS",
    "StopSignals",
    "TrainingInterrupted",
    "leave_stop_signals_to_trainer",
]

logger = logging.getLogger(__name__)

EXIT_CODE_INTERRUPTED = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(SystemExit):
    """Training stopped on a signal after ``iteration``; ``checkpoint`` is the file to resume from.

    A `SystemExit` with code `EXIT_CODE_INTERRUPTED`: uncaught, the process exits with status 75.
    """

    def __init__(self, signal_name: str, iteration: Optional[int] = None, checkpoint: Optional[str] = None):
        super().__init__(EXIT_CODE_INTERRUPTED)
        self.signal_name = signal_name
        self.iteration = iteration
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        where = "" if self.iteration is None else f" after iteration {self.iteration}"
        saved = f"; checkpoint {self.checkpoint}" if self.checkpoint else ""
        return f"Training stopped by {self.signal_name}{where}{saved} (exit status {EXIT_CODE_INTERRUPTED})"


class StopSignals:
    """While entered, SIGTERM and SIGINT are recorded instead of ending the process.

    Use as ``with StopSignals() as stop_signals:``; the previous handlers come back on exit.
    Handlers can only be installed from the main thread; elsewhere signals keep their handlers.
    """

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: Dict[int, object] = {}
        self._pid = os.getpid()
        self._counted = False

    def __enter__(self) -> "StopSignals":
        self.received = None
        self._pid = os.getpid()
        if threading.current_thread() is not threading.main_thread():
            logger.debug("Training runs outside the main thread: SIGTERM/SIGINT keep their handlers.")
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._record)
        self._counted = True
        _loop_running().value += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._counted:
            _loop_running().value -= 1
            self._counted = False
        for signum, previous in self._previous.items():
            # None means the handler was not installed from Python; the default is the best guess.
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _record(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self._pid:
            # A data loader process forked during training inherited this handler: it ignores the
            # signal and keeps serving batches until the trainer shuts it down.
            return
        name = signal.Signals(signum).name
        if self.received is not None:
            logger.warning(f"Got {name} again; still finishing the iteration in flight and saving a checkpoint.")
            return
        self.received = signum
        logger.warning(f"Got {name}: training stops after the iteration in flight and saves a checkpoint.")

    def agreed_signal(self) -> Optional[str]:
        """The name of a stop signal received by any rank so far, or None; every rank must call it.

        The ranks agree with an all-reduce of the signal numbers over gloo on the CPU, which does
        not wait for the GPU.
        """
        signum = comm.max_over_ranks(self.received or 0)
        return signal.Signals(signum).name if signum else None


_LOOP_RUNNING: Optional[Any] = None


def _loop_running() -> Any:
    """A count in shared memory of the `StopSignals` blocks handling the training process's signals."""
    global _LOOP_RUNNING
    if _LOOP_RUNNING is None:
        _LOOP_RUNNING = multiprocessing.RawValue("i", 0)
    return _LOOP_RUNNING


class _LoaderWorkerSignals:
    """A data loader ``worker_init_fn``: SIGTERM and SIGINT are ignored while the training loop
    runs, and act as by default otherwise; then ``worker_init_fn`` runs."""

    def __init__(self, worker_init_fn: Optional[Callable[[int], Any]], loop_running: Any):
        self.worker_init_fn = worker_init_fn
        self.loop_running = loop_running

    def __call__(self, worker_id: int) -> None:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._handle)
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker_id)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.loop_running.value:
            return  # the trainer stops after the iteration in flight and then shuts this process down
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def leave_stop_signals_to_trainer(data_loader: Any) -> None:
    """Make the worker processes that ``data_loader`` starts from now on ignore SIGTERM and SIGINT
    while a training loop runs (see the module's docstring).

    Only torch DataLoaders with worker processes change; other iterables are left as they are.
    """
    if not isinstance(data_loader, torch.utils.data.DataLoader) or data_loader.num_workers == 0:
        return
    if not isinstance(data_loader.worker_init_fn, _LoaderWorkerSignals):
        data_loader.worker_init_fn = _LoaderWorkerSignals(data_loader.worker_init_fn, _loop_running())
