"""Event storage (per-iteration scalars with smoothing) and the writers that report it.

Training code records values with ``get_event_storage().put_scalar(name, value)``; hooks and
writers read them back. Writers: `CommonMetricPrinter` (console), `JSONWriter` (``metrics.json``,
one json object per line and iteration) and `TensorboardXWriter` (TensorBoard event files).
"""

import datetime
import json
import logging
import os
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from fvcore.common.history_buffer import HistoryBuffer

__all__ = [
    "EventStorage",
    "get_event_storage",
    "has_event_storage",
    "EventWriter",
    "JSONWriter",
    "TensorboardXWriter",
    "CommonMetricPrinter",
    "peak_memory_mb",
]

_CURRENT_STORAGE_STACK: List["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """The innermost `EventStorage` in use; raises if called outside ``with EventStorage()``."""
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() must be called inside a 'with EventStorage(...)' block "
            "(the trainer opens one for the whole training)."
        )
    return _CURRENT_STORAGE_STACK[-1]


def has_event_storage() -> bool:
    """Whether an `EventStorage` is active (lets models log only while training)."""
    return bool(_CURRENT_STORAGE_STACK)


class EventStorage:
    """Scalars recorded during training, each with its history of ``(value, iteration)``.

    Every scalar carries a smoothing hint: writers show hinted scalars as the median over a window
    and the others (e.g. evaluation results) as their latest value.
    """

    def __init__(self, start_iter: int = 0):
        self._history: Dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: Dict[str, bool] = {}
        self._latest_scalars: Dict[str, Tuple[float, int]] = {}
        self._iter = start_iter
        self._current_prefix = ""

    def put_scalar(self, name: str, value: Any, smoothing_hint: bool = True, cur_iter: Optional[int] = None) -> None:
        """Record ``value`` (a number or one-element tensor) under ``name`` at the current iteration."""
        name = self._current_prefix + name
        cur_iter = self._iter if cur_iter is None else int(cur_iter)
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        previous_hint = self._smoothing_hints.get(name)
        if previous_hint is not None and previous_hint != smoothing_hint:
            raise ValueError(
                f"Scalar '{name}' was put with smoothing_hint={previous_hint} before; got {smoothing_hint}."
            )
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: Optional[int] = None, **kwargs: Any) -> None:
        """Record several scalars at once: ``put_scalars(loss_cls=0.3, loss_mask=0.2)``."""
        for name, value in kwargs.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def history(self, name: str) -> HistoryBuffer:
        """The full history of one scalar; KeyError naming the known scalars if it was never put."""
        if name not in self._history:
            raise KeyError(f"No scalar named '{name}' in the event storage. Known: {sorted(self._history)}")
        return self._history[name]

    def histories(self) -> Dict[str, HistoryBuffer]:
        """Every scalar's history, by name."""
        return dict(self._history)

    def latest(self) -> Dict[str, Tuple[float, int]]:
        """``{name: (latest value, iteration it was put at)}`` for every scalar."""
        return dict(self._latest_scalars)

    def latest_with_smoothing_hint(self, window_size: int = 20) -> Dict[str, Tuple[float, int]]:
        """Like `latest`, but hinted scalars are the median of their last ``window_size`` values."""
        result = {}
        for name, (value, iteration) in self._latest_scalars.items():
            if self._smoothing_hints[name]:
                value = float(self._history[name].median(window_size))
            result[name] = (value, iteration)
        return result

    def smoothing_hints(self) -> Dict[str, bool]:
        """The smoothing hint of every scalar."""
        return dict(self._smoothing_hints)

    def step(self) -> None:
        """Advance the iteration counter (the trainer sets `iter` directly instead)."""
        self._iter += 1

    @property
    def iter(self) -> int:
        """The iteration new scalars are recorded at."""
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    @property
    def iteration(self) -> int:
        """Alias of `iter`."""
        return self._iter

    @contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Prefix every scalar put inside the block with ``name/``."""
        old_prefix = self._current_prefix
        self._current_prefix = old_prefix + name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix

    def __enter__(self) -> "EventStorage":
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert _CURRENT_STORAGE_STACK[-1] is self, "EventStorage blocks were closed out of order"
        _CURRENT_STORAGE_STACK.pop()


def peak_memory_mb() -> Tuple[float, str]:
    """Peak memory so far in MiB and what it measures.

    On CUDA it is the peak of memory allocated by PyTorch tensors on the current device
    (``torch.cuda.max_memory_allocated``); on the CPU it is the peak resident set size of the
    whole process (``getrusage``), which includes the Python interpreter and libraries.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (peak / 2**20 if sys.platform == "darwin" else peak / 2**10), "rss"


class EventWriter:
    """Base class of the writers called periodically by the `PeriodicWriter` hook."""

    def write(self) -> None:
        """Write what is new in the current event storage."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files and other resources."""


def _unwritten_scalars(window_size: int, written_at: Dict[str, int]) -> List[Tuple[str, float, int]]:
    """(name, value, iteration) of each scalar put since a writer last wrote it; ``written_at``
    (name -> the iteration it was last written at) is updated. Per name, so that values put at an
    iteration already written (the evaluation after the last iteration) are written too."""
    new = []
    for name, (value, iteration) in get_event_storage().latest_with_smoothing_hint(window_size).items():
        if iteration > written_at.get(name, -1):
            new.append((name, value, iteration))
            written_at[name] = iteration
    return new


class JSONWriter(EventWriter):
    """Append one json object per iteration to a file: ``{"iteration": N, "total_loss": ..., ...}``.

    Hinted scalars are written smoothed over ``window_size`` iterations, others as they were put.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        os.makedirs(os.path.dirname(os.path.abspath(json_file)), exist_ok=True)
        self._file = open(json_file, "a", encoding="utf-8")
        self._window_size = window_size
        self._written_at: Dict[str, int] = {}

    def write(self) -> None:
        by_iteration: Dict[int, Dict[str, float]] = defaultdict(dict)
        for name, value, iteration in _unwritten_scalars(self._window_size, self._written_at):
            by_iteration[iteration][name] = value
        for iteration in sorted(by_iteration):
            self._file.write(json.dumps({"iteration": iteration, **by_iteration[iteration]}, sort_keys=True) + "\n")
        self._file.flush()
        try:
            os.fsync(self._file.fileno())
        except OSError:  # e.g. a pipe or a filesystem without fsync
            pass

    def close(self) -> None:
        self._file.close()


class TensorboardXWriter(EventWriter):
    """Write every new scalar to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs: Any):
        from torch.utils.tensorboard import SummaryWriter  # imported here: it is slow to import

        self._window_size = window_size
        self._writer = SummaryWriter(log_dir, **kwargs)
        self._written_at: Dict[str, int] = {}

    def write(self) -> None:
        for name, value, iteration in _unwritten_scalars(self._window_size, self._written_at):
            self._writer.add_scalar(name, value, iteration)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Print one line per write: ETA, iteration, every loss, time and data time, lr and peak memory.

    ``time`` is the median seconds per iteration (from the `IterationTimer` hook), ``data_time`` the
    median seconds spent waiting for data, and ``max_mem`` the value of `peak_memory_mb`.
    """

    def __init__(self, max_iter: Optional[int] = None, window_size: int = 20):
        self.logger = logging.getLogger("mrcnn.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: Optional[Tuple[int, float]] = None  # (iteration, wall time) for the fallback ETA
        self._last_printed_iter: Optional[int] = None

    def _eta(self, storage: EventStorage) -> Optional[str]:
        if self._max_iter is None:
            return None
        iteration = storage.iter
        remaining = self._max_iter - iteration - 1
        try:
            seconds = storage.history("time").median(1000) * remaining
            storage.put_scalar("eta_seconds", seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(seconds)))
        except KeyError:
            # No IterationTimer: estimate from the wall time between two writes.
            eta = None
            if self._last_write is not None and iteration > self._last_write[0]:
                per_iter = (time.perf_counter() - self._last_write[1]) / (iteration - self._last_write[0])
                eta = str(datetime.timedelta(seconds=int(per_iter * remaining)))
            self._last_write = (iteration, time.perf_counter())
            return eta

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if iteration == self._last_printed_iter:
            return  # the end of training writes again; one line per iteration is enough
        self._last_printed_iter = iteration
        histories = storage.histories()

        def median(name: str) -> Optional[float]:
            buffer = histories.get(name)
            return None if buffer is None else float(buffer.median(self._window_size))

        data_time = median("data_time")
        iter_time = median("time")
        last_time = float(histories["time"].latest()) if "time" in histories else None
        lr = float(histories["lr"].latest()) if "lr" in histories else None
        losses = "  ".join(
            f"{name}: {buffer.median(self._window_size):.4g}"
            for name, buffer in histories.items()
            if "loss" in name and not name.startswith("validation") and storage.smoothing_hints().get(name, True)
        )
        memory, _ = peak_memory_mb()
        eta = self._eta(storage)
        parts = [f"eta: {eta}" if eta else "", f"iter: {iteration}", losses]
        if iter_time is not None:
            parts.append(f"time: {iter_time:.4f}  last_time: {last_time:.4f}")
        if data_time is not None:
            parts.append(f"data_time: {data_time:.4f}")
        if lr is not None:
            parts.append(f"lr: {lr:.5g}")
        parts.append(f"max_mem: {memory:.0f}M")
        self.logger.info("  ".join(part for part in parts if part))
