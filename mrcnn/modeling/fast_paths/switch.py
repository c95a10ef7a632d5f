"""The one switch of the fast paths, and whether they may run right now.

A model built with MODEL.FAST_PATHS True (the default) carries the fast paths; they compute what
the plain model computes and step aside by themselves where they could change what a tool
records: under ``torch.jit`` tracing or scripting, ``torch.compile``/``torch.export`` and ONNX
export. ``fast_paths_disabled()`` turns them off for a block of code, in every
model at once, without rebuilding anything.
"""

import threading
from contextlib import contextmanager
from typing import Iterator

from mrcnn.utils.graph_capture import is_graph_recording

__all__ = ["fast_paths_active", "fast_paths_disabled", "fast_paths_enabled", "set_fast_paths_enabled"]

_STATE = threading.local()


def fast_paths_enabled() -> bool:
    """Whether the switch is on in this thread (it is unless turned off)."""
    return getattr(_STATE, "enabled", True)


def set_fast_paths_enabled(enabled: bool) -> None:
    """Turn the fast paths of every model on or off in this thread."""
    _STATE.enabled = bool(enabled)


@contextmanager
def fast_paths_disabled() -> Iterator[None]:
    """Within the block, models with fast paths compute exactly as plain models do."""
    previous = fast_paths_enabled()
    set_fast_paths_enabled(False)
    try:
        yield
    finally:
        set_fast_paths_enabled(previous)


def fast_paths_active() -> bool:
    """Whether a fast path may run now: the switch is on and nothing records the ops."""
    return fast_paths_enabled() and not is_graph_recording()
