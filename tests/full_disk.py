"""A checkpoint filesystem that fills on demand: little free space reported, or ENOSPC mid-write."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple

import pytest

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
