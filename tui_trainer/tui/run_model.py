"""What the dashboard knows about the run, updated from batches of engine events.

Plain Python owned by the UI thread: no Textual, no torch, so it is tested on its own.
`apply` returns which parts of the screen the batch changed, so the app redraws only those.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Flag, auto
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.loop.step_rate import eta_seconds
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.session.runner import CurveLoaded, JobOutput, Launched, LaunchFailed, RunEnded
from tui_trainer.tui.chart_data import LossSeries
from tui_trainer.tui.chart_markers import ChartMarker, event_markers, is_warm_start_note, resumed_from_step

if TYPE_CHECKING:
    from tui_trainer.engine.loop import events as ev

# State -> the word shown; the word is also the CSS class that colours it (`-running`, ...).
STATE_WORDS = {
    "loading": "Loading",
    "running": "Running",
    "pausing": "Pausing",
    "paused": "Paused",
    "stopping": "Stopping",
    "finished": "Finished",
    "stopped": "Stopped",
    "interrupted": "Saved & stopped",
    "failed": "Failed",
}
ENDED_STATES = frozenset({"finished", "stopped", "interrupted", "failed", "anomaly"})
MAX_LOG_LINES = 1000
SPARK_POINTS = 24  # logged values kept per scalar for its sparkline
GRAD_NORM = "grad_norm"  # the sparkline of the gradient norm, beside the job's own scalars


class Changed(Flag):
    NOTHING = 0
    STATUS = auto()
    CHART = auto()
    CHECKPOINTS = auto()
    LOG = auto()


@dataclass
class LogLine:
    time: float
    text: str
    level: str = "info"  # info, warning, error
    source: str = "run"  # run: the trainer's events; job: what the job's own code printed or logged


@dataclass
class RunModel:
    state: str = "loading"
    run_dir: str | None = None
    run_id: str | None = None
    job: str | None = None
    device: str | None = None
    step: int = 0
    target: int | None = None
    epoch: int | None = None
    steps_per_sec: float = 0.0  # over training time (`step_rate`), as every view computes it
    samples_per_sec: float = 0.0
    tokens_per_sec: float | None = None
    lrs: tuple[float, ...] = ()  # every param group's LR at the last logged step
    grad_norm: float | None = None  # before clipping
    scalars: dict[str, float] = field(default_factory=dict)  # the job's own, from its loss_fn
    recent: dict[str, deque[float]] = field(default_factory=dict)  # grad norm and scalars, for sparklines
    # Training time (pauses, evaluations, saves left out) as of `elapsed_at` (wall time); None
    # until a trainer has said it (an older run followed from its files: wall time since it started).
    elapsed: float = 0.0
    elapsed_at: float | None = None
    step_interval: float = 0.0  # wall seconds between the last two logged steps
    eval_seconds: float = 0.0  # time kept out of `elapsed`, as reported (this session's)
    save_seconds: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    end_reason: str | None = None
    worker_done: bool = False
    train: LossSeries = field(default_factory=LossSeries)
    val: LossSeries = field(default_factory=LossSeries)  # the monitored metric's evaluations
    metric: str = "val_loss"  # the run's monitored metric, named by its CurveLoaded
    markers: list[ChartMarker] = field(default_factory=list)  # the run's events on the curve
    resumed_from: list[float] = field(default_factory=list)  # steps of the checkpoints it resumed from
    log: list[LogLine] = field(default_factory=list)
    unread_log: int = 0
    disk_full: ev.DiskFull | None = None  # set while paused on a save that did not fit
    _disk_full_alert: ev.DiskFull | None = None  # not yet shown as an alert
    _anomaly_alert: ev.AnomalyFound | None = None  # a pause on an anomaly, not yet asked about
    _saves_asked: list[ev.CheckpointSaved] = field(default_factory=list)  # manual saves, not yet toasted
    _steps_timed: bool = False  # a step has reported the training time

    # --- derived values -----------------------------------------------------------------------

    @property
    def run_name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else "-"

    @property
    def job_name(self) -> str:
        if not self.job:
            return "-"
        if self.job == DEMO_JOB:
            return "demo"
        module, _, factory = self.job.partition(":")
        return f"{module.rpartition('.')[2]}:{factory}" if factory else module

    @property
    def training(self) -> bool:
        """True while a trainer exists and has not ended (paused counts as training)."""
        return self.state in ("running", "pausing", "paused", "stopping") and not self.worker_done

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.target) if self.target else 0.0

    def eta_seconds(self) -> float | None:
        """Training time to the target at the current speed (pauses, evaluations and saves not foreseen)."""
        if self.state != "running":
            return None
        return eta_seconds(self.step, self.target, self.steps_per_sec)

    def elapsed_seconds(self, now: float | None = None) -> float | None:
        """The run's training time, across resumes; it ticks between logged steps while running."""
        now = now if now is not None else time.time()
        if self.elapsed_at is None:  # nothing said it: wall time, as an older run's history has no more
            if self.started_at is None:
                return None
            return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)
        if self.state not in ("running", "pausing") or self.ended_at is not None:
            return self.elapsed
        # Up to about two logged steps' worth past the last one: an evaluation or a save after it
        # is not training time, and the next step's report brings the true figure.
        return self.elapsed + min(max(0.0, now - self.elapsed_at), max(1.0, 2 * self.step_interval))

    def take_log(self) -> list[LogLine]:
        """Log lines added since the last call."""
        lines = self.log[len(self.log) - self.unread_log:] if self.unread_log else []
        self.unread_log = 0
        return lines

    def note(self, text: str, level: str = "info", at: float | None = None, source: str = "run") -> None:
        self.log.append(LogLine(at if at is not None else time.time(), text, level, source))
        self.unread_log += 1
        if len(self.log) > MAX_LOG_LINES:
            del self.log[: len(self.log) - MAX_LOG_LINES]
            self.unread_log = min(self.unread_log, MAX_LOG_LINES)

    def take_saves_asked(self) -> list[ev.CheckpointSaved]:
        """The saves asked for (manual) that finished since the last call, once."""
        saves, self._saves_asked = self._saves_asked, []
        return saves

    def take_disk_full_alert(self) -> ev.DiskFull | None:
        """The newest full-disk pause not yet alerted, once."""
        alert, self._disk_full_alert = self._disk_full_alert, None
        return alert

    def take_anomaly_alert(self) -> ev.AnomalyFound | None:
        """The newest pause on an anomaly not yet asked about, once."""
        alert, self._anomaly_alert = self._anomaly_alert, None
        return alert

    def restart(self) -> None:
        """Back to loading for a new trainer on the same run; the curves and log stay."""
        self.state, self.worker_done, self.error, self.end_reason = "loading", False, None, None
        self.disk_full = self._disk_full_alert = None
        self.ended_at, self.steps_per_sec = None, 0.0
        self.elapsed_at = None  # the new trainer's Started says where the training time stands

    # --- applying events ----------------------------------------------------------------------

    def apply(self, events: list[Any]) -> Changed:
        changed = Changed.NOTHING
        for event in events:
            changed |= self._mark(event)
            changed |= self._apply_one(event)
        return changed

    def _mark(self, event: Any) -> Changed:
        """Put the event's markers on the curve (by the event's name: kinds added later are tolerated)."""
        reached = max(float(self.step), self.train.steps[-1] if len(self.train) else 0.0)
        markers = event_markers(event, reached)
        resumed = resumed_from_step(event)
        if resumed is not None and resumed not in self.resumed_from:
            self.resumed_from.append(resumed)
        notes = [getattr(event, "text", "")] + list(getattr(event, "notes", ()))
        if any(isinstance(text, str) and is_warm_start_note(text) for text in notes):
            markers.append(ChartMarker(float(self.step), "warm_start"))
        new = [m for m in markers if m not in self.markers]
        self.markers.extend(new)
        return Changed.CHART if new or resumed is not None else Changed.NOTHING

    def _apply_one(self, event: Any) -> Changed:
        from tui_trainer.engine.loop import events as ev  # on the first event: not needed for the first frame

        at = getattr(event, "time", None) or time.time()
        if isinstance(event, ev.StepCompleted):
            self._step(event, at)
            return Changed.STATUS | Changed.CHART
        if isinstance(event, ev.Evaluated):
            self.eval_seconds += event.seconds
            if self.metric in event.metrics:
                self.val.append(event.step, event.metrics[self.metric])
                return Changed.CHART
            return Changed.NOTHING
        if isinstance(event, ev.Started):
            self.run_dir, self.run_id, self.job = event.run_dir, event.run_id, event.job
            self.device, self.step, self.target = event.device, event.step, event.target
            self.started_at, self.ended_at, self.state = at, None, "running"
            self.elapsed, self.elapsed_at = event.elapsed or 0.0, (at if event.elapsed is not None else None)
            self.steps_per_sec = 0.0
            how = f"resumed from {Path(event.resumed_from).name}" if event.resumed_from else "started"
            self.note(f"{how} at step {event.step}, target {event.target}, on {event.device}", at=at)
            return Changed.STATUS | Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.CheckpointSaved):
            self.save_seconds += event.seconds
            if event.kind == "manual":
                self._saves_asked.append(event)
            self.note(
                f"saved {Path(event.path).name} ({event.kind}, {human_bytes(event.size_bytes)}"
                # 0: not timed (an amended sidecar, or a save seen from `watch`)
                + (f", {event.seconds:.2f} s)" if event.seconds else ")"),
                at=at,
            )
            return Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.CheckpointPruned):
            names = ", ".join(Path(p).name for p in event.paths)
            self.note(f"pruned {names}, freed {human_bytes(event.freed_bytes)}", at=at)
            return Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.CheckpointFailed):
            self.note(f"checkpoint at step {event.step} ({event.kind}) failed: {event.reason}", "error", at)
            return Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.TargetChanged):
            self.target = event.new_target
            self.note(f"target {event.old_target} -> {event.new_target}: {event.note}", at=at)
            return Changed.STATUS | Changed.LOG
        if isinstance(event, ev.PolicyChanged):
            self.note(f"keep-last is now {event.keep_last}", at=at)
            return Changed.LOG
        if isinstance(event, ev.Paused):
            self.state, self.step = "paused", event.step
            self.note(f"paused at step {event.step}", at=at)
            return Changed.STATUS | Changed.LOG
        if isinstance(event, ev.DiskFull):
            self.state, self.step = "paused", event.step
            self.disk_full = self._disk_full_alert = event
            if event.kind == ev.DISK_FULL_WRITE:
                self.note(f"disk full: {event.name} could not be written at step {event.step}, "
                          f"{human_bytes(event.free_bytes)} is free; paused with its records in memory: "
                          "make room, then resume (p) to write them", "error", at)
            else:
                self.note(f"disk full: the {event.kind} save at step {event.step} needs about "
                          f"{human_bytes(event.needed_bytes)}, {human_bytes(event.free_bytes)} is free; "
                          "paused with nothing written: make room, then resume (p) to retry", "error", at)
            return Changed.STATUS | Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.AnomalyFound):
            from tui_trainer.engine.loop.anomaly import PAUSE, anomaly_line

            self.step = event.step
            self._anomaly_alert = event if event.action == PAUSE else None
            self.note(anomaly_line(event.step, event.kind, event.detail, event.action), "error", at)
            return Changed.STATUS | Changed.LOG
        if isinstance(event, ev.RolledBack):
            from tui_trainer.engine.loop.anomaly import rollback_line

            self.step, self._anomaly_alert = event.step, None
            self.note(rollback_line(event.step, event.from_step, event.name, event.skipped_batches), "warning", at)
            return Changed.STATUS | Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.Resumed):
            # Answered already (a followed run's journal tells its past): nothing left to ask.
            self.disk_full = self._disk_full_alert = self._anomaly_alert = None
            if self.state != "stopping":
                self.state = "running"
            self.note(f"resumed at step {event.step}", at=at)
            return Changed.STATUS | Changed.LOG
        if isinstance(event, ev.Finished):
            self.step, self.end_reason, self.ended_at = event.step, event.reason, at
            self.state = {"target": "finished", "disk_full": "failed"}.get(event.reason, event.reason)
            if self.state not in ENDED_STATES:
                self.state = "stopped"
            self.disk_full = self._disk_full_alert = self._anomaly_alert = None
            if event.reason == "disk_full":
                self.note(f"run ended at step {event.step}: the disk is full and nothing broken was written; "
                          "free space, then resume the run", "error", at)
            else:
                self.note(f"run ended at step {event.step} ({event.reason})", at=at)
            return Changed.STATUS | Changed.CHECKPOINTS | Changed.LOG
        if isinstance(event, ev.Failed):
            self.state, self.error, self.ended_at = "failed", event.error, at
            self._anomaly_alert = None
            self.note(f"training failed at step {event.step}: {event.error}", "error", at)
            return Changed.STATUS | Changed.LOG
        from tui_trainer.engine.rundir.journal_records import JournalLine

        if isinstance(event, JournalLine):  # a note or the job's output, from the run's journal
            self.note(event.text, event.level, event.time, event.source)
            return Changed.LOG
        if isinstance(event, CurveLoaded):
            if self.elapsed_at is not None and not self._steps_timed:
                # A whole curve at once carries no training time: until a step does, wall time
                # since the run began (a finished run attached later), not the start's figure.
                self.elapsed_at = None
            self.metric = event.metric
            self.train.load(event.steps, event.losses)
            self.val.load(event.val_steps, event.val_losses)
            if len(self.train):
                self.step = max(self.step, int(self.train.steps[-1]))
            if event.note:
                self.note(event.note, at=at)
            return Changed.STATUS | Changed.CHART | (Changed.LOG if event.note else Changed.NOTHING)
        from tui_trainer.session.run_follower import LastSteps

        if isinstance(event, LastSteps):
            if self.recent or self.lrs:
                return Changed.NOTHING  # newer steps are shown already
            for step in event.steps:
                self._numbers(step)
            return Changed.STATUS
        if isinstance(event, JobOutput):
            if event.dropped:
                self.note(f"... {event.dropped} earlier lines not shown", at=at, source="job")
            for line_at, text, level in event.lines:
                self.note(text, level, line_at, source="job")
            return Changed.LOG
        if isinstance(event, Launched):
            for line in event.notes:
                self.note(line, at=at)
            return Changed.LOG
        if isinstance(event, LaunchFailed):
            self.state, self.error, self.worker_done, self.ended_at = "failed", event.error, True, at
            self.note(f"could not start: {event.error}", "error", at)
            return Changed.STATUS | Changed.LOG
        if isinstance(event, RunEnded):
            self.worker_done = True
            if self.ended_at is None:
                self.ended_at = at
            for line in event.notes:
                self.note(line, "warning", at)
            if event.error:
                self.state, self.error = "failed", event.error
                self.note(f"training stopped with an error: {event.error}", "error", at)
            elif self.state not in ENDED_STATES:
                self.state = {"target": "finished"}.get(event.reason, "stopped")
            return Changed.STATUS | Changed.CHECKPOINTS | Changed.LOG
        return Changed.NOTHING

    def _step(self, event: ev.StepCompleted, at: float) -> None:
        self.step, self.epoch, self.target = event.step, event.epoch, event.target
        self.steps_per_sec = event.steps_per_sec
        self._numbers(event)
        if event.elapsed is not None:
            self._steps_timed = True
            if self.elapsed_at is not None:
                self.step_interval = max(0.0, at - self.elapsed_at)
            self.elapsed, self.elapsed_at = event.elapsed, at
        self.train.append(event.step, event.loss)

    def _numbers(self, event: ev.StepCompleted) -> None:
        """The step's numbers beside the loss, and their sparklines."""
        self.samples_per_sec, self.tokens_per_sec = event.samples_per_sec, event.tokens_per_sec
        self.lrs = event.lrs or (event.lr,)
        self.grad_norm, self.scalars = event.grad_norm, event.scalars
        if event.grad_norm is not None:
            self._remember(GRAD_NORM, event.grad_norm)
        for name, value in event.scalars.items():
            self._remember(name, value)

    def _remember(self, name: str, value: float) -> None:
        recent = self.recent.get(name)
        if recent is None:
            recent = self.recent[name] = deque(maxlen=SPARK_POINTS)
        recent.append(value)
