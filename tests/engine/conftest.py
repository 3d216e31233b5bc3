"""Fixtures for the engine tests: new tiny demo runs and resumes, with their events recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_forkserver import Forkserver
from tiny_runs import TINY, TinyRun, child_env

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.rundir.layout import RunSettings

# Two cores shared with other test processes: one intra-op thread keeps a tiny step at a few ms
# instead of letting OpenMP threads spin against each other.
torch.set_num_threads(1)


def _recorder(events: list[ev.Event], also: Callable[[ev.Event], None] | None) -> Callable[[ev.Event], None]:
    def record(event: ev.Event) -> None:
        events.append(event)
        if also is not None:
            also(event)

    return record


@pytest.fixture
def tiny_run(tmp_path: Path) -> Iterator[Callable[..., TinyRun]]:
    """A factory of new tiny demo runs under tmp_path; keyword arguments set policy and settings.

    Runs still training on a thread when the test ends are stopped.
    """
    made: list[TinyRun] = []

    def make(
        name: str = "run",
        *,
        job: Any = DEMO_JOB,
        max_iters: int = 30,
        every_steps: int = 0,
        keep_last: int = 0,
        eval_every: int = 0,
        log_every: int = 1,
        eval_before_save: bool = True,
        save_final: bool = True,
        job_options: dict[str, Any] | None = None,
        on_event: Callable[[ev.Event], None] | None = None,
        control: TrainingControl | None = None,
        when_disk_full: str = ev.DISK_FULL_STOP,
    ) -> TinyRun:
        events: list[ev.Event] = []
        trainer = launch.start_run(
            tmp_path / name,
            job=job,
            job_options={**TINY, **(job_options or {})},
            policy=CheckpointPolicy(
                every_steps=every_steps, keep_last=keep_last, eval_before_save=eval_before_save, save_final=save_final
            ),
            settings=RunSettings(max_iters=max_iters, eval_every=eval_every, log_every=log_every),
            on_event=_recorder(events, on_event),
            control=control,
            when_disk_full=when_disk_full,
        )
        made.append(TinyRun(trainer, events))
        return made[-1]

    yield make
    for run in made:
        run.stop_thread()


@pytest.fixture
def resume() -> Callable[..., TinyRun]:
    """`launch.resume_run` with its events recorded."""

    def make(path: Path, on_event: Callable[[ev.Event], None] | None = None, **kwargs: Any) -> TinyRun:
        events: list[ev.Event] = []
        return TinyRun(launch.resume_run(path, on_event=_recorder(events, on_event), **kwargs), events)

    return make


@pytest.fixture(scope="session")
def forkserver_session() -> Iterator[Forkserver]:
    server = Forkserver(child_env())
    yield server
    server.close()


@pytest.fixture
def forkserver(forkserver_session: Forkserver) -> Iterator[Forkserver]:
    """Runs `tui-trainer` commands as real processes without paying torch's import each time."""
    yield forkserver_session
    forkserver_session.kill_child()  # one a failed test left running
