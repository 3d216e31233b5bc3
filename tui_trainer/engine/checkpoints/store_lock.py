"""The short-held lock of a checkpoint directory: pin, delete, prune, save and set-aside never interleave.

A pin from `ckpt pin` or the dashboard races with the trainer's retention; without this lock a
pin could write a sidecar for a file retention had just deleted, or retention could delete a
checkpoint pinned a moment after it looked. The lock is a flock on the directory itself, so no
file is created for it and a killed holder never leaves it stale. It is re-entrant within a
thread (a prune deletes), and held only around renames and unlinks, never around a long write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tui_trainer.engine.errors import RunDirBusy

WAIT_S = 30.0
_POLL_S = 0.005
_held = threading.local()


@contextlib.contextmanager
def store_lock(directory: str | os.PathLike[str], wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the directory's lock for the block; RunDirBusy if another holder keeps it for `wait_s`.

    Where the filesystem cannot lock a directory, the block runs unlocked: every change under it
    is still atomic on its own, only the interleaving is no longer excluded.
    """
    key = os.path.realpath(directory)
    held: dict[str, int] = _held.__dict__.setdefault("counts", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = _lock(Path(directory), wait_s)
    held[key] = 1
    try:
        yield
    finally:
        held[key] = 0
        if fd is not None:
            os.close(fd)  # closing releases the flock


def _lock(directory: Path, wait_s: float) -> int | None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # nothing to guard yet; the caller's own operation says what is missing
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RunDirBusy(
                    f"another process has held the checkpoint lock of {directory} for over {wait_s:.0f} s "
                    "(a stopped `ckpt` command or trainer?); let it finish, or stop it, and try again"
                ) from None
            time.sleep(_POLL_S)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP):
                os.close(fd)
                raise
            os.close(fd)
            return None
