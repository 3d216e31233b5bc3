"""The answer to a key (PAUSED after `p`) is drawn as soon as the run reports it, not at the UI's next tick.

The dashboard drains what the run reported on a timer; after a key, the follower looks at the
run every 20 ms and, once the trainer's answer is in, has the UI drain at once. Here the drain
timer is set to an hour, so only that wake-up can show the answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual.widgets import Label
from tui_pilot import TINY, driving, run_async

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.session import run_follower, watch_runner
from tui_trainer.session.runner import EventBuffer
from tui_trainer.session.watch_control import WatchControl
from tui_trainer.tui import app as dashboard
from tui_trainer.tui.attach_app import make_attach_app


def _stopped_run(run_dir: Path) -> None:
    launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=5),
                     settings=RunSettings(max_iters=10)).run()


def test_a_reported_pause_is_drawn_when_the_runner_wakes_the_ui_not_at_its_next_tick(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _stopped_run(run_dir)
    monkeypatch.setattr(dashboard, "DRAIN_INTERVAL_S", 3600.0)
    app = make_attach_app(run_dir)

    def state() -> str:
        return str(app.query_one("#run-state", Label).render())

    async def scenario():
        async with driving(app) as pilot:
            deadline = time.monotonic() + 20
            while not len(app.model.train) and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert len(app.model.train), "the run's curve never arrived"
            await pilot.pause(0.5)  # past the fast first-data drains
            shown = state()
            assert shown != "PAUSED"

            app.runner.buffer.put(ev.Paused(step=app.model.step))
            await pilot.pause(0.3)
            assert state() == shown  # reported, but nobody woke the UI: the hour-long tick is not due

            threading.Thread(target=app.runner.buffer.nudge).start()  # as the follower's thread does
            for _ in range(40):
                await pilot.pause(0.05)
                if state() == "PAUSED":
                    break
            assert state() == "PAUSED"

    run_async(scenario)


class _Follower:
    """Stands in for RunFollower: each poll reports what the test queued."""

    queued: list[object] = []

    def __init__(self, run_dir, put, control=None, clock=time.monotonic) -> None:
        self.put = put

    def poll(self) -> None:
        while self.queued:
            self.put(self.queued.pop(0))

    def note(self, text: str, level: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_runner_wakes_the_ui_for_a_commands_answer_and_leaves_routine_steps_to_the_tick(tmp_path, monkeypatch):
    monkeypatch.setattr(run_follower, "RunFollower", _Follower)
    runner = watch_runner.WatchRunner(tmp_path, WatchControl(tmp_path), interval=0.01)
    woken: list[float] = []
    runner.buffer.wake_ui = lambda: woken.append(time.monotonic())
    step = ev.StepCompleted(step=3, epoch=0, loss=1.0, lr=1e-3, steps_per_sec=1.0, samples_per_sec=1.0, target=10)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        _Follower.queued.append(ev.Paused(step=3))
        time.sleep(0.2)
        assert not woken  # no key was pressed: the UI's tick shows it
        runner.hurry()  # a key sent a command
        _Follower.queued.append(step)
        time.sleep(0.2)
        assert not woken  # a step is routine even then
        _Follower.queued.append(ev.Paused(step=3))
        deadline = time.monotonic() + 5
        while not woken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(woken) == 1
        events = runner.buffer.drain()
        assert [type(e).__name__ for e in events] == ["Paused", "StepCompleted", "Paused"]
    finally:
        runner.stop_and_wait(timeout=5)
        thread.join(5)


def test_a_buffer_without_a_ui_takes_a_nudge_quietly():
    buffer = EventBuffer()
    buffer.nudge()
    assert buffer.drain() == []
