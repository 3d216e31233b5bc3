"""The dashboard of a run monitoring `accuracy` (max): the checkpoint table and the chart name and show it."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Static
from tui_pilot import TINY, driving, run_async, screen_up, shown_text, wait_for

from tests.metric_jobs import accuracy_and_loss_job, accuracy_only_job
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings, store_for
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.loss_chart import LossChart

JOBS = {"both": accuracy_and_loss_job, "accuracy_only": accuracy_only_job}


def _finished(run_dir, job):
    trainer = launch.start_run(run_dir, job=job, job_options=TINY,
                               policy=CheckpointPolicy(every_steps=10, keep_last=0, monitor="accuracy", mode="max"),
                               settings=RunSettings(max_iters=30, eval_every=5))
    assert trainer.run().reason == "target"
    return {c.meta.step: c.meta.metrics for c in store_for(run_dir).list()}


@pytest.mark.parametrize("name", JOBS)
def test_the_table_and_chart_show_the_monitored_metric(tmp_path, name):
    metrics = _finished(tmp_path / name, JOBS[name])
    app = make_attach_app(tmp_path / name)

    async def scenario():
        async with driving(app) as pilot:
            table = app.query_one(CheckpointTable)
            await wait_for(pilot, lambda: table.row_count == 3 and app.model.step == 30, what="the checkpoints")
            labels = [str(column.label).rstrip("▲▼") for column in table.columns.values()]
            expected = ["step", "epoch", "train", "accuracy", *(["val_loss"] if name == "both" else []),
                        "size", "age", "marks"]
            assert labels == expected
            for row in range(3):
                cells = [str(cell) for cell in table.get_row_at(row)]
                step = int(cells[0])
                assert cells[3] == f"{metrics[step]['accuracy']:.4f}"
                if name == "both":
                    assert cells[4] == f"{metrics[step]['val_loss']:.4f}"
            table.sort_by = "val"  # the best first: the highest accuracy, as --mode max says
            await pilot.pause()
            best = [float(str(table.get_row_at(row)[3])) for row in range(3)]
            assert best == sorted(best, reverse=True)
            chart = app.query_one(LossChart)
            assert app.model.metric == "accuracy" and chart.metric == "accuracy"
            assert list(app.model.val.steps) == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
            assert app.model.val.last == pytest.approx(metrics[30]["accuracy"])
            await wait_for(pilot, lambda: "o accuracy " in shown_text(chart.query_one("#chart-caption", Static)),
                           what="the chart's caption")
            await pilot.press("q")

    run_async(scenario)


def test_compare_offers_the_other_checkpoints_with_the_monitored_metric_by_name(tmp_path):
    from textual.widgets import OptionList

    from tui_trainer.tui.screens.compare_pick import ComparePickScreen

    metrics = _finished(tmp_path / "run", accuracy_only_job)
    app = make_attach_app(tmp_path / "run")

    async def scenario():
        async with driving(app) as pilot:
            table = app.query_one(CheckpointTable)
            await wait_for(pilot, lambda: table.row_count == 3 and app.model.step == 30, what="the checkpoints")
            await pilot.press("c")
            await wait_for(pilot, lambda: screen_up(app, ComparePickScreen), what="the compare pick")
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert labels and all("  accuracy " in label and "  val " not in label for label in labels)
            assert any(f"accuracy {metrics[20]['accuracy']:.4f}" in label for label in labels)

    run_async(scenario)


def test_a_live_evaluation_adds_to_the_monitored_curve():
    from tui_trainer.engine.loop import events as ev
    from tui_trainer.session.runner import CurveLoaded
    from tui_trainer.tui.run_model import RunModel

    model = RunModel()
    model.apply([CurveLoaded([1.0], [3.0], [], [], metric="accuracy")])
    model.apply([ev.Evaluated(5, {"accuracy": 0.25, "val_loss": 3.0})])
    assert list(model.val.steps) == [5.0] and model.val.last == 0.25


def test_the_runs_screen_names_each_runs_metric(tmp_path):
    from textual.app import App

    from tui_trainer.engine.rundir.runs_index import list_runs
    from tui_trainer.tui.widgets.runs_table import RunsTable, run_rows

    _finished(tmp_path / "accuracy_only", accuracy_only_job)
    runs = list_runs(tmp_path).runs
    app = App()

    async def scenario():
        async with app.run_test() as pilot:
            table = RunsTable()
            await app.mount(table)
            table.show_rows(run_rows(runs, set()))
            await pilot.pause()
            assert [str(c.label) for c in table.columns.values()][4] == "best accuracy"
            assert str(table.get_row_at(0)[4]) == f"{runs[0].best_value:.4f}"
            mixed = [runs[0], dataclasses.replace(runs[0], name="plain", monitor="val_loss", best_value=1.5)]
            table.show_rows(run_rows(mixed, set()))
            await pilot.pause()
            assert [str(c.label) for c in table.columns.values()][4] == "best"
            assert [str(table.get_row_at(i)[4]) for i in range(2)] == [
                f"{runs[0].best_value:.4f} accuracy", "1.5000 val_loss"]

    run_async(scenario)
