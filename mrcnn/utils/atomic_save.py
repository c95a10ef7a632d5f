"""Crash-safe file writes: write a temporary file beside the target, flush it to disk, rename it.

A rename within one directory is atomic on POSIX and Windows, so a reader (or a run resumed after
a crash) sees either the complete old file or the complete new one, never a torn one.
"""

import os
import tempfile
from typing import IO, Any, Callable

import torch

__all__ = ["atomic_write", "atomic_torch_save", "atomic_write_text", "current_umask", "TEMP_SUFFIX"]

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


def current_umask() -> int:
    """The process's file-mode creation mask (e.g. 0o022), read without changing it where possible."""
    try:  # Linux >= 4.7 reports it; os.umask can only be read by setting it, racing other threads
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s directory, then rename it to ``path``.

    The file gets the permissions ``open(path, "w")`` would give it (0o666 less the umask, e.g.
    0o644), not the owner-only 0o600 of the temporary file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=TEMP_SUFFIX, dir=directory)
    try:
        _chmod_fd(fd, temp_path, 0o666 & ~current_umask())
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


def _chmod_fd(fd: int, path: str, mode: int) -> None:
    # Some network filesystems refuse chmod; the file then keeps mkstemp's mode rather than not being saved.
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # Windows: only the read-only bit exists
            os.chmod(path, mode)
    except OSError:
        pass


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    """Replace the text file ``path`` with ``text`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
