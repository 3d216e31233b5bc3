"""A filesystem that fills on demand: little free space reported, or ENOSPC mid-write.

Checkpoints through `enospc`; the run's other files (history, its index, run.json, sidecars,
summaries) through `refuse`, by file name, at the two ways the product writes them: appends
with `os.write` and atomic replacements through `engine.atomic`.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from collections import namedtuple
from typing import Any

import pytest

from tui_trainer.engine import atomic
from tui_trainer.engine.checkpoints import store as checkpoint_store
from tui_trainer.engine.checkpoints.hashing_writer import HashingWriter

DiskUsage = namedtuple("DiskUsage", "total used free")


class FullDisk:
    """Set `free` to report that many bytes free (None: the real figure); `enospc` to fail writes.

    A failing write lets half its bytes land first, as a disk that fills mid-file does.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.free: int | None = None
        self.enospc = False
        real_usage = shutil.disk_usage
        disk = self

        def disk_usage(path):
            usage = real_usage(path)
            return usage if disk.free is None else DiskUsage(usage.total, usage.total - disk.free, disk.free)

        class FillingWriter(HashingWriter):
            def _write_through(self, data):
                if disk.enospc:
                    super()._write_through(memoryview(data)[: len(data) // 2])
                    raise OSError(errno.ENOSPC, "No space left on device")
                super()._write_through(data)

        monkeypatch.setattr(shutil, "disk_usage", disk_usage)
        monkeypatch.setattr(checkpoint_store, "HashingWriter", FillingWriter)
        self.refused: set[str] = set()
        self.refusals = 0
        real_write, real_open = os.write, builtins.open

        def refused(name: str) -> bool:
            return any(name == n or name.startswith(f".{n}.tmp-") for n in disk.refused)

        def write(fd: int, data: Any) -> int:
            if disk.refused:
                try:
                    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    name = ""
                if refused(name):
                    disk.refusals += 1
                    half = memoryview(data)[: len(data) // 2]
                    if len(half):
                        return real_write(fd, half)  # the next call gets the error, as a real disk does
                    raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(file, mode, *args, **kwargs)
            if disk.refused and refused(os.path.basename(os.fspath(file))):
                disk.refusals += 1
                return _RefusingFile(f)
            return f

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(atomic, "open", open_, raising=False)

    def refuse(self, *names: str) -> None:
        """Writes to these files (by name) fail with ENOSPC, after letting part of their bytes land."""
        self.refused = set(names)

    def make_room(self) -> None:
        self.refused = set()
        self.free = None
        self.enospc = False


class _RefusingFile:
    """A file being written atomically on a disk that fills: half the bytes land, then ENOSPC."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, data: Any) -> int:
        self._f.write(memoryview(data)[: len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)
