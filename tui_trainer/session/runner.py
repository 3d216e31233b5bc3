"""The bridge between the training thread and a viewer (the dashboard's UI thread).

The trainer calls `on_event` on its own thread for every logged step. Handing each event to
Textual (`call_from_thread` blocks the trainer until the UI has run; `post_message` per step
floods the queue) would tie training speed to redraw speed, so events go into an
`EventBuffer` under a lock and the UI drains it on a timer, `DRAIN_INTERVAL_S`, applying a
whole batch at once. Nothing per-step crosses threads any other way.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.session.job_output import capture_job_output

# 10 Hz: what a key asked for (a pause the trainer has taken) shows within a tenth of a second. A
# tick that brings nothing costs nearly nothing; the counters it would move are repainted at most
# every `COUNTERS_INTERVAL_S` (each repaint is bytes over SSH, and a fast loop's speed in process).
DRAIN_INTERVAL_S = 0.1
COUNTERS_INTERVAL_S = 0.5

LaunchFn = Callable[..., Any]  # launch_fn(on_event=..., control=..., when_disk_full=...) -> Trainer

# A job printing every step must not flood the UI: only the newest lines of a tick are kept.
MAX_OUTPUT_LINES = 200


@dataclass(frozen=True)
class Launched:
    """The trainer is built (torch imported, job loaded); what launch decided and why."""

    notes: tuple[str, ...] = ()
    time: float = field(kw_only=True, default=0.0)


@dataclass(frozen=True)
class LaunchFailed:
    """Building the trainer failed: a busy run dir, a bad job, nothing to resume from."""

    error: str
    time: float = field(kw_only=True, default=0.0)


@dataclass(frozen=True)
class RunEnded:
    """`trainer.run()` returned (`reason` as in RunResult) or raised (`error`)."""

    reason: str
    notes: tuple[str, ...] = ()
    error: str | None = None
    time: float = field(kw_only=True, default=0.0)


@dataclass(frozen=True)
class CurveLoaded:
    """The run's whole loss curve so far, read from its history at once (not replayed step by step).

    Arrays of steps and values (numpy or array('d')); `note` says what reading it took, if
    anything worth saying (an older run whose history index had to be built).
    """

    steps: Any
    losses: Any
    val_steps: Any
    val_losses: Any
    note: str | None = None
    metric: str = "val_loss"  # the run's monitored metric, which val_steps and val_losses hold
    time: float = field(kw_only=True, default=0.0)


@dataclass(frozen=True)
class JobOutput:
    """Lines the job's code printed, logged or warned since the last drain: (time, text, level)."""

    lines: tuple[tuple[float, str, str], ...]
    dropped: int = 0  # older lines beyond MAX_OUTPUT_LINES, not shown


class EventBuffer:
    """Events from the training thread, taken in batches by the UI thread. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Any] = []
        # Set by the UI: asks it to drain now rather than at its next tick, from any thread and
        # without waiting. Used for the answer to a key the user just pressed.
        self.wake_ui: Callable[[], None] | None = None
        self._output: deque[tuple[float, str, str]] = deque(maxlen=MAX_OUTPUT_LINES)
        self._output_seen = 0

    def put(self, event: Any) -> None:
        with self._lock:
            self._events.append(event)

    def put_output(self, text: str, level: str) -> None:
        with self._lock:
            self._output.append((time.time(), text, level))
            self._output_seen += 1

    def nudge(self) -> None:
        """Events the user is waiting for are in: have the UI drain them now."""
        wake = self.wake_ui
        if wake is not None:
            wake()

    def drain(self) -> list[Any]:
        """The events since the last drain, then one `JobOutput` if the job wrote anything."""
        with self._lock:
            events, self._events = self._events, []
            if self._output:
                events.append(JobOutput(tuple(self._output), self._output_seen - len(self._output)))
                self._output.clear()
                self._output_seen = 0
        return events


class TrainingRunner:
    """Builds and runs one trainer on the calling thread (a Textual thread worker).

    `launch_fn` is called there too, so importing torch and loading the job never delay the
    first paint. Commands go through `control`, which is safe to use from the UI thread.
    """

    def __init__(self, launch_fn: LaunchFn, control: TrainingControl | None = None) -> None:
        self.launch_fn = launch_fn
        self.control = control or TrainingControl()
        self.buffer = EventBuffer()
        self.trainer: Any = None
        self.result: Any = None
        self.launch_error: BaseException | None = None
        self.started = threading.Event()
        self.done = threading.Event()

    @property
    def active(self) -> bool:
        """True from the moment the worker starts until it has returned."""
        return self.started.is_set() and not self.done.is_set()

    def run(self) -> None:
        """Launch and train to the end; every outcome reaches the buffer as an event.

        What the job prints, logs or warns on this thread reaches the buffer too.
        """
        from tui_trainer.session.job_output import JournalOutput

        self.started.set()
        self._journal_lines = JournalOutput()  # for viewers in other processes, as a headless run's
        try:
            with capture_job_output(self._job_line):
                self._run()
        finally:
            self._journal_lines.close()
            self.done.set()  # after the capture is undone, so its last line is in the buffer

    def _job_line(self, text: str, level: str) -> None:
        self.buffer.put_output(text, level)
        self._journal_lines.put(text, level)

    def _run(self) -> None:
        from tui_trainer.engine.loop.events import DISK_FULL_PAUSE

        if self.control.stop_reason is not None:  # quit before the worker even started
            self.buffer.put(RunEnded(self.control.stop_reason, time=time.time()))
            return
        try:
            # A full disk pauses the run, so the user can make room without losing its progress.
            self.trainer = self.launch_fn(on_event=self.buffer.put, control=self.control,
                                          when_disk_full=DISK_FULL_PAUSE)
        except Exception as exc:  # shown in the dashboard, not a traceback over it
            self.launch_error = exc
            self.buffer.put(LaunchFailed(_describe(exc), time=time.time()))
            return
        self._journal_lines.send_to(getattr(self.trainer, "journal", None))
        info = getattr(self.trainer, "info", None)
        monitor = info.policy.monitor if info is not None else "val_loss"
        # A resumed run: its curve so far; a run monitoring another metric than val_loss: which one.
        if getattr(self.trainer, "step", 0) or monitor != "val_loss":
            from tui_trainer.engine.rundir.history_index import read_curves

            curves = read_curves(self.trainer.run_dir, monitor)
            self.buffer.put(CurveLoaded(curves.steps, curves.losses, curves.val_steps, curves.val_losses,
                                        curves.note, curves.metric, time=time.time()))
        self.buffer.put(Launched(tuple(self.trainer.notes), time=time.time()))
        try:
            self.result = self.trainer.run()
        except Exception as exc:
            self.buffer.put(RunEnded("failed", error=_describe(exc), time=time.time()))
            return
        self.buffer.put(RunEnded(self.result.reason, tuple(self.result.notes), time=time.time()))

    def stop_and_wait(self, reason: str = "interrupted", timeout: float | None = None) -> bool:
        """Ask the trainer to stop (`interrupted` saves a checkpoint first); wait for it."""
        self.control.stop(reason)  # also keeps a worker that has not started yet from training
        if not self.started.is_set():
            return True
        return self.done.wait(timeout)


def _describe(exc: BaseException) -> str:
    from tui_trainer.engine.errors import TrainerError

    # A TrainerError already says what to do next; anything else needs its type to be read.
    text = str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
