"""`tui-trainer watch RUN_DIR`: the dashboard on a run that another process trains.

The same TrainerApp, with a `WatchRunner` that follows the run dir instead of a trainer, and a
`WatchControl` that sends the keys' commands through the run's control file. Quitting only
stops the watching; the run goes on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import pid_alive
from tui_trainer.tui.app import TrainerApp
from tui_trainer.tui.run_follower import WatchRunner
from tui_trainer.tui.watch_control import WatchControl
from tui_trainer.tui.widgets.system_panel import SystemPanel


def _no_launch(**kwargs: Any) -> Any:
    raise AssertionError("a watched run is trained by another process")


class WatchApp(TrainerApp):
    """Shows and steers a run trained elsewhere; never trains itself."""

    def __init__(self, run_dir: str | os.PathLike[str], theme: str | None = None) -> None:
        control = WatchControl(run_dir)
        super().__init__(_no_launch, control=control, theme=theme)
        self.run_dir = Path(run_dir)
        self.control: WatchControl = control
        self.runner = WatchRunner(run_dir, control)  # type: ignore[assignment]
        control.on_error = self._command_failed
        self.sub_title = f"watching {run_dir}"

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(SystemPanel).pid_source = self._trainer_process

    def _trainer_process(self) -> tuple[int | None, str | None]:
        """The trainer's pid when it runs on this machine; else why its process is not shown."""
        ack = self.control.ack
        if ack is None or ack.pid is None:
            return None, "no trainer is running"
        if not ack.on_this_host:
            return None, f"trained on {ack.host}"
        if not pid_alive(ack.pid):
            return None, "no trainer is running (its process is gone)"
        return ack.pid, None

    def _command_failed(self, message: str) -> None:
        self.notify(message, severity="error", timeout=6)

    def _can_steer(self, what: str) -> bool:
        if self.model.training and not self.control.listening:
            self.notify(f"cannot {what}: no trainer is listening in {self.run_dir}", severity="warning", timeout=4)
            return False
        return super()._can_steer(what)

    def _can_continue(self) -> bool:
        return False  # continuing a run means training it here; `tui-trainer resume` does that

    def action_request_quit(self) -> None:
        self.exit(0)  # nothing to save or lose: the run goes on without us

    def action_interrupt(self) -> None:
        self.exit(0)

    def action_roll_back(self) -> None:
        self.notify(
            "rolling back trains the run here; stop its trainer, then `tui-trainer resume CHECKPOINT`",
            severity="warning", timeout=6,
        )


def make_watch_app(run_dir: str | os.PathLike[str], theme: str | None = None) -> WatchApp:
    return WatchApp(run_dir, theme=theme)


def run_watch(run_dir: str | os.PathLike[str], theme: str | None = None) -> int:
    """Watch until the user quits; the run is never stopped by this."""
    app = make_watch_app(run_dir, theme=theme)
    try:
        app.run()
    finally:
        app.runner.stop_and_wait(timeout=5)
    return 0
