"""The small interface a dashboard reads a run through: events in, commands out.

Two implementations: `runner.TrainingRunner` trains the run in the dashboard's own process
(`tui.app.make_app(launch_fn)`, tests, Python code), and `watch_runner.WatchRunner` follows a
run another process trains, from its files (every dashboard the CLI opens, `attach`, a browser
tab, the runs screen's view of another run). The dashboard drains `buffer` on a timer and
steers through a control with `TrainingControl`'s commands: the trainer's own, or
`watch_control.WatchControl`, which writes them to the run's control file.
"""

from __future__ import annotations

import threading
from typing import Protocol

from tui_trainer.session.runner import EventBuffer


class RunSource(Protocol):
    """Where a dashboard's events come from. `run()` is called once, on a worker thread."""

    buffer: EventBuffer  # events (engine events and the bridge's own), drained by the UI thread
    started: threading.Event
    done: threading.Event
    launch_error: BaseException | None  # why the run could not start, if it could not

    @property
    def active(self) -> bool: ...

    def run(self) -> None: ...

    def stop_and_wait(self, reason: str = ..., timeout: float | None = None) -> bool:
        """Stop following (and, in process, stop training, saving first for "interrupted")."""


class RunControl(Protocol):
    """The commands a dashboard's keys send; safe to call from the UI thread."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def toggle_pause(self) -> None: ...
    def save_now(self) -> None: ...
    def set_target(self, max_iters: int) -> None: ...
    def set_keep_last(self, keep_last: int) -> None: ...
    def stop(self, reason: str = ...) -> None: ...
    def roll_back(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    @property
    def stop_reason(self) -> str | None: ...
