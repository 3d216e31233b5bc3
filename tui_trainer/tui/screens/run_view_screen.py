"""Another run, opened from the runs screen: the dashboard's view of it, followed as `watch` follows one.

The dashboard's own run keeps training underneath; this screen only reads the other run's dir
(through `WatchRunner`, on a thread worker) and leaves with escape. Steering that run (pause,
a new target) is `tui-trainer watch RUN_DIR`'s job, so that one screen never steers two runs.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Label

from tui_trainer.session.runner import DRAIN_INTERVAL_S
from tui_trainer.session.watch_control import WatchControl
from tui_trainer.session.watch_runner import WatchRunner
from tui_trainer.tui.run_model import Changed, RunModel
from tui_trainer.tui.screens.help_screen import HelpScreen, key_help
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.loss_chart import LossChart
from tui_trainer.tui.widgets.run_panels import RunPanels
from tui_trainer.tui.widgets.run_progress import RunProgress
from tui_trainer.tui.widgets.status_header import StatusHeader

CHECKPOINT_REFRESH_S = 5.0


class RunViewScreen(Screen[None]):
    """Follows one run dir read-only until dismissed; the follower thread stops with the screen."""

    DEFAULT_CSS = """
    RunViewScreen #view-note { width: 100%; height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the runs", id="run_view.close"),
        Binding("l", "toggle_log_scale", "Log", tooltip="Log scale on the loss axis", id="run_view.log_scale"),
        Binding("question_mark", "show_help", "Help", tooltip="Help: every key and what it does",
                id="run_view.help"),
    ]

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.model = RunModel()
        self.control = WatchControl(run_dir)
        self.runner = WatchRunner(run_dir, self.control)

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="view-status")
        yield RunProgress(id="view-progress")
        yield Label(f"read-only view (esc goes back); `tui-trainer watch {self.run_dir}` steers it", id="view-note")
        yield RunPanels(self.model, id="main")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CheckpointTable).focus()
        self.run_worker(self.runner.run, name="follow", group="run-view", thread=True, exit_on_error=False)
        self.set_interval(DRAIN_INTERVAL_S, self.drain_events)
        self.set_interval(CHECKPOINT_REFRESH_S, self._list_checkpoints)
        self._list_checkpoints()

    def on_unmount(self) -> None:
        self.control.stop("stopped")  # ends the following only; the run is not ours to stop
        self.runner.stop_and_wait(timeout=0)

    def drain_events(self) -> None:
        try:
            changed = self.model.apply(self.runner.buffer.drain())
            self.query_one(RunPanels).show(changed)
            if Changed.CHECKPOINTS in changed:
                self._list_checkpoints()
            self.query_one(StatusHeader).show(self.model)
            self.query_one(RunProgress).show(self.model)
        except NoMatches:
            pass  # a tick that fires while the screen closes finds its widgets gone

    def _list_checkpoints(self) -> None:
        self.query_one(RunPanels).list_checkpoints(self.run_dir)

    def action_toggle_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.log_scale = not chart.log_scale

    def action_close(self) -> None:
        self.dismiss(None)

    def action_show_help(self) -> None:
        self.app.push_screen(HelpScreen(key_help(self.app, self)))
