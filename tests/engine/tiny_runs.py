"""Tiny demo runs for the engine tests: a trainer with its events, waiting on it, reading what it left."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.trainer import RunResult, Trainer
from tui_trainer.engine.rundir.history import TIMING_KEYS, read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, read_run

TINY = {"size": "tiny", "device": "cpu"}
WAIT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TinyRun:
    """A trainer, the events it reported, and helpers to look at what it left on disk."""

    trainer: Trainer
    events: list[ev.Event] = field(default_factory=list)
    result: RunResult | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    @property
    def run_dir(self) -> Path:
        return self.trainer.run_dir

    @property
    def control(self) -> TrainingControl:
        return self.trainer.control

    def run(self) -> RunResult:
        self.result = self.trainer.run()
        return self.result

    def start_thread(self) -> None:
        """Run the trainer on another thread, as the dashboard does."""

        def target() -> None:
            try:
                self.result = self.trainer.run()
            except BaseException as exc:  # re-raised by join()
                self._error = exc

        self._thread = threading.Thread(target=target, name="trainer", daemon=True)
        self._thread.start()

    def join(self, timeout: float = WAIT_S) -> RunResult:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the trainer did not finish in time"
        if self._error is not None:
            raise self._error
        assert self.result is not None
        return self.result

    def stop_thread(self) -> None:
        """Stop a trainer left running by a failed test, so it does not outlive it."""
        if self._thread is not None and self._thread.is_alive():
            self.trainer.control.stop()
            self._thread.join(WAIT_S)

    def of(self, kind: type) -> list[Any]:
        return [e for e in list(self.events) if isinstance(e, kind)]

    def wait_for(self, kind: type, where: Callable[[Any], bool] = lambda e: True, timeout: float = WAIT_S) -> Any:
        """The first event of `kind` matching `where`, waiting for it while the trainer runs."""

        def first() -> Any:
            return next((e for e in self.of(kind) if where(e)), None)

        wait_until(lambda: first() is not None, timeout)
        return first()

    def last_step(self) -> int:
        steps = self.of(ev.StepCompleted)
        return steps[-1].step if steps else 0

    def checkpoints(self) -> dict[int, str]:
        """step -> kind of this run's checkpoints on disk."""
        return checkpoint_kinds(self.run_dir)

    def history(self) -> list[dict[str, Any]]:
        return read_history(self.run_dir / HISTORY_FILE)


class Gate:
    """Holds the training thread at one event until the test thread has had its say.

    Pass `gate.on_event` as a run's `on_event`; `gate.reached` waits for the event, `release()`
    lets training go on. Commands sent in between are applied right after that event's step.
    """

    def __init__(self, where: Callable[[ev.Event], bool]) -> None:
        self.where = where
        self.event: ev.Event | None = None
        self._reached = threading.Event()
        self._released = threading.Event()

    def on_event(self, event: ev.Event) -> None:
        if self.event is None and self.where(event):
            self.event = event
            self._reached.set()
            self._released.wait(WAIT_S)

    def reached(self) -> ev.Event:
        assert self._reached.wait(WAIT_S), "the trainer never reached the gate"
        assert self.event is not None
        return self.event

    def release(self) -> None:
        self._released.set()


def at_step(step: int, kind: type = ev.StepCompleted) -> Callable[[ev.Event], bool]:
    return lambda event: isinstance(event, kind) and event.step == step


def stop_at(step: int, control: TrainingControl, reason: str = "stopped") -> Callable[[ev.Event], None]:
    """An on_event callback that asks `control` to stop once `step` is done."""

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.StepCompleted) and event.step == step:
            control.stop(reason)

    return on_event


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def checkpoint_kinds(run_dir: Path) -> dict[int, str]:
    info = read_run(run_dir)
    store = CheckpointStore(run_dir, info.run_id)
    return {m.step: m.kind for m in store.scan() if m.run_id == info.run_id}


def step_records(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in history if "loss" in r]


def without_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def child_env() -> dict[str, str]:
    """Environment for a child Python that imports this checkout, with one torch thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable
