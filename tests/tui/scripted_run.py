"""A dashboard that always looks the same: a scripted run, frozen clocks, fixed disk and system numbers.

`ScriptedLaunch` is a `launch_fn` whose trainer reports a fixed sequence of engine events and then
waits to be stopped, over a run dir whose checkpoint sidecars are written with fixed sizes and
times. `freeze_dashboard` pins every clock and probe the widgets read.
"""

from __future__ import annotations

import math
import time
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tui_trainer.engine.atomic import atomic_write_json
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, checkpoint_name, sidecar_path
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.rundir.layout import RunInfo, RunSettings, write_run
from tui_trainer.session import runner
from tui_trainer.session.system_stats import ProcessStats, SystemSample, SystemSampler
from tui_trainer.tui import run_model, time_format

RUN_NAME = "demo-20261125-081144"
RUN_ID = "20261125-081144-c89c03"
NOW = datetime(2026, 11, 25, 8, 13, 20, tzinfo=timezone.utc)
STARTED = NOW.timestamp() - 96.0
TARGET = 600
LAST_STEP = 319
STEPS_PER_SEC = 6.3
CHECKPOINT_STEPS = (100, 200, 300)
CHECKPOINT_BYTES = 1_400_000
FREE_BYTES = 81_300_000_000
SYSTEM = SystemSample(ProcessStats(pid=22753, cpu_percent=111.0, rss_bytes=393_600_000,
                                   mem_total_bytes=25_300_000_000))


def train_loss(step: int) -> float:
    """Falls fast, then slowly, with a little deterministic noise."""
    return 2.1 + 2.2 * math.exp(-step / 60) + 0.05 * math.sin(step * 1.7)


def grad_norm(step: int) -> float:
    return 0.4 + 1.6 * math.exp(-step / 40) + 0.1 * math.sin(step * 0.9)


def val_loss(step: int) -> float:
    return 2.1 + 2.2 * math.exp(-step / 60) + 0.02


def make_scripted_run_dir(parent: Path) -> Path:
    """run.json and three checkpoints (files of a fixed size, sidecars with fixed times)."""
    run_dir = parent / RUN_NAME
    run_dir.mkdir(parents=True)
    write_run(run_dir, RunInfo(run_id=RUN_ID, job=DEMO_JOB, policy=CheckpointPolicy(every_steps=100, keep_last=3),
                               settings=RunSettings(max_iters=TARGET), created=_iso(STARTED), state="running"))
    for step in CHECKPOINT_STEPS:
        name = checkpoint_name(step)
        with open(run_dir / name, "wb") as f:
            f.truncate(CHECKPOINT_BYTES)
        meta = CheckpointMeta(name=name, step=step, epoch=0, train_loss=train_loss(step),
                              metrics={"val_loss": val_loss(step)}, metrics_step=step, size_bytes=CHECKPOINT_BYTES,
                              created=_iso(STARTED + step / STEPS_PER_SEC), run_id=RUN_ID)
        atomic_write_json(sidecar_path(run_dir / name), meta.to_json())
    return run_dir


def scripted_events(run_dir: Path) -> list[ev.Event]:
    """What a trainer reports from step 0 to `LAST_STEP`, timed as if at `STEPS_PER_SEC`."""
    def at(step: float) -> float:
        return STARTED + step / STEPS_PER_SEC

    events: list[ev.Event] = [ev.Started(str(run_dir), RUN_ID, DEMO_JOB, 0, TARGET, "cpu", elapsed=0.0, time=at(0))]
    for step in range(1, LAST_STEP + 1):
        events.append(ev.StepCompleted(step, 0, train_loss(step), 1e-3, STEPS_PER_SEC, STEPS_PER_SEC * 32, TARGET,
                                       step / STEPS_PER_SEC, (1e-3,), grad_norm(step), time=at(step)))
        if step % 25 == 0:
            events.append(ev.Evaluated(step, {"val_loss": val_loss(step)}, time=at(step)))
        if step in CHECKPOINT_STEPS:
            events.append(ev.CheckpointSaved(str(run_dir / checkpoint_name(step)), step, "periodic", CHECKPOINT_BYTES,
                                             0.02, time=at(step)))
    return events


class ScriptedTrainer:
    def __init__(self, events: list[ev.Event], on_event: Any, control: TrainingControl) -> None:
        self.events, self.on_event, self.control = events, on_event, control
        self.notes: list[str] = []

    def run(self) -> SimpleNamespace:
        for event in self.events:
            self.on_event(event)
        while self.control.stop_reason is None:
            time.sleep(0.05)
        return SimpleNamespace(reason=self.control.stop_reason, notes=())


class ScriptedLaunch:
    """A `launch_fn` for `make_app` whose run is the same every time."""

    def __init__(self, parent: Path) -> None:
        self.run_dir = make_scripted_run_dir(parent)
        self.events = scripted_events(self.run_dir)

    def __call__(self, *, on_event: Any, control: TrainingControl, **_: Any) -> ScriptedTrainer:
        return ScriptedTrainer(self.events, on_event, control)


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW if tz is not None else NOW.replace(tzinfo=None)


def freeze_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the clocks (elapsed, log stamps, checkpoint ages), free disk and the system panel."""
    frozen_time = SimpleNamespace(time=NOW.timestamp)
    monkeypatch.setattr(run_model, "time", frozen_time)
    monkeypatch.setattr(runner, "time", frozen_time)
    monkeypatch.setattr(time_format, "datetime", _FrozenDatetime)
    usage = namedtuple("usage", "total used free")
    from tui_trainer.engine.checkpoints import disk_forecast

    monkeypatch.setattr(disk_forecast, "shutil", SimpleNamespace(disk_usage=lambda _: usage(0, 0, FREE_BYTES)))
    monkeypatch.setattr(SystemSampler, "sample", lambda self, pid, note=None: SYSTEM)
    monkeypatch.setenv("TZ", "UTC")  # the log's HH:MM:SS; the caller calls time.tzset() again after the undo
    time.tzset()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
