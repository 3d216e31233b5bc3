"""The attached dashboard's `r` modal previews the LR plan and sends a re-warm through the control file (Pilot)."""

from __future__ import annotations

import threading

import pytest
import torch
from textual.widgets import Checkbox, Input
from tui_pilot import driving, run_async, screen_up, wait_for

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.lr_preview import TAKEOVER
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunSettings
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.screens.target_modal import TargetScreen

TAKEN_OVER = "taken over from OneCycleLR; all 2 param groups keep their ratios"


class PausedAtStart:
    """A OneCycleLR run (to step 40) trained on a thread as a detached trainer would, paused before its first step."""

    def __init__(self, run_dir) -> None:
        torch.set_num_threads(1)
        control = TrainingControl()
        control.pause()
        self.run_dir = run_dir
        self.trainer = launch.start_run(run_dir, job="tests.lr_jobs:one_cycle", control=control,
                                        policy=CheckpointPolicy(keep_last=0), settings=RunSettings(max_iters=40))
        self.result = None
        self.thread = threading.Thread(target=self._run, name="detached", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.trainer.run()

    def lrs(self) -> dict[int, float]:
        return {r["step"]: r["lr"] for r in read_history(self.run_dir / HISTORY_FILE) if "loss" in r}

    def stop(self) -> None:
        self.trainer.control.stop()
        self.thread.join(30)


@pytest.fixture
def paused_run(tmp_path):
    run = PausedAtStart(tmp_path / "run")
    yield run
    run.stop()


def plan(app) -> str:
    return str(app.screen.query_one("#lr-plan").render())


def test_r_previews_the_plan_sends_a_re_warm_and_the_trainer_follows_it(paused_run, monkeypatch):
    app = make_attach_app(paused_run.run_dir)
    spawned: list[list[str]] = []

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "paused" and app.control.lr_facts() is not None,
                           what="the paused run and the trainer's LR facts")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the target modal")
            assert plan(app) == "LR schedule unchanged: LR 4.0e-03 now"
            app.screen.query_one("#target-input", Input).value = "60"
            await wait_for(pilot, lambda: "step 60" in plan(app), what="the plan for 60")
            assert plan(app) == f"LR continues from 4.0e-03 and decays (cosine) to 4.0e-07 at step 60, {TAKEN_OVER}"

            app.screen.query_one("#rewarm-on", Checkbox).value = True
            await wait_for(pilot, lambda: "warms up" in plan(app), what="the default re-warm")
            assert plan(app) == ("LR warms up from 4.0e-03 to 5.0e-02 by step 3, then decays (cosine) to 4.0e-07 "
                                 f"at step 60, {TAKEN_OVER}")
            app.screen.query_one("#rewarm-fraction", Input).value = "0.01"
            await wait_for(pilot, lambda: "not above" in plan(app), what="the refusal, in place")
            assert app.screen.query_one("#lr-plan").has_class("-refused")
            await pilot.click("#target-ok")
            assert isinstance(app.screen, TargetScreen), "a refused re-warm keeps the modal open"

            app.screen.query_one("#rewarm-fraction", Input).value = "0.5"
            app.screen.query_one("#rewarm-steps", Input).value = "10"
            await wait_for(pilot, lambda: "by step 10" in plan(app), what="the chosen re-warm")
            assert plan(app) == ("LR warms up from 4.0e-03 to 5.0e-02 by step 10, then decays (cosine) to 4.0e-07 "
                                 f"at step 60, {TAKEN_OVER}")
            await pilot.click("#target-ok")
            await wait_for(pilot, lambda: app.model.target == 60, what="the trainer to take the new target")
            assert any("re-warm to 0.5 of the peak over 10 steps" in line.text for line in app.model.log)
            await wait_for(pilot, lambda: app.control.lr_facts().kind == TAKEOVER
                           and app.control.lr_facts().target == 60, what="the facts refreshed after the target")

            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "finished" and app.model.step == 60,
                           what="the run to end at its new target")

            # Ended: `r` continues it with a new trainer, and the modal still previews and re-warms.
            monkeypatch.setattr(app.runner, "spawn", lambda args: spawned.append(args))
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the modal on the ended run")
            app.screen.query_one("#target-input", Input).value = "100"
            app.screen.query_one("#rewarm-on", Checkbox).value = True
            app.screen.query_one("#rewarm-fraction", Input).value = "0.9"
            app.screen.query_one("#rewarm-steps", Input).value = "10"
            await wait_for(pilot, lambda: "by step 70" in plan(app), what="the re-warm from the end")
            assert plan(app).startswith("LR warms up from 4.0e-07 to 9.0e-02 by step 70, then decays (cosine)")
            await pilot.click("#target-ok")
            await wait_for(pilot, lambda: bool(spawned), what="the new trainer's arguments")
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    assert spawned == [["resume", str(paused_run.run_dir), "--max-iters", "100", "--rewarm", "0.9:10", "--headless"]]

    lrs = paused_run.lrs()  # the trainer's LR in the history: up to 0.05 by step 10, then down to the floor at 60
    assert sorted(lrs) == list(range(1, 61))
    assert lrs[10] == pytest.approx(0.05)
    assert lrs[5] == pytest.approx(0.004 + (0.05 - 0.004) * 5 / 10)
    assert all(lrs[s] < lrs[s + 1] for s in range(1, 10))
    assert all(lrs[s] > lrs[s + 1] for s in range(10, 59))
    assert lrs[60] == pytest.approx(4e-7)
