"""The dashboard driven with Pilot over tiny demo runs: paint, fill, keys and modals."""

from __future__ import annotations

from textual.widgets import Input, Label
from tui_pilot import driving, run_async, screen_up, wait_for

from tui_trainer.engine.rundir.layout import store_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.screens.quit_modal import QuitScreen
from tui_trainer.tui.screens.target_modal import TargetScreen
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.loss_chart import LossChart


def _checkpoints(run_dir):
    return store_for(run_dir).list()


def test_paints_loading_first_then_chart_and_table_fill(tiny_launch):
    launch_fn = tiny_launch(every_steps=20, keep_last=3, gated=True)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            # The trainer is not built yet (the launch is held): the screen is already up.
            assert app.model.state == "loading"
            assert str(app.query_one("#run-state", Label).render()) == "LOADING"
            launch_fn.gate.set()
            await wait_for(pilot, lambda: app.model.state == "running", what="the run to start")
            await wait_for(pilot, lambda: len(app.checkpoints) >= 2, what="checkpoints in the table")
            await wait_for(pilot, lambda: app.query_one(LossChart).redraws > 0, what="a chart redraw")
            assert len(app.model.train) > 0
            assert len(app.model.val) > 0  # an evaluation runs before each checkpoint
            assert app.query_one(CheckpointTable).row_count == len(app.checkpoints)
            assert "RUNNING" == str(app.query_one("#run-state", Label).render())

    run_async(scenario)


def test_p_pauses_and_resumes_and_s_saves_exactly_one(tiny_launch):
    launch_fn = tiny_launch()  # no periodic saves: every checkpoint comes from `s`
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 10, what="some steps")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="the pause")
            paused_at = app.runner.trainer.step
            await pilot.pause(0.8)
            assert app.runner.trainer.step == paused_at
            assert app.model.step == paused_at
            assert "PAUSED" == str(app.query_one("#run-state", Label).render())

            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.step > paused_at + 5, what="steps after resuming")
            assert app.model.state == "running"

            assert _checkpoints(launch_fn.run_dir) == []
            await pilot.press("s")
            await wait_for(pilot, lambda: len(_checkpoints(launch_fn.run_dir)) == 1, what="the saved checkpoint")
            await wait_for(pilot, lambda: len(app.checkpoints) == 1, what="the table row")
            await pilot.pause(0.5)
            saved = _checkpoints(launch_fn.run_dir)
            assert len(saved) == 1 and saved[0].meta.kind == "manual"

    run_async(scenario)


def test_r_rejects_bad_input_sets_a_new_target_and_continues_a_finished_run(tiny_launch):
    launch_fn = tiny_launch(max_iters=400)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5, what="some steps")
            await pilot.press("p")  # keep the step well below 600 while the modal is up
            await wait_for(pilot, lambda: app.model.state == "paused", what="the pause")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the target modal")
            field = app.screen.query_one(Input)
            assert field.value == "400"  # defaults to the current target

            await pilot.press("a", "b", "c", "enter")  # typing replaces the selected default
            assert isinstance(app.screen, TargetScreen), "invalid input must keep the modal open"
            error = app.screen.query_one("#target-error", Label)
            assert error.display and "not a whole number" in str(error.render())

            field.value = ""
            await pilot.press("6", "0", "0", "enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, TargetScreen), what="the modal to close")
            await wait_for(pilot, lambda: app.model.target == 600, what="the new target")

            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "finished", timeout=40, what="the run to finish")
            assert app.model.step == 600
            assert app.runner.result.step == 600

            # After the run has ended, r continues it from its final checkpoint.
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the target modal")
            app.screen.query_one(Input).value = "650"
            await pilot.press("enter")
            # 50 steps can start and end within one drain tick: wait for the end state only.
            await wait_for(pilot, lambda: app.model.state == "finished" and app.model.step == 650, timeout=40,
                           what="the continued run to finish at 650")
            assert app.runner.result.step == 650

    run_async(scenario)


def test_q_while_training_asks_and_save_and_quit_saves(tiny_launch):
    launch_fn = tiny_launch()
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5, what="some steps")
            await pilot.press("q")
            await wait_for(pilot, lambda: screen_up(app, QuitScreen), what="the quit modal")
            await pilot.press("escape")
            assert not isinstance(app.screen, QuitScreen)
            assert app.is_running and app.model.training

            await pilot.press("q")
            await wait_for(pilot, lambda: screen_up(app, QuitScreen), what="the quit modal")
            await pilot.press("s")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    saved = _checkpoints(launch_fn.run_dir)
    assert [c.meta.kind for c in saved] == ["interrupted"]
    assert saved[0].meta.step == app.runner.result.step


def test_ctrl_c_saves_and_quits_like_a_headless_run(tiny_launch):
    launch_fn = tiny_launch()
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 5, what="some steps")
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    saved = _checkpoints(launch_fn.run_dir)
    assert [c.meta.kind for c in saved] == ["interrupted"]
    assert app.runner.result.reason == "interrupted"


def test_quit_without_saving_keeps_the_latest_periodic_checkpoint(tiny_launch):
    launch_fn = tiny_launch(every_steps=20)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 1, what="a periodic checkpoint")
            await pilot.press("q")
            await wait_for(pilot, lambda: screen_up(app, QuitScreen), what="the quit modal")
            assert "newest checkpoint" in app.screen.kept
            await pilot.press("d")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    kinds = {c.meta.kind for c in _checkpoints(launch_fn.run_dir)}
    assert kinds == {"periodic"}
    assert app.runner.result.reason == "stopped"


def test_80x24_monochrome_renders_and_toggles_without_errors(tiny_launch, monkeypatch):
    # NO_COLOR once crashed textual-plot inside Textual's monochrome filter.
    monkeypatch.setenv("NO_COLOR", "1")
    launch_fn = tiny_launch(max_iters=60, every_steps=20, eval_every=10)
    app = make_app(launch_fn)
    assert app.no_color

    async def scenario():
        async with driving(app, size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
            chart = app.query_one(LossChart)
            await pilot.press("l")
            assert chart.log_scale
            await pilot.press("m")
            assert chart.smoothing
            await pilot.pause(0.3)
            assert "log" in str(chart.query_one("#chart-caption").render()).split()  # "log scale" where room allows
            assert chart.redraws >= 3  # each toggle redraws at once, not at the next tick
            await pilot.press("l", "m")
            assert not chart.log_scale and not chart.smoothing
            # After the run, q quits at once: nothing is left to lose.
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)


def test_a_launch_error_is_shown_not_raised(tmp_path):
    from tui_trainer.engine.errors import RunDirError

    def launch_fn(**kwargs):
        raise RunDirError(f"{tmp_path} already holds a run; continue it with `tui-trainer resume`")

    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "failed", what="the failure")
            assert "FAILED" == str(app.query_one("#run-state", Label).render())
            await pilot.press("p")  # nothing to pause: a warning, not a crash
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    assert "already holds a run" in (app.model.error or "")
