"""Errors a user can cause, each with a message that says what to do next."""

from __future__ import annotations

import errno
import os
import shutil

from tui_trainer.engine.sizes import human_bytes


class TrainerError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""

    exit_code = 2


class InvalidPolicy(TrainerError, ValueError):
    """A checkpoint policy setting is out of range."""


class JobLoadError(TrainerError):
    """A --job spec could not be imported or did not return a Job."""


class CheckpointError(TrainerError):
    """Base class for problems with one checkpoint file."""


class CheckpointNotFound(CheckpointError):
    pass


class NotACheckpoint(CheckpointError):
    """The file exists but is not a PyTorch checkpoint."""


class CheckpointCorrupt(CheckpointError):
    """The file is truncated, damaged or does not match its recorded checksum."""


class UnsafeCheckpoint(CheckpointError):
    """Loading the file would execute code; it is refused."""


class ArchitectureMismatch(CheckpointError):
    """The checkpoint's weights do not fit the job's model."""


class RunDirBusy(TrainerError):
    """Another live process is training in this run dir."""


class RunDirError(TrainerError):
    """The run dir is missing, not a run, or already holds a run."""


class NotEnoughDiskSpace(TrainerError):
    """The next save would not fit on the checkpoint filesystem.

    `needed_bytes` and `free_bytes` are what the check saw (None where unknown); `directory` is
    where the checkpoint was to be written.
    """

    exit_code = 4

    def __init__(
        self, message: str, *, needed_bytes: int | None = None, free_bytes: int | None = None,
        directory: str | None = None,
    ) -> None:
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes
        self.directory = directory


class WriteDidNotFit(NotEnoughDiskSpace):
    """A write other than a checkpoint's (the history, `run.json`, a sidecar, an export) hit a full disk.

    Whoever raises it has left nothing partial behind; `path` is the file that was not written.
    """

    def __init__(self, path: str | os.PathLike[str], cause: OSError | None = None, advice: str = "") -> None:
        path = os.fspath(path)
        directory = os.path.dirname(path) or "."
        try:
            free: int | None = shutil.disk_usage(directory).free
        except OSError:
            free = None
        room = f"{human_bytes(free)} free" if free is not None else "no room"
        why = "the disk quota is used up" if cause is not None and cause.errno == errno.EDQUOT else "the disk is full"
        super().__init__(f"{why}: {path} could not be written ({room} on its filesystem){advice}",
                         needed_bytes=None, free_bytes=free, directory=directory)
        self.path = path


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write refused for lack of room (ENOSPC, or EDQUOT: the same case to a user)."""
    return isinstance(exc, NotEnoughDiskSpace) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS)


class UnsafePath(TrainerError):
    """A path would make the tool act outside the run dir."""
