"""Atomic file writes: temporary file in the same directory, fsync, rename, fsync the directory.

And `read_regular`, for the small files a run dir holds: a FIFO, a device or a link planted in
their place is refused at once instead of blocking a listing or the trainer.

A reader, or a crash at any instant, sees either the old file or the complete new one under the
final name, never a partial one. Temporary files are named `.<final name>.tmp-<pid>-<random>`
so a later start can find and remove those left by a killed process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_TEMP_RE = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces `path` only if the block finishes without error.

    `durable=False` skips both fsyncs: readers still never see a partial file, but after a
    power loss the file may be old or empty. Only for data that can be rebuilt.
    """
    final = Path(path)
    temp = temp_path_for(final)
    # "x": a new file or an error, never an existing one nor one reached through a planted link.
    f = open(temp, mode.replace("w", "x"))  # noqa: SIM115 - closed below on every path
    try:
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
        f.close()
        os.replace(temp, final)
    except BaseException:
        # Closing flushes what is still buffered, and on a full disk that fails too: the
        # temporary file must go whatever closing it says.
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    with atomic_open(path, "wb", durable) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, durable: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode(), durable)


def read_regular(path: str | os.PathLike[str], max_bytes: int = 1 << 20) -> bytes:
    """Up to `max_bytes` of a regular file; OSError, without blocking, for anything else in its place."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        chunks, left = [], max_bytes
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def find_temp_files(directory: Path) -> list[Path]:
    """Temporary files under `directory` whose writing process is gone."""
    leftovers = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match and not pid_alive(int(match["pid"])):
            leftovers.append(Path(entry.path))
    return sorted(leftovers)


def remove_temp_files(directory: Path) -> list[Path]:
    removed = []
    for path in find_temp_files(directory):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host (one we may not signal counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
