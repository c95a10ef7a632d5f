"""Logging set-up for training and tools: one console stream on rank 0, one log file per rank."""

import functools
import logging
import os
import sys
import time
from collections import Counter
from typing import Any, Optional

__all__ = ["setup_logger", "log_first_n", "log_every_n", "log_every_n_seconds"]

_LEVEL_COLORS = {logging.WARNING: "\033[33m", logging.ERROR: "\033[31m", logging.CRITICAL: "\033[31;1m"}
_RESET = "\033[0m"


class _ColorfulFormatter(logging.Formatter):
    """Console formatter that shortens the logger name and colours warnings and errors."""

    def __init__(self, *args: Any, root_name: str, abbrev_name: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.name = record.name.replace(self._root_name, self._abbrev_name)
        text = super().formatMessage(record)
        color = _LEVEL_COLORS.get(record.levelno)
        if color is None:
            return text
        return f"{color}{record.levelname}{_RESET} {text}"


@functools.lru_cache  # the same logger set up twice would print every line twice
def setup_logger(
    output: Optional[str] = None,
    distributed_rank: int = 0,
    *,
    color: bool = True,
    name: str = "mrcnn",
    abbrev_name: Optional[str] = None,
) -> logging.Logger:
    """Configure the ``name`` logger: console on rank 0, and a file under ``output`` for every rank.

    ``output`` ending in .txt/.log is the file itself; otherwise the file is ``output/log.txt``
    (``log.txt.rank{N}`` for rank N > 0).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if abbrev_name is None:
        abbrev_name = "mr" if name == "mrcnn" else name
    plain = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")

    if distributed_rank == 0:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setLevel(logging.DEBUG)
        if color and sys.stdout.isatty():
            console.setFormatter(
                _ColorfulFormatter(
                    "[%(asctime)s %(name)s]: %(message)s",
                    datefmt="%m/%d %H:%M:%S",
                    root_name=name,
                    abbrev_name=abbrev_name,
                )
            )
        else:
            console.setFormatter(plain)
        logger.addHandler(console)

    if output is not None:
        if output.endswith((".txt", ".log")):
            filename = output
        else:
            filename = os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        file_handler = logging.StreamHandler(_open_log_file(filename))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(plain)
        logger.addHandler(file_handler)
    return logger


@functools.cache  # several loggers may share one file; open it once
def _open_log_file(filename: str):
    # Line buffering: a killed process still leaves every finished line in the file.
    return open(filename, "a", buffering=1, encoding="utf-8")


def _caller_key() -> tuple:
    frame = sys._getframe(2)
    return (frame.f_code.co_filename, frame.f_lineno)


_LOG_COUNTER: Counter = Counter()
_LOG_TIMERS: dict = {}


def log_first_n(level: int, msg: str, n: int = 1, *, name: str = "mrcnn", key: Any = None) -> None:
    """Log ``msg`` only the first ``n`` times this call site (or ``key``) is reached."""
    key = key if key is not None else _caller_key()
    _LOG_COUNTER[key] += 1
    if _LOG_COUNTER[key] <= n:
        logging.getLogger(name).log(level, msg)


def log_every_n(level: int, msg: str, n: int = 1, *, name: str = "mrcnn") -> None:
    """Log ``msg`` once every ``n`` times this call site is reached."""
    key = _caller_key()
    _LOG_COUNTER[key] += 1
    if n == 1 or _LOG_COUNTER[key] % n == 1:
        logging.getLogger(name).log(level, msg)


def log_every_n_seconds(level: int, msg: str, n: float = 1.0, *, name: str = "mrcnn") -> None:
    """Log ``msg`` at most once every ``n`` seconds from this call site."""
    key = _caller_key()
    last = _LOG_TIMERS.get(key)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name).log(level, msg)
        _LOG_TIMERS[key] = now
