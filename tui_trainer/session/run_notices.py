"""The events worth telling someone who is not looking: a run that ended, failed or waits for room.

`NoticeWatcher` sees every event of a run and turns the few that matter into a `Notice`, with
the run's last numbers. The webhook (`session.webhook`), the dashboard's bell and desktop
notification and a headless run's console all say the same thing from it.

A new event plugs in with `NOTICE_KINDS`: its class and a function that says its kind and
words, or None when an instance is not worth a notice (`DiskFull` below, `Finished`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_trainer.engine.loop import events as ev

# The kinds a notice has, its `event` field in the webhook's JSON.
FINISHED, STOPPED, INTERRUPTED, FAILED = "finished", "stopped", "interrupted", "failed"
DISK_FULL, DISK_FULL_PAUSED, ANOMALY = "disk_full", "disk_full_paused", "anomaly"


@dataclass(frozen=True)
class Notice:
    kind: str
    step: int
    text: str  # one line, said the same by every channel
    run_dir: str = ""
    run_id: str = ""
    job: str = ""
    target: int | None = None
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = 0.0

    @property
    def title(self) -> str:
        return f"tui-trainer: {Path(self.run_dir).name or 'run'} {self.kind.replace('_', ' ')}"


Describe = Callable[[Any], "tuple[str, str] | None"]


def _finished(event: ev.Finished) -> tuple[str, str]:
    kind = {"target": FINISHED, "stopped": STOPPED, "interrupted": INTERRUPTED, "disk_full": DISK_FULL,
            "anomaly": ANOMALY}.get(event.reason, STOPPED)
    words = {FINISHED: "finished", STOPPED: "stopped", INTERRUPTED: "was interrupted (a checkpoint was saved)",
             DISK_FULL: "ended: the disk is full", ANOMALY: "stopped on an anomaly"}[kind]
    return kind, f"{words} at step {event.step}"


def _failed(event: ev.Failed) -> tuple[str, str]:
    return FAILED, f"failed at step {event.step}: {event.error}"


def _disk_full(event: ev.DiskFull) -> tuple[str, str]:
    return DISK_FULL_PAUSED, f"paused at step {event.step}: the disk is full ({event.name} did not fit); make room"


def _anomaly(event: ev.AnomalyFound) -> tuple[str, str] | None:
    # A run that stops on it says so with its Finished; one rolled back or let go on needs no one.
    if event.action != "pause":
        return None
    return ANOMALY, f"paused on an anomaly at step {event.step} ({event.detail}); roll back, go on or stop"


NOTICE_KINDS: dict[type, Describe] = {ev.Finished: _finished, ev.Failed: _failed, ev.DiskFull: _disk_full,
                                      ev.AnomalyFound: _anomaly}


class NoticeWatcher:
    """Follows a run's events; `see(event)` returns the notice an event makes, if any. Not thread-safe."""

    def __init__(self) -> None:
        self._started: ev.Started | None = None
        self._target: int | None = None
        self._metrics: dict[str, float] = {}

    def see(self, event: Any) -> Notice | None:
        if isinstance(event, ev.Started):
            self._started, self._target = event, event.target
        elif isinstance(event, ev.TargetChanged):
            self._target = event.new_target
        elif isinstance(event, ev.StepCompleted):
            self._target = event.target
            self._metrics.update({"loss": event.loss, "lr": event.lr, **event.scalars})
            if event.grad_norm is not None:
                self._metrics["grad_norm"] = event.grad_norm
        elif isinstance(event, ev.Evaluated):
            self._metrics.update(event.metrics)
        describe = NOTICE_KINDS.get(type(event))
        said = describe(event) if describe is not None else None
        if said is None:
            return None
        kind, words = said
        started = self._started
        name = Path(started.run_dir).name if started else "the run"
        metrics = {k: v for k, v in self._metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "lr")
        return Notice(
            kind=kind, step=int(getattr(event, "step", 0)), text=f"{name} {words}" + (f"; {shown}" if shown else ""),
            run_dir=started.run_dir if started else "", run_id=started.run_id if started else "",
            job=started.job if started else "", target=self._target, reason=str(getattr(event, "reason", "")),
            metrics=metrics, time=getattr(event, "time", 0.0),
        )
