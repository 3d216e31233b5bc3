"""The writer lock of a run dir: one trainer per run, and who that is (pid, host, with a terminal or not).

Held with flock, so a killed process never leaves it stale. Small on purpose: a dashboard asks
"who trains this?" before its first frame, without the rest of the run dir's code.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tui_trainer.engine.errors import RunDirBusy, UnsafePath

LOCK_FILE = ".lock"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# The files a trainer writes in its run dir. Whoever holds the lock writes them, so they are
# checked when it is taken: a run dir from someone else may hold links in their place, and a
# write through one would land outside the run dir (a `.lock` link once had its target emptied).
OWN_FILES = ("run.json", "history.jsonl", "history.idx", "history.cuts", "journal.jsonl", "journal.1.jsonl",
             "training_history.json", "trainer.log", "control.json", "control_ack.json", ".control.lock")


# A run dir is its user's: another local user can neither read its checkpoints nor take its locks
# (a flock needs only a file or folder one can open, and would stall the trainer).
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def shared_with_others(run_dir: Path) -> str | None:
    """A note when other users can open the run dir (an older run, or one chmod-ed open); else None."""
    try:
        mode = os.stat(run_dir).st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (f"{run_dir} is open to other users ({stat.filemode(mode)}): they can read its checkpoints and hold "
            f"its locks, stalling the run; `chmod 700 {run_dir}` makes it private, as new runs are")


def refuse_links(run_dir: Path) -> None:
    """UnsafePath if one of the run dir's own files is a link or not a regular file."""
    for name in OWN_FILES:
        path = Path(run_dir) / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(_link_message(path) if stat.S_ISLNK(st.st_mode) else
                             f"{path} is not a regular file; the run dir's own files are never written through it")


def _link_message(path: Path) -> str:
    return (f"{path} is a symbolic link; tui-trainer never writes a run dir's own files through a link "
            "(it could land outside the run dir): remove it, or use another run dir")


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")  # as checkpoint_meta's


class RunLock:
    """One writer per run dir, held with flock so a killed process never leaves it stale.

    The lock file also records who holds it, for the error message a second trainer gets.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise RunDirBusy; a run dir whose own files are links is refused (UnsafePath)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, PRIVATE_FILE)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise UnsafePath(_link_message(self.path)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise RunDirBusy(
                f"{self.path.parent} is being trained by another process ({holder}); "
                "watch it, or stop that process first"
            ) from None
        try:
            refuse_links(self.path.parent)
        except UnsafePath:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        # `terminal`: whether the holder has one; a trainer without one runs detached (or from a script).
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(), "terminal": _has_terminal()}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(holder).encode())
            os.fsync(fd)
        except OSError:  # a full disk: not held, and nothing left half-said
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # an older run's lock: nobody else may hold it from now on
            os.fchmod(fd, PRIVATE_FILE)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(run_dir: str | os.PathLike[str]) -> bool:
    """True if a live process holds the run dir's lock."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class LockHolder:
    """The process training a run dir, as its lock file says."""

    pid: int
    host: str
    since: str
    terminal: bool | None = None

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def describe(self) -> str:
        where = f"pid {self.pid}" + ("" if self.on_this_host else f" on {self.host}")
        return where + ("" if self.terminal is not False else ", detached")


def lock_holder(run_dir: str | os.PathLike[str]) -> LockHolder | None:
    """Who trains the run now: the lock's holder, if a live process holds it; else None.

    On a filesystem shared between machines a lock taken on another host may not be visible
    here, so a lock file naming another host counts as held.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            data = {}
        holder = None
        if isinstance(data, dict) and isinstance(data.get("pid"), int) and isinstance(data.get("host"), str):
            holder = LockHolder(data["pid"], data["host"], str(data.get("since", "")),
                                data.get("terminal") if isinstance(data.get("terminal"), bool) else None)
        if holder is not None and not holder.on_this_host:
            return holder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder or LockHolder(0, socket.gethostname(), "")
        return None
    finally:
        os.close(fd)


def _has_terminal() -> bool:
    try:
        return os.isatty(0) or os.isatty(1)
    except OSError:
        return False


def _describe_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {data['pid']} on {data['host']} since {data['since']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"
