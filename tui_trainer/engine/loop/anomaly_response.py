"""What the trainer does about an anomaly: pause and ask, roll back, stop, or go on (`--on-anomaly`).

A part of `Trainer` (its base class), kept apart so that trainer.py reads as the loop; it uses the
trainer's step, job, control, history, records and notes. Which step is an anomaly is `anomaly`'s
business, how a roll-back is done `anomaly_rollback`'s.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from tui_trainer.engine.errors import WriteDidNotFit
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.anomaly import (
    ANOMALY_REASON,
    CONTINUE,
    PAUSE,
    ROLLBACK,
    STOP,
    Anomaly,
    SpikeDetector,
    find_anomaly,
)
from tui_trainer.engine.loop.anomaly_rollback import batches_to_skip, healthy_candidates, roll_back
from tui_trainer.engine.loop.step_numbers import StepNumbers
from tui_trainer.engine.words import counted

if TYPE_CHECKING:
    from tui_trainer.engine.loop.trainer import Trainer


class AnomalyResponse:
    """The trainer's answer to an anomaly; mixed into `Trainer`, never used alone."""

    def _watch_for_spikes(self: Trainer) -> None:
        """A fresh spike detector, as the guard set for this run says (the CLI sets it after construction)."""
        guard = self.anomaly_guard
        self._spikes = SpikeDetector(guard.spike_window, guard.spike_k, guard.spike_warmup)

    def _anomaly_in(self: Trainer, numbers: StepNumbers) -> Anomaly | None:
        """The anomaly of the step about to be counted, judged by its logged numbers; None if it is sound."""
        return find_anomaly(self.step + 1, numbers.loss, numbers.grad_norm, self._spikes,
                            self.job.grad_scaler is not None)

    def _on_anomaly(self: Trainer, anomaly: Anomaly) -> str | None:
        """Do what the guard says about `anomaly` (its update already dropped); a stop reason, or None to go on.

        Every rank found the same anomaly (its numbers are the mean over the ranks); what is done
        about it is rank 0's decision, on every rank, so none stops or rolls back alone.
        """
        action, healthy, skip, note = self.control.rank_zero_decides(lambda: self._response_to(anomaly))
        if note is not None:
            self.notes.append(note)
        self._emit(ev.AnomalyFound(anomaly.step, anomaly.kind, anomaly.detail, action, healthy, skip))
        if action == PAUSE:
            return self._pause_on(anomaly)
        if action == ROLLBACK:
            return self._roll_back_after(anomaly)
        if action == STOP:
            return self._stop_on(anomaly)
        self._record_anomaly(anomaly, CONTINUE)
        return None

    def _response_to(self: Trainer, anomaly: Anomaly) -> tuple[str, str | None, int, str | None]:
        """The action, the checkpoint a roll-back would load, the batches it would skip, and why a
        roll-back became a stop (or None)."""
        guard = self.anomaly_guard
        action, note = guard.on_anomaly, None
        healthy = healthy_candidates(self, anomaly.step)
        if action == ROLLBACK and self._rollbacks >= guard.max_rollbacks:
            note = (f"{counted(self._rollbacks, 'roll-back')} since the last healthy save, "
                    "the limit: this anomaly stops the run")
            action = STOP
        skip = batches_to_skip(self, healthy[0].step, anomaly.step) if healthy else 0
        return action, healthy[0].name if healthy else None, skip, note

    def _pause_on(self: Trainer, anomaly: Anomaly) -> str | None:
        """Wait for the user: a roll-back, a resume (go on) or a stop."""
        self.control.take_roll_back()  # one asked for before this anomaly is not an answer to it
        self.control.pause()
        self._emit(ev.Paused(self.step))
        with contextlib.suppress(WriteDidNotFit):
            self.history.sync()
        self.records.set_state("paused")
        self._hold_while_paused(save=False)  # nothing is saved at the step of an anomaly
        if self.control.take_roll_back() and self.control.stop_reason is None:
            reason = self._roll_back_after(anomaly)
            if reason is None:  # rolled back and training again: no longer paused, whoever is watching
                self._emit(ev.Resumed(self.step))
            return reason
        if self.control.stop_reason is not None:
            return self._stop_on(anomaly)
        self._record_anomaly(anomaly, CONTINUE)
        self.records.set_state("running")
        self._emit(ev.Resumed(self.step))
        return None

    def _roll_back_after(self: Trainer, anomaly: Anomaly) -> str | None:
        self._collect_save(wait=True)  # a save in flight is of a healthy step: it is listed first
        done = roll_back(self, anomaly.step)
        if done is None:
            self.notes.append("no healthy checkpoint of this run to roll back to")
            return self._stop_on(anomaly)
        self._rollbacks += 1
        self.notes.extend(done.notes)
        self._spikes.forget_after(done.step)
        self._metrics_step = None
        self._unread = None
        self._record_anomaly(anomaly, ROLLBACK, {"rolled_back_to": done.name, "skipped_batches": done.skipped_batches})
        self._emit(ev.RolledBack(done.step, anomaly.step, done.name, done.skipped_batches, done.superseded))
        self.records.set_state("running")
        return None

    def _stop_on(self: Trainer, anomaly: Anomaly) -> str:
        self._record_anomaly(anomaly, STOP)
        last = self._last_saved_step()
        self.notes.append(f"stopped on an anomaly at step {anomaly.step}: {anomaly.detail}; nothing new was saved"
                          + (f" (last healthy checkpoint: step {last})" if last else ""))
        return ANOMALY_REASON

    def _record_anomaly(self: Trainer, anomaly: Anomaly, action: str, more: dict[str, Any] | None = None) -> None:
        """The history's record of `anomaly` and what was done, at the step training is at now."""
        fields = {"anomaly": anomaly.kind, "bad_step": anomaly.step, "detail": anomaly.detail, "action": action}
        self.history.log_anomaly(self.step, self.job.batches.epoch, fields | (more or {}), time.time())
