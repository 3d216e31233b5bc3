"""A run trained by another process pauses on a NaN: the attached dashboard asks what to do, as the
in-process one does, and the answer reaches the trainer through the run's control file."""

from __future__ import annotations

import threading
import time

from textual.widgets import Button, Label
from tui_pilot import driving, run_async, screen_up, wait_for

from tests.tui.test_anomaly_pause import nan_launch
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.screens.anomaly_modal import AnomalyScreen


class AnomalousHeadless:
    """A tiny run whose 14th step is NaN, trained on a thread as a detached trainer would be."""

    def __init__(self, run_dir) -> None:
        self.trainer = nan_launch(run_dir)()
        self.thread = threading.Thread(target=self.trainer.run, name="headless", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.trainer.control.stop()
        self.thread.join(30)


def test_an_anomaly_pause_of_a_followed_run_shows_the_modal_and_continue_reaches_the_trainer(tmp_path):
    run = AnomalousHeadless(tmp_path / "run")
    app = make_attach_app(tmp_path / "run")

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: screen_up(app, AnomalyScreen), what="the anomaly modal")
            shown = "\n".join(str(label.render()) for label in app.screen.query(Label))
            assert "ANOMALY at step 14: non-finite loss" in shown and "load step_00000010.pt" in shown
            assert [str(b.label) for b in app.screen.query(Button)] == ["Roll back (b)", "Continue (c)", "Stop (s)"]
            assert run.trainer.step == 14
            await wait_for(pilot, lambda: app.control.listening, what="the trainer's ack")
            await pilot.press("c")
            await wait_for(pilot, lambda: run.trainer.step == 20, what="the trainer to go on")
            assert not isinstance(app.screen, AnomalyScreen)

    try:
        run_async(scenario)
    finally:
        run.stop()


def test_an_anomaly_answered_before_attaching_asks_nothing(tmp_path):
    run = AnomalousHeadless(tmp_path / "run")
    deadline = time.monotonic() + 20
    while not (run.trainer.step == 14 and run.trainer.control.paused):
        assert time.monotonic() < deadline, "the trainer did not pause on the NaN"
        time.sleep(0.05)
    run.trainer.control.resume()  # answered from another dashboard; the run then trains to its end
    run.thread.join(30)
    app = make_attach_app(tmp_path / "run")

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the finished run")
            await pilot.pause(0.3)
            assert not isinstance(app.screen, AnomalyScreen)
            assert any("ANOMALY" in line.text.upper() for line in app.model.log)  # told in the log, not asked

    run_async(scenario)
