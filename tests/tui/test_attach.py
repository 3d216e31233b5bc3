"""The attached dashboard: steering a run trained by another process through its control file, and leaving it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from textual.widgets import Input, Label
from tui_pilot import TINY, driving, run_async, screen_up, wait_for

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunSettings, store_for
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.screens.quit_modal import QuitScreen
from tui_trainer.tui.screens.target_modal import TargetScreen


class Headless:
    """A tiny run trained on a thread, as `tui-trainer train --headless` would in another process."""

    def __init__(self, run_dir: Path, every_steps: int = 0) -> None:
        self.run_dir = run_dir
        self.trainer = launch.start_run(run_dir, job_options=TINY,
                                        policy=CheckpointPolicy(every_steps=every_steps, keep_last=0),
                                        settings=RunSettings(max_iters=100_000))
        self.result = None
        self.thread = threading.Thread(target=self._run, name="headless", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.trainer.run()

    def history_steps(self) -> int:
        return sum(1 for r in read_history(self.run_dir / HISTORY_FILE) if "loss" in r)

    def checkpoints(self) -> dict[int, str]:
        return {c.meta.step: c.meta.kind for c in store_for(self.run_dir).list()}

    def stop(self) -> None:
        self.trainer.control.stop()
        self.thread.join(30)


@pytest.fixture
def headless(tmp_path):
    run = Headless(tmp_path / "run")
    yield run
    run.stop()


def _state_word(app) -> str:
    return str(app.query_one("#run-state", Label).render())


def test_attach_pauses_resumes_saves_and_retargets_a_headless_run(headless):
    app = make_attach_app(headless.run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "running" and app.model.step >= 10,
                           what="the history to reach the dashboard")
            assert app.model.device == "cpu" and app.control.listening

            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="the trainer to pause")
            paused_at = headless.trainer.step
            lines = headless.history_steps()
            await pilot.pause(0.8)
            assert headless.trainer.step == paused_at and headless.history_steps() == lines  # history stopped
            assert app.model.step == paused_at and _state_word(app) == "PAUSED"
            assert any(line.text == "the trainer applied: pause" for line in app.model.log)

            await pilot.press("s")
            await wait_for(pilot, lambda: headless.checkpoints() == {paused_at: "manual"}, what="the save")
            await wait_for(pilot, lambda: len(app.checkpoints) == 1, what="the table row")

            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the target modal")
            app.screen.query_one(Input).value = str(paused_at + 30)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.model.target == paused_at + 30, what="the new target")

            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to end at its new target")
            assert app.model.step == paused_at + 30
            assert headless.result.step == paused_at + 30 and headless.result.reason == "target"
            assert headless.checkpoints() == {paused_at: "manual", paused_at + 30: "final"}
            await wait_for(pilot, lambda: len(app.checkpoints) == 2, what="the final checkpoint in the table")

            await pilot.press("p")  # nobody listens any more: a warning, not a crash
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)


def test_q_asks_and_detach_leaves_the_run_training(headless):
    app = make_attach_app(headless.run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5 and app.control.listening, what="some steps")
            await pilot.press("q")
            await wait_for(pilot, lambda: screen_up(app, QuitScreen), what="the question")
            assert app.screen.focused.id == "detach"  # the default, first button
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    step = headless.trainer.step
    threading.Event().wait(0.3)
    assert headless.thread.is_alive() and headless.trainer.step > step
    assert headless.trainer.control.stop_reason is None and not headless.trainer.control.paused
    assert app.exit_status == 0
    said = "\n".join(app.exit_lines)
    assert "training goes on in the background" in said and f"tui-trainer attach {headless.run_dir}" in said


@pytest.mark.parametrize("keys, reason, kind, status", [
    (("q", "s"), "interrupted", "interrupted", 0),
    (("ctrl+c",), "interrupted", "interrupted", 130),
    (("q", "d"), "stopped", None, 0),
], ids=["save-and-stop", "ctrl+c", "stop-without-saving"])
def test_stopping_from_an_attached_dashboard_reaches_the_trainer(headless, keys, reason, kind, status):
    app = make_attach_app(headless.run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5 and app.control.listening, what="some steps")
            for key in keys:
                await pilot.press(key)
                await pilot.pause(0.1)
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit once the trainer stopped")

    run_async(scenario)
    headless.thread.join(30)
    assert headless.result is not None and headless.result.reason == reason
    saved = headless.checkpoints()
    assert (saved == {headless.result.step: kind}) if kind else saved == {}
    assert app.exit_status == status
    said = "\n".join(app.exit_lines)
    assert f"tui-trainer resume {headless.run_dir}" in said
    assert ("step_" in said) == (kind is not None)


def _finished_run(run_dir: Path, to: int) -> None:
    trainer = launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=10, keep_last=0),
                               settings=RunSettings(max_iters=to))
    assert trainer.run().reason == "target"


def _stop_background_trainer(run_dir: Path) -> None:
    import os
    import signal

    from tui_trainer.engine.rundir.lock import lock_holder

    holder = lock_holder(run_dir)
    if holder is not None and holder.pid and holder.pid != os.getpid():
        os.kill(holder.pid, signal.SIGKILL)


def test_r_on_a_finished_run_continues_it_in_the_background(tmp_path):
    run_dir = tmp_path / "run"
    _finished_run(run_dir, 20)
    app = make_attach_app(run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished" and app.model.step == 20, what="the run")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the target modal")
            app.screen.query_one(Input).value = "40"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.model.state == "finished" and app.model.step == 40, timeout=90,
                           what="the run continued to 40 by a trainer in the background")
            assert list(app.model.train.steps) == list(range(1, 41))
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    try:
        run_async(scenario)
    finally:
        _stop_background_trainer(run_dir)
    assert max(c.meta.step for c in store_for(run_dir).list()) == 40


def test_rolling_back_a_live_run_stops_its_trainer_and_starts_one_from_the_checkpoint(tmp_path):
    from tui_trainer.tui.screens.rollback_modal import RollbackScreen

    run = Headless(tmp_path / "run", every_steps=10)
    app = make_attach_app(run.run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 2 and app.control.listening, timeout=30,
                           what="two checkpoints")
            table = app.query_one("CheckpointTable")
            names = [row.name for row in app.checkpoints]
            oldest = min(names)
            table.move_cursor(row=names.index(oldest))
            await pilot.press("b")
            await wait_for(pilot, lambda: screen_up(app, RollbackScreen), what="the roll-back question")
            field = app.screen.query_one(Input)
            field.value = "100000"
            field.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: run.result is not None, timeout=30, what="the old trainer to stop")
            assert run.result.reason == "stopped"
            await wait_for(pilot, lambda: app.model.state == "running" and app.control.listening
                           and app.control.ack.pid != os.getpid(), timeout=90, what="the new trainer")
            step = int(oldest[5:13])
            await wait_for(pilot, lambda: app.model.step > step, what="training from the checkpoint on")
            await pilot.press("q")
            await wait_for(pilot, lambda: screen_up(app, QuitScreen), what="the question")
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    try:
        run_async(scenario)
    finally:
        _stop_background_trainer(run.run_dir)
    assert (run.run_dir / "superseded").is_dir()


def test_two_viewers_on_one_run_see_a_command_from_either_applied_once(headless):
    from tui_trainer.engine.rundir.journal import read_journal
    from tui_trainer.session.run_follower import RunFollower
    from tui_trainer.tui.run_model import RunModel

    app = make_attach_app(headless.run_dir)
    other = RunModel()  # a second dashboard, in another terminal, reads the same files
    follower = RunFollower(headless.run_dir, lambda event: other.apply([event]))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5 and app.control.listening, what="some steps")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="this dashboard to show the pause")
            follower.poll()
            await wait_for(pilot, lambda: (follower.poll(), other.state == "paused")[1],
                           what="the other dashboard to show it")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "running", what="resumed here")
            await wait_for(pilot, lambda: (follower.poll(), other.state == "running")[1], what="resumed there")
            await pilot.press("q")
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    follower.close()
    kinds = [type(e).__name__ for e in read_journal(headless.run_dir)]
    assert kinds.count("Paused") == 1 and kinds.count("Resumed") == 1  # each command applied once
