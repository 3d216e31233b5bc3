"""Imported at start-up by the ranks of test_ddp: logs every write a rank makes under a watched folder,
and fills the disk of one rank when asked.

`TUI_TRAINER_AUDIT_DIR` is watched; each rank appends what it wrote to `TUI_TRAINER_AUDIT_LOG.rank<N>`
(outside it), so a test can assert that rank 1 wrote nothing in the run dir, and rank 0 did.

`TUI_TRAINER_FULL_DISK_RANK=N` with `TUI_TRAINER_FULL_DISK_AFTER=K`: rank N's checkpoint writes after
its first K fail with ENOSPC once half their bytes have landed, as `tests/full_disk.py` does in-process.
"""

import errno
import os
import sys

WATCH = os.environ.get("TUI_TRAINER_AUDIT_DIR")
LOG = os.environ.get("TUI_TRAINER_AUDIT_LOG")
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod", "os.link", "os.symlink",
           "os.utime", "shutil.move", "shutil.rmtree"}


def _inside(path: object, root: str) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    full = os.path.realpath(os.fsdecode(path))
    return full == root or full.startswith(root + os.sep)


def _install(root: str, log: str) -> None:
    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = bool(mode and any(c in str(mode) for c in "wax+")) or bool(isinstance(flags, int) and flags & WRITING)
            paths = [path] if writes else []
        elif event in CHANGES:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for path in paths:
            if _inside(path, root):
                with open(log, "a") as out:
                    out.write(f"{event} {os.fsdecode(path)}\n")

    sys.addaudithook(audit)


if WATCH and LOG and "RANK" in os.environ:
    _install(os.path.realpath(WATCH), f"{LOG}.rank{os.environ['RANK']}")


def _fill_disk(writes_that_fit: int) -> None:
    from tui_trainer.engine.checkpoints import store
    from tui_trainer.engine.checkpoints.hashing_writer import HashingWriter

    started = []

    class FillingWriter(HashingWriter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)
            self.fits = len(started) <= writes_that_fit

        def _write_through(self, data):
            if not self.fits:
                super()._write_through(memoryview(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
            super()._write_through(data)

    store.HashingWriter = FillingWriter


if "RANK" in os.environ and os.environ.get("TUI_TRAINER_FULL_DISK_RANK") == os.environ["RANK"]:
    _fill_disk(int(os.environ.get("TUI_TRAINER_FULL_DISK_AFTER", "0")))
