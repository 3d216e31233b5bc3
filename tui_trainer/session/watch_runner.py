"""Following a run dir on a worker thread, with TrainingRunner's interface, for an attached dashboard.

The engine modules the follower reads with are imported on the worker, after the first frame.
No Textual here.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tui_trainer.session.runner import EventBuffer, Launched, LaunchFailed
from tui_trainer.session.watch_control import WatchControl

if TYPE_CHECKING:
    from tui_trainer.session.detached import DetachedTrainer

FOLLOW_INTERVAL_S = 0.25
# After a command is sent, the trainer's answer (PAUSED) is looked for this often, for this long:
# a key's effect shows within a tenth of a second or two, and idle following stays cheap.
HURRY_INTERVAL_S, HURRY_FOR_S = 0.02, 2.0


class LaunchError(Exception):
    """The trainer started in the background could not start; `exit_code` is the one it exited with."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code or 1


class WatchRunner:
    """Follows a run dir on the calling thread (a Textual thread worker) until stopped.

    Has TrainingRunner's interface (`buffer`, `active`, `done`, `stop_and_wait`), so the app
    drains it the same way. Stopping it never touches the run. Given a `DetachedTrainer` (the
    dashboard started the run), it waits for that trainer's launch report first, to learn the
    run dir or why the run could not start; `spawn` starts another one on the same run.
    """

    launch_fn = None
    trainer = None
    result = None

    def __init__(self, run_dir: str | os.PathLike[str] | None, control: WatchControl,
                 interval: float = FOLLOW_INTERVAL_S, launching: DetachedTrainer | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.control = control
        self.interval = interval
        self.launching = launching
        self.launch_error: LaunchError | None = None
        self.buffer = EventBuffer()
        self.started = threading.Event()
        self.done = threading.Event()
        self._wake = threading.Event()
        self._hurry_until = 0.0
        self._put_since_nudge = False
        self._routine: tuple[type, ...] = ()  # what a run reports anyway: the UI's tick shows it soon enough
        control.on_sent = self.hurry

    @property
    def active(self) -> bool:
        return self.started.is_set() and not self.done.is_set()

    def run(self) -> None:
        self.started.set()
        try:
            if self.launching is not None:
                if self.launching.process is None:
                    # Started here, after the first frame: its torch import would compete for the CPU.
                    self.launching.start()
                if not self._launched(self.launching, first=True):
                    return
            assert self.run_dir is not None
            from tui_trainer.engine.loop.events import Evaluated, StepCompleted  # not before the first frame
            from tui_trainer.session.run_follower import RunFollower

            self._routine = (StepCompleted, Evaluated)

            follower = RunFollower(self.run_dir, self._put, self.control)
            failures = 0
            while self.control.stop_reason is None:
                try:
                    follower.poll()
                    failures = 0
                    if self._put_since_nudge and time.monotonic() < self._hurry_until:
                        self.buffer.nudge()  # the answer to a key: shown now, not at the UI's next tick
                    self._put_since_nudge = False
                except Exception as exc:  # a file vanished mid-read, a network filesystem hiccup
                    failures += 1
                    if failures == 1:
                        follower.note(f"reading {self.run_dir} failed ({type(exc).__name__}: {exc}); retrying",
                                      "warning")
                self._wake.wait(HURRY_INTERVAL_S if time.monotonic() < self._hurry_until else self.interval)
                self._wake.clear()
            follower.close()
        finally:
            self.done.set()

    def hurry(self) -> None:
        """A command was sent: follow the run closely for a moment, starting now."""
        self._hurry_until = time.monotonic() + HURRY_FOR_S
        self._wake.set()

    def _put(self, event: object) -> None:
        lr = getattr(event, "lr", None)  # a StepCompleted's: the LR the `r` modal's preview starts from
        if isinstance(lr, float) and math.isfinite(lr):
            self.control.saw_lr(getattr(event, "step", 0), lr)
        self.buffer.put(event)
        if not isinstance(event, self._routine):
            self._put_since_nudge = True

    def spawn(self, args: list[str]) -> DetachedTrainer:
        """Start `tui-trainer ARGS` in the background on this run (continue, roll back); report how it went."""
        from tui_trainer.session.detached import DetachedTrainer

        trainer = DetachedTrainer(args)
        trainer.start()
        self.launching = trainer
        threading.Thread(target=self._launched, args=(trainer,), name="launch-report", daemon=True).start()
        return trainer

    def _launched(self, trainer: DetachedTrainer, first: bool = False) -> bool:
        """Wait for `trainer`'s report (giving up if we stop first); put what it said in the buffer."""
        while True:
            report = trainer.wait_launched(timeout=self.interval)
            if report is not None:
                break
            if self.control.stop_reason is not None:
                return False
        if report.error is not None:
            if first:
                self.launch_error = LaunchError(report.error, report.exit_code)
            self.buffer.put(LaunchFailed(report.error, time=time.time()))
            return False
        if first:
            assert report.run_dir is not None
            self.run_dir = report.run_dir
            self.control.set_run_dir(report.run_dir)
        self.buffer.put(Launched((*report.notes, f"training in the background (pid {report.pid}); "
                                  "leaving this dashboard never stops it"), time=time.time()))
        return True

    def stop_and_wait(self, reason: str = "stopped", timeout: float | None = None) -> bool:
        self.control.stop(reason)
        self._wake.set()
        if not self.started.is_set():
            return True
        return self.done.wait(timeout)
