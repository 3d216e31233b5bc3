"""A trainer in its own process and session, so that no terminal, tab or viewer can stop it.

The dashboard starts `tui-trainer train|resume ... --headless` through `start_trainer` with
`TUI_TRAINER_LAUNCH_FD` naming a pipe, and then follows the run dir like any other viewer.
The child runs in a new session (no controlling terminal: a dropped SSH session sends it no
SIGHUP, and it ignores one anyway), builds its trainer, and reports on that pipe, once, the run
dir it holds or why it could not start. Only then does it point its output at `trainer.log`
in the run dir and close the pipe, so what it printed while starting (a traceback of a job
that does not import) reaches the dashboard, and nothing is written to a terminal afterwards.

A run on several processes is started the same way: the child starts torchrun, whose ranks cannot
inherit the pipe, so rank 0 reports on its stdout (`STDOUT_FD`) and the child passes that on
(`session.rank_relay`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAUNCH_FD_ENV = "TUI_TRAINER_LAUNCH_FD"
LOG_FILE = "trainer.log"
_MARK = "\x1etui-trainer-launched "
# The lines a child printed before it failed to start: the last of them say why.
_EARLY_LINES_KEPT = 40
# `LAUNCH_FD_ENV` of a rank: report on stdout, which the process that started torchrun reads and
# relays to trainer.log; so the rank neither redirects nor closes it.
STDOUT_FD = 1


@dataclass(frozen=True)
class LaunchReport:
    """What a detached trainer said once it started, or why it did not."""

    pid: int
    run_dir: Path | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    exit_code: int | None = None  # set when the child exited without starting
    early_output: tuple[str, ...] = field(default=())


def child_command(args: Sequence[str]) -> list[str]:
    """`tui-trainer ARGS` as a command line for this Python, without the current dir on sys.path.

    A console script does not put the current directory on `sys.path`; `python -m` would, and a
    file named like a module there (`torch.py`) would shadow it in the trainer.
    """
    code = "import sys; sys.path.pop(0); from tui_trainer.cli.main import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


class DetachedTrainer:
    """A `tui-trainer` command started in the background; `wait_launched()` says how it went."""

    def __init__(self, args: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.report: LaunchReport | None = None
        self._read_fd: int | None = None
        self._lock = threading.Lock()
        self._pending = b""
        self._found: dict[str, object] | None = None
        self._early: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, LAUNCH_FD_ENV: str(write_fd)}
        env.pop("TEXTUAL_DRIVER", None)  # a browser tab's driver is the viewer's, not the trainer's
        try:
            self.process = subprocess.Popen(
                child_command(self.args), cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=write_fd, stderr=write_fd, pass_fds=(write_fd,), start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._read_fd = read_fd

    def wait_launched(self, timeout: float | None = None) -> LaunchReport | None:
        """The child's report, once it has started (or exited without starting); None on timeout.

        Thread-safe; call again after a timeout to go on waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.report is None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._read_some(left) and deadline is not None and time.monotonic() >= deadline:
                    return None
            return self.report

    def _read_some(self, timeout: float | None) -> bool:
        """Read what the pipe has; True once the report is complete."""
        assert self.process is not None and self._read_fd is not None
        ready, _, _ = select.select([self._read_fd], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(self._read_fd, 1 << 16)
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            self._take_line(raw.decode(errors="replace"))
        if chunk:
            return False
        if self._pending:
            self._take_line(self._pending.decode(errors="replace"))
        os.close(self._read_fd)
        self._read_fd = None
        self.report = self._conclude()
        return True

    def _take_line(self, line: str) -> None:
        found = report_in(line)
        if found is not None:
            self._found = found
        elif line.strip():
            self._early.append(line.rstrip())
            del self._early[:-_EARLY_LINES_KEPT]

    def _conclude(self) -> LaunchReport:
        assert self.process is not None
        pid, found, early = self.process.pid, self._found or {}, tuple(self._early)
        if isinstance(found.get("run_dir"), str):
            notes = found.get("notes")
            notes = tuple(str(n) for n in notes) if isinstance(notes, list) else ()
            return LaunchReport(pid, Path(found["run_dir"]), notes, early_output=early)
        code = self.process.wait()
        error = found.get("error")
        if not isinstance(error, str) or not error:
            error = _last_words(early) or f"the trainer exited with code {code} before it started"
        return LaunchReport(pid, None, (), error, code, early)

    def poll_exit(self) -> int | None:
        return self.process.poll() if self.process else None


def report_in(line: str) -> dict[str, object] | None:
    """The launch report a line carries, if any (from a rank, after another's unfinished line)."""
    at = line.find(_MARK)
    if at < 0:
        return None
    with contextlib.suppress(ValueError):
        found = json.loads(line[at + len(_MARK):])
        if isinstance(found, dict):
            return found
    return None


def _last_words(lines: Sequence[str]) -> str | None:
    """The line that says why: `tui-trainer: error: ...`, else the last line of a traceback."""
    for line in reversed(lines):
        if line.startswith("tui-trainer: error:"):
            return line.removeprefix("tui-trainer: error:").strip()
    return lines[-1].strip() if lines else None


# --- the child's side ------------------------------------------------------------------------


def launch_fd() -> int | None:
    """The pipe to report on, when this process was started by `DetachedTrainer`."""
    value = os.environ.get(LAUNCH_FD_ENV, "")
    return int(value) if value.isdigit() else None


def report_launched(run_dir: Path, notes: Sequence[str]) -> None:
    """Say where the run lives, then send all output to its log and let the pipe go."""
    if launch_fd() == STDOUT_FD:  # a rank: its output reaches the log through the process that started torchrun
        _send({"run_dir": str(Path(run_dir).resolve()), "notes": list(notes)})
        _close_launch_fd()
        return
    log_fd = open_log(run_dir)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    header = f"--- {stamp} trainer pid {os.getpid()} started in the background\n"
    with contextlib.suppress(OSError):
        os.write(log_fd, header.encode())
    _send({"run_dir": str(Path(run_dir).resolve()), "notes": list(notes)})
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)
    _close_launch_fd()


def report_failed(message: str) -> None:
    _send({"error": message})
    _close_launch_fd()


def open_log(run_dir: Path) -> int:
    """The run's `trainer.log`, for appending; never through a link planted in its place."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(Path(run_dir) / LOG_FILE, flags, 0o644)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)  # a log we cannot write must not stop training


def _send(data: dict[str, object]) -> None:
    fd = launch_fd()
    if fd is None:
        return
    if fd == STDOUT_FD:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()  # what was printed before stays before the report
    with contextlib.suppress(OSError):  # the dashboard that started us may be gone already
        os.write(fd, (_MARK + json.dumps(data) + "\n").encode())


def _close_launch_fd() -> None:
    fd = launch_fd()
    os.environ.pop(LAUNCH_FD_ENV, None)
    if fd is not None and fd != STDOUT_FD:
        with contextlib.suppress(OSError):
            os.close(fd)
