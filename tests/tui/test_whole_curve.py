"""The chart shows the whole run from step 1, whichever dashboard opens it: across resumes and roll-backs."""

from __future__ import annotations

from tui_pilot import TINY, driving, run_async, wait_for

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.tui.app import make_app
from tui_trainer.tui.attach_app import make_attach_app


def _train(run_dir, to: int, resume_from=None) -> None:
    if resume_from is None:
        trainer = launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=10, keep_last=0),
                                   settings=RunSettings(max_iters=to, eval_every=10))
    else:
        trainer = launch.resume_run(resume_from, max_iters=to)
    assert trainer.run().reason == "target"


def test_a_resumed_run_shows_its_curve_from_step_1_with_its_val_points(tmp_path):
    run_dir = tmp_path / "run"
    _train(run_dir, 30)
    app = make_app(lambda **kw: launch.resume_run(run_dir, max_iters=60, **kw))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", timeout=60, what="the resumed run to end")

    run_async(scenario)
    assert list(app.model.train.steps) == list(range(1, 61))
    assert list(app.model.val.steps) == [10, 20, 30, 40, 50, 60]


def test_attaching_after_a_roll_back_shows_one_continuous_curve(tmp_path):
    run_dir = tmp_path / "run"
    _train(run_dir, 40)
    _train(run_dir, 50, resume_from=run_dir / "step_00000020.pt")  # steps 21-40 superseded, then 21-50 again
    app = make_attach_app(run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.model.train) == 50, what="the whole curve")

    run_async(scenario)
    assert list(app.model.train.steps) == list(range(1, 51))
    assert list(app.model.val.steps) == [10, 20, 30, 40, 50]
    assert app.model.step == 50
