"""The dashboard app: `make_app(launch_fn)` for the CLI and the tests, `run_dashboard` for the CLI.

The app paints first; the trainer (torch, the job) is built in a thread worker afterwards.
Events reach the screen only through `runner` (a buffer drained at 10 Hz), never per step.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message

from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.session.run_source import RunControl, RunSource
from tui_trainer.session.runner import COUNTERS_INTERVAL_S, DRAIN_INTERVAL_S, LaunchFn, TrainingRunner
from tui_trainer.tui.binding_commands import BindingCommands
from tui_trainer.tui.checkpoint_actions import CHECKPOINT_ACTIONS, CHECKPOINT_BINDINGS, CheckpointActions
from tui_trainer.tui.run_alerts import RunAlerts
from tui_trainer.tui.run_dir_watcher import RunDirWatcher
from tui_trainer.tui.run_model import ENDED_STATES, Changed, RunModel
from tui_trainer.tui.screens.quit_modal import QUIT_WITHOUT_SAVING, SAVE_AND_QUIT, QuitScreen
from tui_trainer.tui.screens.target_modal import NewTarget, TargetScreen
from tui_trainer.tui.terminal_alerts import TerminalAlerts
from tui_trainer.tui.theme_switching import THEME_BINDINGS, ThemeSwitching
from tui_trainer.tui.widgets.checkpoint_table import CheckpointRow, CheckpointTable
from tui_trainer.tui.widgets.compact_footer import CompactFooter
from tui_trainer.tui.widgets.disk_panel import DiskPanel
from tui_trainer.tui.widgets.loss_chart import LossChart
from tui_trainer.tui.widgets.run_panels import RunPanels
from tui_trainer.tui.widgets.run_progress import RunProgress
from tui_trainer.tui.widgets.status_header import StatusHeader
from tui_trainer.tui.widgets.system_panel import SystemPanel

# Re-reading the sidecars more often buys nothing; the ages in the table tick every second
# without it (and the elapsed training time with them, between logged steps).
CHECKPOINT_REFRESH_S = 15.0
TICK_S = 1.0
FIRST_DATA_INTERVAL_S, FIRST_DATA_WITHIN_S = 0.05, 10.0


DASHBOARD_ACTIONS = frozenset(
    {"toggle_pause", "save_now", "new_target", "toggle_log_scale", "toggle_smoothing", "request_quit",
     "cycle_chart_window", "cycle_checkpoint_sort", "show_runs", "more_smoothing", "less_smoothing",
     "cycle_y_range"}
) | CHECKPOINT_ACTIONS


class DrainNow(Message):
    """The runner has the answer to a key the user just pressed (PAUSED, RUNNING...)."""


class TrainerApp(ThemeSwitching, CheckpointActions, RunAlerts, TerminalAlerts, App[int]):
    """Trains one run (built by `launch_fn` in a worker) and shows it."""

    CSS_PATH = "app.tcss"
    TITLE = "tui-trainer"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    COMMANDS = App.COMMANDS | {BindingCommands}
    BINDINGS = [
        # Short descriptions: all six must fit the footer of an 80-column terminal.
        Binding("p", "toggle_pause", "Pause", tooltip="Pause or resume after the current step",
                id="dashboard.pause"),
        Binding("s", "save_now", "Save", tooltip="Save a checkpoint now", id="dashboard.save_now"),
        Binding("r", "new_target", "Target", tooltip="Set a new iteration target", id="dashboard.new_target"),
        Binding("l", "toggle_log_scale", "Log", tooltip="Log scale on the loss axis", id="dashboard.log_scale"),
        Binding("m", "toggle_smoothing", "Smooth", tooltip="Smooth the train loss (debiased EMA) or not",
                id="dashboard.smoothing"),
        # Not in the footer (no room at 80 columns); in the help screen and the command palette.
        Binding("right_square_bracket", "more_smoothing", "More smoothing",
                tooltip="Smooth the train loss more (EMA weight 0.6, 0.8, 0.9, 0.95, 0.99)", show=False,
                id="dashboard.more_smoothing"),
        Binding("left_square_bracket", "less_smoothing", "Less smoothing",
                tooltip="Smooth the train loss less (down to none)", show=False, id="dashboard.less_smoothing"),
        Binding("y", "cycle_y_range", "Y range",
                tooltip="Y range: leave out the first steps' fall once past them (auto), whole curve, or always",
                show=False, id="dashboard.y_range"),
        Binding("w", "cycle_chart_window", "Window", tooltip="Chart window: whole run, or the last N steps",
                show=False, id="dashboard.chart_window"),
        Binding("o", "cycle_checkpoint_sort", "Sort", tooltip="Sort checkpoints by step, val loss or size",
                show=False, id="dashboard.checkpoint_sort"),
        Binding("R", "show_runs", "Runs", tooltip="Runs: every run under the checkpoints root; compare, prune",
                show=False, id="dashboard.runs"),
        Binding("q", "request_quit", "Quit", tooltip="Quit (asks first while training)", id="dashboard.quit"),
        # Ctrl+C means what it means in a headless run: save a checkpoint, then quit.
        Binding("ctrl+c", "interrupt", "Save and quit", show=False, priority=True, id="dashboard.interrupt"),
        *CHECKPOINT_BINDINGS,  # ? e x d space enter c b
        *THEME_BINDINGS,  # t
    ]

    def __init__(self, launch_fn: LaunchFn, *, control: TrainingControl | None = None,
                 theme: str | None = None) -> None:
        super().__init__()
        self.setup_themes(theme)  # `theme` (--theme), else the remembered one, else the default
        # The run source and its control: in process here; `AttachApp` follows one from its files.
        self.control: RunControl = control or TrainingControl()
        self.runner: RunSource = TrainingRunner(launch_fn, self.control)
        self.model = RunModel()
        self.panels = RunPanels(self.model, id="main")  # the chart, the checkpoint table, the log
        self.quitting = False
        self._first_data: Any = None  # the fast drain timer, until the first of the curve arrives
        self._counters_shown: tuple[float, str] = (0.0, "")  # when the counters were last shown, in what state
        self.watcher = RunDirWatcher()  # files changed by anyone refresh the table and the disk panel

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield RunProgress(id="progress")
        with Horizontal(id="gauges"):
            yield DiskPanel(id="disk")
            yield SystemPanel(id="system")
        yield self.panels
        yield CompactFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Under a modal, the dashboard's keys belong to the modal (s and d in the quit dialog).
        if action in DASHBOARD_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def on_mount(self) -> None:
        self.query_one(CheckpointTable).focus()
        self.report_theme_problems()
        self.set_interval(DRAIN_INTERVAL_S, self.drain_events)
        # Until the first of the run's curve arrives, look ten times as often: a curve read at
        # once from the history (an attached run) should not wait out a tick on an empty chart.
        self._first_data = self.set_interval(FIRST_DATA_INTERVAL_S, self.drain_events,
                                             repeat=int(FIRST_DATA_WITHIN_S / FIRST_DATA_INTERVAL_S))
        self.set_interval(CHECKPOINT_REFRESH_S, self.refresh_checkpoints)
        self.set_interval(TICK_S, self.tick)
        self.call_after_refresh(gc.enable)  # off for the start-up (see `tui_trainer.tui.run_dashboard`)
        # Start after the first frame: the worker's torch import competes for the GIL.
        self.call_after_refresh(self._start_training)

    def on_unmount(self) -> None:
        # However the app ends, a trainer left running would keep the process alive, and
        # stopping it as "interrupted" saves its progress first. `run_dashboard` waits for it.
        self.control.stop("interrupted")
        self.watcher.stop()

    # --- the bridge -------------------------------------------------------------------------

    def _start_training(self) -> None:
        self.runner.buffer.wake_ui = self._drain_soon
        self.run_worker(self.runner.run, name="trainer", group="training", thread=True, exclusive=True,
                        exit_on_error=False)

    def _drain_soon(self) -> None:
        """From the runner's thread: drain on the UI's loop now, without waiting for it."""
        self.post_message(DrainNow())

    def on_drain_now(self, _: DrainNow) -> None:
        self.drain_events()

    def drain_events(self) -> None:
        """Apply what the trainer reported since the last tick; redraw only what changed."""
        try:
            self._drain_events()
        except NoMatches:
            pass  # a tick that fires while the app shuts down finds its widgets gone

    def _drain_events(self) -> None:
        events = self.runner.buffer.drain()
        changed = self.model.apply(events)
        self.alert_on(events)  # the bell and a desktop notification when the run ends
        if Changed.CHART in changed and self._first_data is not None:
            self._first_data.stop()
            self._first_data = None
        self.panels.show(changed)
        if Changed.CHECKPOINTS in changed:
            self.refresh_checkpoints()
        for saved in self.model.take_saves_asked():
            self.notify(f"saved step {saved.step} as {Path(saved.path).name}", timeout=4)
        alert = self.model.take_disk_full_alert()
        if alert is not None:
            self.show_disk_full(alert)
        anomaly = self.model.take_anomaly_alert()
        if anomaly is not None:
            self.show_anomaly(anomaly)
        self.show_counters()
        if self.watcher.take_change():
            self.refresh_checkpoints()
        if (self.quitting or self.control.stop_reason is not None) and self.runner.done.is_set():
            self.exit(0)

    def show_counters(self, now: float | None = None) -> None:
        """The header, progress and disk forecast: at once on a new state, else at most every COUNTERS_INTERVAL_S."""
        now = time.monotonic() if now is None else now
        shown_at, state = self._counters_shown
        if state == self.model.state and now - shown_at < COUNTERS_INTERVAL_S:
            return
        self._counters_shown = (now, self.model.state)
        self.query_one(StatusHeader).show(self.model)
        self.query_one(RunProgress).show(self.model)
        self.query_one(DiskPanel).show(self.model)

    def tick(self) -> None:
        """Once a second: the checkpoints' ages and the elapsed time move on even when nothing was reported."""
        try:
            self.query_one(CheckpointTable).tick_ages()
            self.query_one(StatusHeader).show(self.model)
        except NoMatches:
            pass

    def refresh_checkpoints(self) -> None:
        if self.model.run_dir:
            self.watcher.watch(self.model.run_dir)
            self.query_one(DiskPanel).reload(self.model.run_dir)
            self.panels.list_checkpoints(self.model.run_dir)

    @property
    def checkpoints(self) -> list[CheckpointRow]:
        """The run's checkpoints as the table last listed them."""
        return self.panels.rows

    # --- actions ----------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if not self._can_steer("pause"):
            return
        self.control.toggle_pause()
        if self.control.paused:
            self.model.state = "pausing"  # until the trainer finishes its step and says so
        elif self.model.state == "pausing":
            self.model.state = "running"  # toggled back before the trainer noticed
        self.query_one(StatusHeader).show(self.model)

    def action_save_now(self) -> None:
        if self._can_steer("save"):
            self.control.save_now()
            # The step it saves is the one running now, which no report has named yet: the
            # toast that names it comes when the save is done.
            self.notify("saving a checkpoint after the current step", timeout=3)

    def action_new_target(self) -> None:
        if self._can_continue():
            note = "The run has ended; it continues from its newest checkpoint to the new target."
            self.push_screen(TargetScreen(self.model.target or 0, self.model.step, note, self._lr_planner()),
                             self._continue_run)
        elif self._can_steer("change the target"):
            self.push_screen(TargetScreen(self.model.target or 0, self.model.step, plan_lr=self._lr_planner()),
                             self._set_target)

    def _lr_planner(self) -> Any:
        """What the LR will do on a new target, told by the trainer of this process (None for a followed run)."""
        trainer = getattr(self.runner, "trainer", None)
        if getattr(trainer, "job", None) is None:
            return None
        from tui_trainer.engine.loop.lr_takeover import preview_retarget  # torch is loaded by now

        return lambda target, rewarm: preview_retarget(trainer.job, trainer.step, trainer.target, target, rewarm)

    def _set_target(self, choice: NewTarget | None) -> None:
        if choice is None or not self.model.training:
            return
        if choice.rewarm is None:
            self.control.set_target(choice.target)
        else:
            self.control.set_target(choice.target, choice.rewarm)
        self.notify(f"target {self.model.target} -> {choice.target}", timeout=3)

    def _can_continue(self) -> bool:
        """A finished (or failed) run whose dir is known can train on to a new target."""
        return (not self.quitting and self.model.run_dir is not None and self.model.worker_done
                and self.model.state in ("finished", "failed") and self.control.stop_reason is None)

    def _continue_run(self, choice: NewTarget | None) -> None:
        if choice is None or not self._can_continue():
            return
        run_dir = self.model.run_dir

        def resume(**kwargs: Any) -> Any:
            from tui_trainer.engine.loop.launch import resume_run

            trainer = resume_run(run_dir, max_iters=choice.target, **kwargs)
            if choice.rewarm is not None:
                trainer.rewarm_at_start(choice.rewarm)
            return trainer

        self.drain_events()  # nothing of the old run may arrive after the new one starts
        self.runner = TrainingRunner(resume, self.control)
        self.model.restart()
        self.query_one(StatusHeader).show(self.model)
        self._start_training()

    def action_toggle_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.log_scale = not chart.log_scale

    def action_toggle_smoothing(self) -> None:
        self.query_one(LossChart).toggle_smoothing()

    def action_more_smoothing(self) -> None:
        self.query_one(LossChart).adjust_smoothing(+1)

    def action_less_smoothing(self) -> None:
        self.query_one(LossChart).adjust_smoothing(-1)

    def action_cycle_y_range(self) -> None:
        self.query_one(LossChart).cycle_y_range()

    def action_cycle_chart_window(self) -> None:
        self.query_one(LossChart).cycle_window()

    def action_cycle_checkpoint_sort(self) -> None:
        self.query_one(CheckpointTable).cycle_sort()

    def action_show_runs(self) -> None:
        if self.model.run_dir is None:
            self.notify("the runs screen opens once the run has loaded", severity="warning", timeout=3)
            return
        run_dir = Path(self.model.run_dir)
        from tui_trainer.tui.screens.runs_screen import (
            RunsScreen,  # on first use: its imports would slow the first frame
        )

        self.push_screen(RunsScreen(run_dir.parent, live_run=run_dir))

    def action_request_quit(self) -> None:
        if self.quitting:
            return
        if self.model.training:
            self.push_screen(QuitScreen(self._kept_on_disk()), self._quit_choice)
        elif self.runner.active:
            self._quit_choice(QUIT_WITHOUT_SAVING)  # still loading: nothing trained yet
        else:
            self.exit(0)

    def action_interrupt(self) -> None:
        if self.model.training:
            self._quit_choice(SAVE_AND_QUIT)
        else:
            self.action_request_quit()

    async def action_quit(self) -> None:
        self.action_request_quit()  # ctrl+q too must not drop a running trainer silently

    def _quit_choice(self, choice: str | None) -> None:
        if choice is None or self.quitting:
            return
        self.quitting = True
        self.control.stop("interrupted" if choice == SAVE_AND_QUIT else "stopped")
        self.model.state = "stopping"
        message = "saving a checkpoint, then quitting" if choice == SAVE_AND_QUIT else "stopping, then quitting"
        self.notify(message, timeout=10)
        self.query_one(StatusHeader).show(self.model)
        if self.runner.done.is_set():
            self.exit(0)

    def _kept_on_disk(self) -> str:
        if not self.checkpoints:
            return "no checkpoint has been saved yet, so everything trained in this session is lost."
        latest = max(self.checkpoints, key=lambda r: int(r.cells[0]))
        return f"the newest checkpoint, {latest.name} (step {latest.cells[0]}), stays; later steps are lost."

    def _can_steer(self, what: str) -> bool:
        if self.quitting:
            return False
        if self.model.training:
            return True
        if self.model.state == "loading":
            self.notify(f"cannot {what} yet: the run is still loading", severity="warning", timeout=3)
        elif self.model.state in ENDED_STATES:
            self.notify(f"cannot {what}: the run has ended", severity="warning", timeout=3)
        return False


def make_app(launch_fn: LaunchFn, *, control: TrainingControl | None = None, theme: str | None = None) -> TrainerApp:
    """The dashboard for the trainer that `launch_fn(on_event=..., control=...)` builds."""
    return TrainerApp(launch_fn, control=control, theme=theme)
