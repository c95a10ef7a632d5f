"""Fixtures shared by every test folder."""

import logging
from typing import Callable, List

import pytest


class _MessageList(logging.Handler):
    """Keeps the formatted message of every record it receives."""

    def __init__(self, level: int):
        super().__init__(level)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages() -> Callable[..., List[str]]:
    """``log_messages(logger_name, level=logging.DEBUG)``: a list that receives the messages of that
    logger from then until the test ends. Unlike caplog it works on loggers that do not propagate
    (the library's loggers after a trainer or default_setup configured them)."""
    attached = []

    def capture(logger_name: str, level: int = logging.DEBUG) -> List[str]:
        logger = logging.getLogger(logger_name)
        handler = _MessageList(level)
        attached.append((logger, handler, logger.level))
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
        return handler.messages

    yield capture
    for logger, handler, old_level in reversed(attached):
        logger.removeHandler(handler)
        logger.setLevel(old_level)
