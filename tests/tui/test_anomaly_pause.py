"""A NaN under the dashboard: the run pauses, a modal offers roll back (saying how many batches it
skips), continue or stop, and rolling back ends with finite weights."""

from __future__ import annotations

import torch
from textual.widgets import Button, Label
from tui_pilot import driving, run_async, screen_up, wait_for

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.loop.anomaly import AnomalyGuard
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.tui.app import make_app
from tui_trainer.tui.screens.anomaly_modal import AnomalyScreen


def nan_launch(run_dir):
    def launch_fn(**kwargs):
        trainer = launch.start_run(run_dir, job="tests.anomaly_jobs:anomaly_job",
                                   job_options={"size": "tiny", "device": "cpu", "nan_at": 14},
                                   policy=CheckpointPolicy(every_steps=5), settings=RunSettings(max_iters=20), **kwargs)
        trainer.anomaly_guard = AnomalyGuard(on_anomaly="pause")  # what a dashboard's trainer gets
        return trainer

    return launch_fn


def test_a_nan_pauses_and_the_modal_rolls_back(tmp_path):
    app = make_app(nan_launch(tmp_path / "run"))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: screen_up(app, AnomalyScreen), what="the anomaly modal")
            shown = "\n".join(str(label.render()) for label in app.screen.query(Label))
            assert "ANOMALY at step 14: non-finite loss" in shown
            assert "load step_00000010.pt" in shown and "skip the 4 batches" in shown
            assert [str(b.label) for b in app.screen.query(Button)] == ["Roll back (b)", "Continue (c)", "Stop (s)"]
            assert app.runner.trainer.step == 14 and app.model.state == "paused"
            await pilot.press("b")
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
            trainer = app.runner.trainer
            assert trainer.step == 20
            assert all(bool(torch.isfinite(p).all()) for p in trainer.job.model.parameters())
            assert any("rolled back from step 14 to step_00000010.pt" in line.text for line in app.model.log)

    run_async(scenario)
    assert (tmp_path / "run" / "step_00000020.pt").exists()


def test_continue_and_stop_from_the_modal(tmp_path):
    app = make_app(nan_launch(tmp_path / "run"))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: screen_up(app, AnomalyScreen), what="the anomaly modal")
            await pilot.press("s")
            await wait_for(pilot, lambda: app.runner.done.is_set(), what="the run to stop")
            assert app.runner.trainer.step == 14

    run_async(scenario)
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*.pt")) == ["step_00000005.pt", "step_00000010.pt"]
