"""The dashboard's control for a run trained by another process: commands go to `control.json`.

It has TrainingControl's command methods, so the dashboard's keys work unchanged; each sends
one command through `ControlClient`. `stop` only ends the watching: the run goes on.
It also keeps what the `r` modal previews the LR plan from: the facts the trainer last published
in its ack (kept once it has ended, for training on), and the newest LR the history reported.
No Textual here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from tui_trainer.engine.errors import TrainerError
from tui_trainer.engine.loop.lr_preview import LrFacts
from tui_trainer.engine.loop.rewarm import Rewarm
from tui_trainer.engine.rundir.commands import (
    INTERRUPT,
    KEEP_LAST,
    PAUSE,
    RESUME,
    ROLL_BACK,
    SAVE_NOW,
    STOP,
    TARGET,
    Ack,
    Command,
    ControlClient,
)


class WatchControl:
    """Commands from the UI thread; the follower thread reports the ack and the run's pause state."""

    def __init__(self, run_dir: str | os.PathLike[str] | None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.client = ControlClient(run_dir) if run_dir is not None else None
        self.on_error = on_error or (lambda message: None)
        self.on_sent: Callable[[], None] = lambda: None  # the follower looks sooner for the trainer's answer
        self.ack: Ack | None = None  # the listening trainer, as the follower last saw it
        self._lock = threading.Lock()
        self._paused = False
        self._stop_reason: str | None = None
        self._sent: list[Command] = []
        self._lr_facts: LrFacts | None = None  # as the trainer last published them
        self._lr_trainer: str | None = None  # the one that did
        self._latest_lr: tuple[int, float] | None = None  # (step, group 0's LR) as the history last said

    def set_run_dir(self, run_dir: str | os.PathLike[str]) -> None:
        """The run dir, once a trainer started in the background has said which it is."""
        self.client = ControlClient(run_dir)

    # --- TrainingControl's commands ---------------------------------------------------------------

    def pause(self) -> None:
        if self._send(PAUSE):
            self._paused = True

    def resume(self) -> None:
        if self._send(RESUME):
            self._paused = False

    def toggle_pause(self) -> None:
        if self._paused:
            self.resume()
        else:
            self.pause()

    def save_now(self) -> None:
        self._send(SAVE_NOW)

    def set_target(self, max_iters: int, rewarm: Rewarm | None = None) -> None:
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"iteration target must be a positive integer, got {max_iters!r}")
        self._send(TARGET, max_iters, rewarm)

    def set_keep_last(self, keep_last: int) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValueError(f"keep-last must be an integer >= 0, got {keep_last!r}")
        self._send(KEEP_LAST, keep_last)

    def roll_back(self) -> None:
        """Paused on an anomaly: ask the trainer to go back to its last healthy checkpoint."""
        if self._send(ROLL_BACK):
            self._paused = False

    def end_run(self, save: bool) -> bool:
        """Ask the trainer to stop: saving a checkpoint first (`save`), or not. True if sent."""
        return self._send(INTERRUPT if save else STOP)

    def stop(self, reason: str = "stopped") -> None:
        """Stop watching. Never sent to the trainer: leaving a dashboard leaves the run alone."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    # --- from the follower ------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self.ack is not None

    def run_paused(self, paused: bool) -> None:
        """The run's own state changed (paused by another dashboard, or a new trainer)."""
        self._paused = paused

    def new_ack(self, ack: Ack | None) -> list[Command]:
        """Record the trainer's ack; return the commands of ours it has now applied."""
        with self._lock:
            if ack is None or (self.ack is not None and ack.trainer != self.ack.trainer):
                self._sent.clear()  # that trainer is gone; it will never apply them
            self.ack = ack
            if ack is None:
                return []
            if ack.lr is not None:
                if self._lr_facts is not None and ack.trainer != self._lr_trainer:
                    self._latest_lr = None  # a new trainer (a roll-back): the old one's LR is no guide
                self._lr_facts, self._lr_trainer = ack.lr, ack.trainer
            done = [c for c in self._sent if c.seq <= ack.applied]
            self._sent = [c for c in self._sent if c.seq > ack.applied]
            return done

    def saw_lr(self, step: int, lr: float) -> None:
        """The history reported group 0's LR after `step` (from the follower's thread)."""
        self._latest_lr = (step, lr)

    def lr_facts(self) -> LrFacts | None:
        """What the LR plan of a new target starts from: the trainer's facts, at the newest LR known."""
        facts, latest = self._lr_facts, self._latest_lr
        if facts is None or latest is None or latest[0] <= facts.step:
            return facts
        return facts.at(*latest)

    def _send(self, op: str, value: int | None = None, rewarm: Rewarm | None = None) -> bool:
        if self.client is None:
            self.on_error("the run is still starting; try again in a moment")
            return False
        try:
            command = self.client.send(op, value, rewarm)
        except (TrainerError, OSError) as exc:
            self.on_error(" ".join(str(exc).split()))
            return False
        with self._lock:
            self._sent.append(command)
        self.on_sent()
        return True
