"""Crash-safe file writes: write a temporary file beside the target, flush it to disk, rename it.

A rename within one directory is atomic on POSIX and Windows, so a reader (or a run resumed after
a crash) sees either the complete old file or the complete new one, never a torn one.
"""

import os
import tempfile
from typing import IO, Any, Callable

import torch

__all__ = ["atomic_write", "atomic_torch_save", "atomic_write_text", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".tmp"


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable after a power loss; not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s directory, then rename it to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_path, path)
    except BaseException:
        # Also on KeyboardInterrupt: leave no half-written temporary behind.
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
    _fsync_directory(directory)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    """Replace the text file ``path`` with ``text`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
