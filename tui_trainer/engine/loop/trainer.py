"""The training loop: steps, evaluations, checkpoints and retention, steered by a TrainingControl.

The run dir's lock and its journal (`engine/rundir/journal.py`) are handed in by whoever launches the
run, which decides who owns them; without a journal nothing is journaled.

`Trainer.run()` runs on whichever thread calls it (the CLI's main thread, or the dashboard's
worker). Commands arrive through `trainer.control` from any thread and are applied between
steps; events leave through `on_event`, called on the training thread, so a UI must hand them
over to its own thread without blocking.

A full disk loses nothing, whichever write it refuses. A save that does not fit writes nothing;
a history record or `run.json` that does not fit is held in memory, with nothing torn on disk.
By default (`when_disk_full="stop"`, for headless runs) the run then ends with reason
`disk_full`; with `"pause"` (the dashboard, a detached trainer) the trainer reports `DiskFull`,
pauses with everything still in memory, and retries the write when resumed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_trainer.engine.checkpoints.checkpointer import Checkpointer
from tui_trainer.engine.checkpoints.meta import FINAL, INTERRUPTED, MANUAL, PERIODIC
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.errors import NotEnoughDiskSpace, WriteDidNotFit
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import lr_takeover
from tui_trainer.engine.loop.anomaly import AnomalyGuard, SpikeDetector
from tui_trainer.engine.loop.anomaly_response import AnomalyResponse
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.evaluation import evaluate_apart
from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.run_records import RunRecords, disk_full_note
from tui_trainer.engine.loop.saving import SAVE_BACKGROUND, SAVE_SYNC, Saving
from tui_trainer.engine.loop.step import StepResult, apply_update, backward_step, skip_update
from tui_trainer.engine.loop.step_numbers import StepNumbers, read_step_numbers
from tui_trainer.engine.loop.step_rate import StepRate
from tui_trainer.engine.loop.training_clock import EVALUATING, PAUSED, SAVING, TrainingClock
from tui_trainer.engine.rundir.commands import ControlFilePoller
from tui_trainer.engine.rundir.history_writer import HistoryWriter
from tui_trainer.engine.rundir.journal import JournalWriter
from tui_trainer.engine.rundir.layout import RunInfo, RunLock

EventCallback = Callable[[ev.Event], None]
PAUSE_POLL_S = 0.05  # a paused trainer looks for a resume this often (a key answered at once)


@dataclass
class RunResult:
    step: int
    target: int
    reason: str  # "target", "stopped", "interrupted", "disk_full", "failed", "anomaly"
    last_checkpoint: Path | None = None
    notes: list[str] = field(default_factory=list)


class Trainer(Saving, AnomalyResponse):
    """Trains `job` in `run_dir` from `step` up to the run's target, saving per the run's policy."""

    def __init__(
        self,
        job: Job,
        run_dir: Path,
        info: RunInfo,
        *,
        step: int = 0,
        target: int | None = None,
        on_event: EventCallback | None = None,
        control: TrainingControl | None = None,
        resumed_from: str | None = None,
        history: HistoryWriter,
        control_file: ControlFilePoller | None = None,
        lock: RunLock | None = None,
        journal: JournalWriter | None = None,
        when_disk_full: str = ev.DISK_FULL_STOP,
        save_mode: str = SAVE_SYNC,
        elapsed: float = 0.0,
    ) -> None:
        """The side channels (history, control file, lock, journal) are handed in, never built here:
        whoever launches the run decides which process owns them (`launch.side_channels`).
        `elapsed` is the training time the run already had (a resume's)."""
        if when_disk_full not in (ev.DISK_FULL_STOP, ev.DISK_FULL_PAUSE):
            raise ValueError(f"when_disk_full must be 'stop' or 'pause', got {when_disk_full!r}")
        if save_mode not in (SAVE_SYNC, SAVE_BACKGROUND):
            raise ValueError(f"save_mode must be 'sync' or 'background', got {save_mode!r}")
        self.when_disk_full = when_disk_full
        self.save_mode = save_mode
        self.job = job
        self.run_dir = Path(run_dir)
        self.info = info
        self.settings = info.settings
        self.step = step
        self.target = info.settings.max_iters
        self._requested_target = target
        self._requested_rewarm: lr_takeover.Rewarm | None = None
        self.control = control or TrainingControl()
        # Commands from dashboards in other processes arrive through the run dir, if it is ours to poll.
        self.control_file = control_file
        if control_file is not None:  # its ack tells those dashboards what the LR would do on a new target
            control_file.lr_facts = lambda: lr_takeover.lr_facts(self.job, self.step, self.target)
        self.on_event = on_event or (lambda event: None)
        self.resumed_from = resumed_from
        self.notes: list[str] = []
        self.checkpoints = Checkpointer(self.run_dir, info.run_id, info.policy, self._emit, self.notes)
        self.history = history
        self.notes.extend(self.history.notes)
        self._last_metrics: dict[str, float] = {}
        self._metrics_step: int | None = None
        self._last_loss: float | None = None
        self.clock = TrainingClock(elapsed)  # training time: pauses, evaluations and saves kept out
        self._rate = StepRate()
        self._lock = lock
        # Every event but step summaries, and the notes, for viewers in other processes.
        self.journal = journal
        self._notes_journaled = 0
        self._said_waiting = False
        self.records = RunRecords(self.run_dir, info, history)  # run.json and the history, on a full disk too
        # What a non-finite or spiking step leads to (`anomaly`); the CLI sets it from --on-anomaly.
        self.anomaly_guard = AnomalyGuard()
        self._spikes = SpikeDetector()
        self._unread: StepResult | None = None  # the last step, when its numbers were not read
        self._rollbacks = 0  # automatic roll-backs since the last healthy save

    @property
    def policy(self) -> CheckpointPolicy:
        return self.checkpoints.policy

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Train to the target or until stopped; always releases the run dir's lock."""
        try:
            return self._run()
        finally:
            self._close_side_channels()

    def rewarm_at_start(self, rewarm: lr_takeover.Rewarm) -> None:
        """Re-warm at the new target this trainer was built to go to (`resume --max-iters N --rewarm F`).

        RewarmRefused, with the run dir released and nothing trained, if that re-warm cannot be.
        """
        try:
            if self._requested_target is None or self._requested_target == self.target:
                raise lr_takeover.RewarmRefused("a re-warm comes with a new target: add --max-iters N")
            lr_takeover.preview_retarget(self.job, self.step, self.target, self._requested_target, rewarm)
        except lr_takeover.RewarmRefused:
            self.history.close()
            self._close_side_channels()
            raise
        self._requested_rewarm = rewarm

    def _close_side_channels(self) -> None:
        if self.control_file is not None:
            self.control_file.close()
        if self.journal is not None:
            self._journal_notes()
            self.journal.close()
        if self._lock is not None:
            self._lock.release()

    def _run(self) -> RunResult:
        job = self.job
        notes_before = len(self.notes)
        self._emit(
            ev.Started(
                str(self.run_dir), self.info.run_id, self.info.job, self.step, self.target,
                str(job.device), self.resumed_from, self.clock.elapsed,
            )
        )
        self.records.set_state("running")
        if self._requested_target is not None and self._requested_target != self.target:
            self.retarget(self._requested_target, self._requested_rewarm)
        reason = "target"
        self._watch_for_spikes()
        try:
            job.model.train()
            clock = self.clock
            self._rate.add(self.step, clock.elapsed)
            clock.start()
            while True:
                if self.records.unwritten is not None:
                    with clock.apart(PAUSED):
                        reason = self._wait_for_writes() or reason
                    if reason != "target":
                        break
                if self.checkpoints.saver.finished:
                    self._collect_save()
                if self.control_file is not None:
                    self.control_file.poll()
                if self.control.has_requests():
                    with clock.apart(PAUSED):  # a pause, or a save asked for
                        reason = self._apply_requests() or reason
                    if reason != "target":
                        break
                if self.step >= self.target:
                    break
                logged = (self.step + 1) % self.settings.log_every == 0 or self.step + 1 == self.target
                # A logged step's numbers are read before its update: the one sync it always had,
                # moved so that the anomaly guard can keep a bad step's update from the weights.
                result = backward_step(self.job, measure_grad_norm=logged)
                numbers = read_step_numbers(result, self.control.mean_over_ranks) if logged else None
                anomaly = None if numbers is None else self._anomaly_in(numbers)
                if anomaly is None:
                    apply_update(self.job)
                else:
                    skip_update(self.job)
                self._unread = None if logged else result
                self.step += 1
                if numbers is not None:
                    self._log_step(numbers)
                if anomaly is not None:
                    with clock.apart(PAUSED):
                        reason = self._on_anomaly(anomaly) or reason
                    if reason != "target":
                        break
                    continue  # nothing is evaluated or saved at the step of an anomaly
                if self.settings.eval_every and self.step % self.settings.eval_every == 0:
                    with clock.apart(EVALUATING):
                        self._scheduled_evaluation()
                if self.control.settle(self.checkpoints.periodic_due(self.step), self.step):  # ranks agree (DDP)
                    with clock.apart(SAVING):
                        self._save(PERIODIC)
        except NotEnoughDiskSpace as exc:
            reason = "disk_full"
            self.notes.append(disk_full_note(exc, self.step, self._last_saved_step(), self.run_dir))
        except BaseException as exc:
            self._drain_saves()
            self._emit(ev.Failed(self.step, f"{type(exc).__name__}: {exc}"))
            self.records.set_state("failed")
            self.history.close()
            raise
        try:
            if reason == "disk_full":
                pass  # nothing more is written: a save now would not fit, or would outrun its history
            elif reason == "target" and self.policy.save_final:
                if self._save(FINAL, evaluate=True) is None and self.control.stop_reason is not None:
                    reason = self.control.stop_reason  # stopped while paused on a full disk
            if reason == "interrupted":
                self._save(INTERRUPTED, evaluate=False)  # stopped: a full disk ends it, on every rank
            self._collect_save(wait=True)  # a background save is on disk, or has failed, before the run ends
        except NotEnoughDiskSpace as exc:
            reason = "disk_full"
            self.notes.append(disk_full_note(exc, self.step, self._last_saved_step(), self.run_dir))
        self.history.close()
        self.records.set_state({"target": "finished"}.get(reason, reason))
        if reason == "disk_full" and (note := self.records.end_state_fits(self._last_saved_step())):
            self.notes.append(note)
        self._emit(ev.Finished(self.step, reason))
        return RunResult(self.step, self.target, reason, self.checkpoints.last_path, self.notes[notes_before:])

    def _log_step(self, numbers: StepNumbers) -> None:
        # `numbers`: the one device sync of a logged step; under DDP the global batch's loss and scalars.
        elapsed = self.clock.lap()  # after the sync: the device's work is done and counted
        rate = self._rate.add(self.step, elapsed)
        self._last_loss = numbers.loss
        lrs = tuple(float(group["lr"]) for group in self.job.optimizer.param_groups)
        job = self.job
        samples = rate * job.batch_size * job.grad_accum_steps
        tokens = rate * job.tokens_per_batch * job.grad_accum_steps if job.tokens_per_batch else None
        more: dict[str, Any] = {"elapsed": round(elapsed, 3)}
        if numbers.grad_norm is not None:
            more["grad_norm"] = numbers.grad_norm
        more["samples_per_sec"] = float(f"{samples:.4g}")
        if tokens is not None:
            more["tokens_per_sec"] = float(f"{tokens:.4g}")
        if len(lrs) > 1:
            more["lrs"] = lrs
        self.history.log_step(self.step, job.batches.epoch, numbers.loss, lrs[0], time.time(), more | numbers.scalars)
        self._emit(
            ev.StepCompleted(
                self.step, job.batches.epoch, numbers.loss, lrs[0], rate, samples, self.target,
                elapsed, lrs, numbers.grad_norm, tokens, numbers.scalars,
            )
        )

    def current_lr(self) -> float:
        return float(self.job.optimizer.param_groups[0]["lr"])

    def _evaluate(self) -> dict[str, float]:
        """Run the job's evaluation without disturbing the training RNG streams."""
        if self.job.evaluate is None:
            return {}
        if self._metrics_step == self.step:
            return self._last_metrics
        began = time.perf_counter()
        metrics = evaluate_apart(self.job)
        self._last_metrics, self._metrics_step = metrics, self.step
        self.history.log_eval(self.step, self.job.batches.epoch, metrics, time.time())
        self._emit(ev.Evaluated(self.step, metrics, time.perf_counter() - began))
        return metrics

    def _scheduled_evaluation(self) -> None:
        """An evaluation on the run's schedule: the only kind that steps a metric-driven LR scheduler,
        so the LR never depends on how often someone saved."""
        problem = lr_takeover.step_on_metric(self.job.scheduler, self._evaluate(), self.policy.monitor)
        if problem is not None and problem not in self.notes:
            self.notes.append(problem)

    # --- commands -----------------------------------------------------------------------------

    def _apply_requests(self) -> str | None:
        """Apply pending commands; return a stop reason if the loop must end."""
        self._apply_settings()
        if self.control.paused and self.control.stop_reason is None:
            self._emit(ev.Paused(self.step))
            with contextlib.suppress(WriteDidNotFit):  # held, and retried before the next step
                self.history.sync()
            self.records.set_state("paused")
            self._hold_while_paused()
            self.records.set_state("running")
            self._emit(ev.Resumed(self.step))
        return self.control.stop_reason

    def _hold_while_paused(self, save: bool = True) -> None:
        """Block while paused, applying commands (from the control and its file) as they come."""
        # A stop that lands before a pause() must still end the wait: stop() wakes a paused
        # trainer, but a pause() right after it puts the wake-up back to sleep.
        while self.control.stop_reason is None and not self.control.wait_while_paused(PAUSE_POLL_S):
            if self.control_file is not None:
                self.control_file.poll()
            self._apply_settings(save)
        self._apply_settings(save)

    def _apply_settings(self, save: bool = True) -> None:
        new_target, new_keep_last, saves = self.control.take_requests()
        rewarm = self.control.take_rewarm()
        if new_target is not None and new_target != self.target:
            self.retarget(new_target, rewarm)
        if new_keep_last is not None and new_keep_last != self.policy.keep_last:
            self.info.policy = self.policy.with_overrides(keep_last=new_keep_last)
            self.records.write_info()
            self._emit(ev.PolicyChanged(new_keep_last))
            self.checkpoints.set_keep_last(new_keep_last)
        if saves and save:
            self._save(MANUAL, evaluate=True)

    def retarget(self, new_target: int, rewarm: lr_takeover.Rewarm | None = None) -> None:
        """Aim at `new_target`: the LR goes on from its value now to its floor there (or re-warms first)."""
        old = self.target
        try:
            note = lr_takeover.retarget_schedule(self.job, self.step, old, new_target, rewarm)
        except lr_takeover.RewarmRefused as exc:  # a dashboard previews it; a command from elsewhere may not
            note = f"{exc}; without re-warm: {lr_takeover.retarget_schedule(self.job, self.step, old, new_target)}"
        self.target = max(new_target, self.step)
        self.info.settings.max_iters = self.target
        self.records.write_info()
        self._emit(ev.TargetChanged(self.step, old, self.target, note))

    # --- a full disk at a write other than a save (see run_records) ----------------------------

    def _last_saved_step(self) -> int:
        return max((m.step for m in self.checkpoints.store.scan() if m.step <= self.step), default=0)

    def _wait_for_writes(self) -> str | None:
        """A history record or run.json did not fit: pause until it does, or end the run.

        Returns None once everything is written (training goes on), else the reason to stop:
        `disk_full` headless, or the stop asked for while paused.
        """
        while True:
            try:
                self.records.retry()
                return None
            except WriteDidNotFit as exc:
                problem = exc
            if self.when_disk_full != ev.DISK_FULL_PAUSE or self.control.stop_reason is not None:
                self.notes.append(disk_full_note(problem, self.step, self._last_saved_step(), self.run_dir))
                return "disk_full"
            self.control.pause()
            self._emit(ev.DiskFull(self.step, ev.DISK_FULL_WRITE, Path(problem.path).name, None,
                                   problem.free_bytes, problem.directory or str(self.run_dir), str(problem)))
            self.records.set_state("paused")
            self._hold_while_paused(save=False)
            if self.control.stop_reason is not None:
                return self.control.stop_reason
            self.records.set_state("running")
            self._emit(ev.Resumed(self.step))

    def _emit(self, event: ev.Event) -> None:
        object.__setattr__(event, "time", time.time())
        if self.journal is not None:
            self._journal_notes()  # what led up to the event, before it
            self.journal.record(event)
        self.on_event(event)

    def _journal_notes(self) -> None:
        assert self.journal is not None
        for note in self.notes[self._notes_journaled:]:
            self.journal.note(note)
        self._notes_journaled = len(self.notes)
