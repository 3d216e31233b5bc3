"""A run on several processes started by a dashboard: rank 0's start report passed on, the ranks' output kept.

The detached trainer of `train --nproc N` is the process that starts torchrun. The ranks cannot
inherit its launch pipe (torchrun starts them with every other descriptor closed), so the
launcher and the ranks write to a pipe of this process, and rank 0 reports there, on its stdout,
where the run trains or why it could not start. This process passes the first report on as its
own (the dashboard then knows the run dir, and this pid as the one to signal), and relays every
other line: to the dashboard while the run starts, so a rank's last words say why it failed, and
to the run's trainer.log from then on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from tui_trainer.session.detached import LAUNCH_FD_ENV, STDOUT_FD, report_failed, report_in, report_launched

# Lines kept to say why, if the ranks end before any of them reported.
_LINES_KEPT = 20


class RankOutputRelay:
    """The pipe the launcher and the ranks write to, and the thread that reads it."""

    def __init__(self) -> None:
        self._read_fd, self.write_fd = os.pipe()
        self.reported = False
        self._last: list[str] = []
        self._thread = threading.Thread(target=self._relay, name="rank-output", daemon=True)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The launcher's environment: its ranks report on their stdout, which is this pipe."""
        return {**base, LAUNCH_FD_ENV: str(STDOUT_FD)}

    def start(self) -> None:
        """Call once the launcher has its end of the pipe."""
        os.close(self.write_fd)
        self._thread.start()

    def finish(self, exit_code: int | None, timeout: float = 10.0) -> None:
        """After the launcher exited: relay what is left; say why if no rank ever reported."""
        self._thread.join(timeout)
        if not self.reported:
            self.reported = True
            report_failed(self._why() or f"the ranks exited with code {exit_code} before the run started")

    def _relay(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self._read_fd, 1 << 16):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._take(line + b"\n")
            if pending:
                self._take(pending)
        finally:
            os.close(self._read_fd)

    def _take(self, raw: bytes) -> None:
        line = raw.decode(errors="replace")
        found = report_in(line)
        if found is None:
            _write_out(raw)
            if line.strip():
                self._last = [*self._last[1 - _LINES_KEPT:], line.strip()]
            return
        if self.reported:
            return  # another rank's word on the same start (rank 0 speaks first)
        self.reported = True
        if isinstance(found.get("run_dir"), str):
            notes = found.get("notes")
            report_launched(Path(str(found["run_dir"])), [str(n) for n in notes] if isinstance(notes, list) else [])
        else:
            report_failed(str(found.get("error") or "a rank could not start the run"))

    def _why(self) -> str | None:
        """The launcher's or a rank's one line (`tui-trainer: ...`), else the last line printed."""
        for line in reversed(self._last):
            if line.startswith("tui-trainer:"):
                return line.removeprefix("tui-trainer:").removeprefix(" error:").strip()
        return self._last[-1] if self._last else None


def _write_out(raw: bytes) -> None:
    """To this process's stdout: the dashboard's pipe while starting, trainer.log once reported."""
    with contextlib.suppress(OSError):  # the dashboard may be gone; the ranks train on regardless
        os.write(STDOUT_FD, raw)
