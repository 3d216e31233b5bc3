"""What the dashboard shows beside the loss, and numbers a pause does not move (Pilot, tiny demo runs)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from tui_pilot import driving, run_async, shown_text, wait_for

from tui_trainer.tui.app import make_app
from tui_trainer.tui.widgets.checkpoint_table import COLUMNS, CheckpointTable
from tui_trainer.tui.widgets.train_scalars import TrainScalars, describe_scalars, sparkline


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_the_learning_rate_and_the_grad_norm_are_on_screen(tiny_launch, size):
    app = make_app(tiny_launch())

    async def scenario():
        async with driving(app, size) as pilot:
            await wait_for(pilot, lambda: "grad " in shown_text(app.query_one(TrainScalars)), what="the grad norm")
            shown = shown_text(app.query_one(TrainScalars))
            assert shown.startswith("lr ") and app.model.grad_norm is not None
            if size[0] >= 120:
                await wait_for(pilot, lambda: "tok/s" in shown_text(app.query_one(TrainScalars)), what="throughput")

    run_async(scenario)


def test_a_pause_stops_elapsed_and_a_save_asked_for_is_toasted_with_its_step(tiny_launch):
    launch_fn = tiny_launch()
    app = make_app(launch_fn)
    toasts = []
    notify = app.notify
    app.notify = lambda message, **kw: toasts.append(message) or notify(message, **kw)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 10, what="some steps")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="the pause")
            before = app.model.elapsed_seconds()
            await pilot.pause(1.5)
            assert app.model.elapsed_seconds() == before
            await pilot.press("s")
            await pilot.press("p")
            await wait_for(pilot, lambda: any(t.startswith("saved step ") for t in toasts), what="the save's toast")
            saved = next(t for t in toasts if t.startswith("saved step "))
            step = int(saved.split()[2])
            assert saved == f"saved step {step} as step_{step:08d}.pt" and step >= 10
            wall = time.time() - app.model.started_at
            assert app.model.elapsed_seconds() < wall - 1.4  # the pause was not counted

    run_async(scenario)


def test_checkpoint_ages_tick_without_rereading_the_sidecars(tiny_launch):
    app = make_app(tiny_launch(every_steps=5))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 1, what="a checkpoint")
            table = app.query_one(CheckpointTable)
            table.tick_ages(datetime.now(timezone.utc) + timedelta(minutes=7))
            assert table.get_cell_at((0, COLUMNS.index("age"))) == "7m"

    run_async(scenario)


def test_parts_that_do_not_fit_are_left_out_whole():
    from tui_trainer.tui.run_model import RunModel

    model = RunModel(state="running", lrs=(3e-4, 1e-3), grad_norm=1.234, samples_per_sec=1234.0,
                     scalars={"accuracy": 0.5})
    full = describe_scalars(model)
    assert full.startswith("lr 3.0e-04,1.0e-03  grad 1.23 ") and "1.23k samples/s" in full and "accuracy 0.5" in full
    assert describe_scalars(model, 30) == "lr 3.0e-04,1.0e-03  grad 1.23 "
    assert sparkline([1.0, 2.0, float("nan"), 3.0]) == "▁▅ █"
