"""How the trainer saves: a checkpoint of the state now, amended when one exists at the step, in the
foreground or handed to the background saver, and the pause for room when a save does not fit.

A part of `Trainer` (its base class), kept apart so that each file reads as one concern; it uses
the trainer's step, job, control, checkpointer, history and records.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_trainer.engine.checkpoints.meta import MANUAL, CheckpointMeta, checkpoint_name
from tui_trainer.engine.errors import NotEnoughDiskSpace, WriteDidNotFit, is_disk_full
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import training_state
from tui_trainer.engine.loop.step_numbers import read_step_numbers

if TYPE_CHECKING:
    from tui_trainer.engine.loop.trainer import Trainer

SAVE_SYNC, SAVE_BACKGROUND = "sync", "background"  # a save stalls the loop, or only its snapshot does


class Saving:
    """The trainer's saves; mixed into `Trainer`, never used alone."""

    # Under --strategy fsdp every rank saves its shard: `engine.loop.sharding.ShardedSaves`.
    sharded_saves: Any = None

    def _checkpoint(self: Trainer, kind: str, evaluate: bool | None = None) -> Path | None:
        """Save the current state as `kind`, evaluated first if asked. Idempotent per step."""
        if self.step == 0 or not self._state_healthy(kind):  # every rank: the check reads the mean over ranks
            return None
        if self.sharded_saves is not None:
            return self.sharded_saves.checkpoint(self, kind, evaluate)
        ranks = self.control.gather_rank_states(self.job)  # under DDP: each rank's position and RNG, to rank 0
        if ranks is None:
            return None  # not rank 0, which saves the one checkpoint
        if self.checkpoints.saver.in_flight is not None and not self._wait_for_save_in_flight():
            return None
        if evaluate is None:
            evaluate = self.policy.eval_before_save
        saved = self.checkpoints.saved_at(self.step)
        if saved is not None:
            return self._amend(saved, kind, evaluate)
        if evaluate:
            self._evaluate()
        fresh = self._metrics_step == self.step
        meta = CheckpointMeta(
            name=checkpoint_name(self.step),
            step=self.step,
            epoch=self.job.batches.epoch,
            kind=kind,
            train_loss=self._last_loss,
            metrics=dict(self._last_metrics) if fresh else {},
            metrics_step=self.step if fresh else None,
            run_id=self.info.run_id,
            healthy=True,  # `_state_healthy` said so, and an anomaly's update is never applied
        )
        self._rollbacks = 0  # a new healthy checkpoint: automatic roll-backs count afresh
        state = training_state.capture(
            self.job, meta, {"target": self.target, "job": self.info.job, "job_options": self.info.job_options,
                             training_state.HISTORY_KEY: self.history.summary_state(), **ranks}
        )
        self.history.sync()  # a checkpoint's history_end never points past what is on disk
        if self.save_mode == SAVE_BACKGROUND:
            self.checkpoints.begin_write(meta, state)
            return self.run_dir / meta.name
        return self.checkpoints.write(meta, state).path

    def _state_healthy(self: Trainer, kind: str) -> bool:
        """Whether the last step's loss and grad norm were finite; read here if that step did not log them.

        A save copies the whole state off the device anyway, so reading two numbers first costs no
        sync of its own. A checked step's update was applied only if it was sound.
        """
        result, self._unread = self._unread, None
        if result is None:
            return True
        numbers = read_step_numbers(result, self.control.mean_over_ranks)
        bad = [f"{name} {value}" for name, value in (("loss", numbers.loss), ("grad norm", numbers.grad_norm))
               if value is not None and not math.isfinite(value)]
        if bad and not (self.job.grad_scaler is not None and math.isfinite(numbers.loss)):
            self.notes.append(f"the {kind} checkpoint of step {self.step} was not saved: {', '.join(bad)} "
                              "(found at the save, the step was not logged)")
            return False
        return True

    def _save(self: Trainer, kind: str, evaluate: bool | None = None) -> Path | None:
        """`_checkpoint`, but when asked to pause on a full disk: wait for room, then retry.

        Returns None, having saved nothing, if the run is stopped while it waits; the caller's
        loop then ends on that stop.
        """
        while True:
            path, problem = None, None
            try:
                try:
                    path = self._checkpoint(kind, evaluate)
                except OSError as exc:  # a sidecar amended in place: the store leaves nothing torn
                    if not is_disk_full(exc):
                        raise
                    raise WriteDidNotFit(exc.filename or self.run_dir, exc) from None
            except NotEnoughDiskSpace as exc:
                problem = exc
            problem = self.control.agree_on_disk_full(problem)  # under DDP every rank stops or waits with rank 0
            if problem is None:
                return path
            if self.when_disk_full != ev.DISK_FULL_PAUSE or self.control.stop_reason is not None:
                raise problem
            if not self._wait_for_room(kind, problem, self.step):
                return None

    def _wait_for_room(self: Trainer, kind: str, exc: NotEnoughDiskSpace, step: int) -> bool:
        """Pause after the save of `step` did not fit; True once resumed (retry it), False once stopped."""
        self.control.pause()
        self._emit(
            ev.DiskFull(step, kind, checkpoint_name(step), exc.needed_bytes, exc.free_bytes,
                        exc.directory or str(self.run_dir), str(exc))
        )
        self.records.set_state("paused")
        self._hold_while_paused(save=False)  # a save-now while waiting: the retry is that save
        if self.control.stop_reason is not None:
            return False
        self.records.set_state("running")
        self._emit(ev.Resumed(self.step))
        return True

    def _wait_for_save_in_flight(self: Trainer) -> bool:
        """Before another save: let the background one finish. False if stopped while paused on its full disk."""
        saving = self.checkpoints.saver.in_flight
        # The save in flight of this very step (a final save on a periodic step) is amended, not followed.
        if saving is not None and not self._said_waiting and saving.name != checkpoint_name(self.step):
            self._said_waiting = True  # once a run: saves that outlast their interval would repeat it every save
            self.notes.append(f"waiting for the save of {saving.name.removesuffix('.pt')} to finish before the next one")
        return self._collect_save(wait=True)

    def _collect_save(self: Trainer, wait: bool = False) -> bool:
        """Report the background save once it is done (waiting for it if asked); a full disk as `_save` has it.

        False if the run was stopped while paused for room, the save given up.
        """
        saver = self.checkpoints.saver
        outcome = saver.take(wait)
        while outcome is not None:
            try:
                self.checkpoints.report(outcome)
                return True
            except NotEnoughDiskSpace as exc:
                if outcome.stored is not None or self.when_disk_full != ev.DISK_FULL_PAUSE \
                        or self.control.stop_reason is not None:
                    saver.discard()
                    raise
                if not self._wait_for_room(outcome.meta.kind, exc, outcome.meta.step):
                    saver.discard()
                    return False
                outcome = saver.retry()
        return True

    def _drain_saves(self: Trainer) -> None:
        """On a failure: let a background save finish, and report it if it landed."""
        with contextlib.suppress(Exception):
            outcome = self.checkpoints.saver.take(wait=True)
            if outcome is not None and outcome.error is None:
                self.checkpoints.report(outcome)

    def _amend(self: Trainer, meta: CheckpointMeta, kind: str, evaluate: bool) -> Path:
        """Let the checkpoint already saved at this step count as `kind`, evaluated if asked.

        A save-now right after a periodic save must not leave a checkpoint that rotation deletes
        later, and a final save must carry the final evaluation even on a periodic step.
        """
        became_manual = kind == MANUAL and meta.kind != MANUAL
        if became_manual:
            meta.kind = MANUAL
        metrics = self._evaluate() if evaluate and meta.metrics_step != self.step else {}
        if metrics:
            meta.metrics, meta.metrics_step = dict(metrics), self.step
        if became_manual or metrics:
            return self.checkpoints.amend(meta, announce=became_manual)
        return self.run_dir / meta.name
