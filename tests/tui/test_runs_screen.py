"""The runs screen (R) driven with Pilot: the table and its total, opening runs, the overlay, prune across runs."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Input, Label, Static
from tui_pilot import driving, run_async, screen_up, shown_text, wait_for

from tests.factories import add_checkpoint, make_run, make_run_dir, snapshot, write_history
from tui_trainer.engine.rundir.layout import read_run, store_for, write_run
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.app import make_app
from tui_trainer.tui.attach_app import make_attach_app as make_watch_app
from tui_trainer.tui.binding_commands import binding_commands
from tui_trainer.tui.screens.help_screen import HelpScreen
from tui_trainer.tui.screens.overlay_screen import TRAIN, VAL, OverlayScreen
from tui_trainer.tui.screens.run_view_screen import RunViewScreen
from tui_trainer.tui.screens.runs_prune_modal import RunsPruneScreen
from tui_trainer.tui.screens.runs_screen import RunsScreen
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.overlay_chart import OverlayChart
from tui_trainer.tui.widgets.runs_table import RunsTable


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _finished(run_dir: Path) -> Path:
    info = read_run(run_dir)
    info.state = "finished"
    write_run(run_dir, info)
    return run_dir


def _row(screen: RunsScreen, name: str) -> tuple[str, ...]:
    table = screen.query_one(RunsTable)
    return tuple(str(cell) for cell in table.get_row(name))


async def _open_runs(pilot, app) -> RunsScreen:
    await pilot.press("R")
    await wait_for(pilot, lambda: screen_up(app, RunsScreen) and app.screen.index is not None,
                   what="the runs screen")
    return app.screen


async def _select(pilot, screen: RunsScreen, name: str) -> None:
    table = screen.query_one(RunsTable)
    table.move_cursor(row=[r.name for r in screen.index.runs].index(name))
    await pilot.pause()
    assert table.selected_name == name


def test_runs_screen_lists_every_run_with_its_numbers_and_total_and_opens_them(tiny_launch, tmp_path):
    launch_fn = tiny_launch(max_iters=20, every_steps=10)
    gpu0 = _finished(make_run(tmp_path / "model_gpu0", steps=(100, 200, 300)))
    write_history(gpu0, 350)
    gpu1 = _finished(make_run(tmp_path / "model_gpu1", steps=(100, 200), val_losses={100: 1.5, 200: 1.75}))
    app = make_app(launch_fn)
    live = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished" and len(app.checkpoints) == 2,
                           what="the live run to finish")
            screen = await _open_runs(pilot, app)
            best = store_for(live).best().meta.metric("val_loss")
            expected = {
                "model_gpu0": ("", "model_gpu0", "finished", "350/2000", "2.7000", "3", human_bytes(_size(gpu0)),
                               "factories:no_job"),
                "model_gpu1": ("", "model_gpu1", "finished", "200/2000", "1.5000", "2", human_bytes(_size(gpu1)),
                               "factories:no_job"),
                "run": ("", "run", "finished (live)", "20/20", f"{best:.4f}", "2", human_bytes(_size(live)), "demo"),
            }
            total = f"3 runs, 7 checkpoints, {human_bytes(_size(gpu0) + _size(gpu1) + _size(live))} in all"
            await wait_for(pilot, lambda: {n: _row(screen, n) for n in expected} == expected
                           and shown_text(screen.query_one("#runs-total", Label)) == total, timeout=10,
                           what=f"rows {expected} and {total!r}")

            await pilot.press("question_mark")
            await wait_for(pilot, lambda: screen_up(app, HelpScreen), what="help")
            shown = [row.description for row in app.screen.rows]
            assert {"Open", "Mark", "Overlay", "Prune all", "Runs"} <= set(shown)
            await pilot.press("escape")
            names = [name for name, _, _ in binding_commands(app, screen)]
            assert "Runs: overlay the loss curves of the marked runs" in names

            await _select(pilot, screen, "model_gpu0")
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen_up(app, RunViewScreen), what="the run view")
            view = app.screen
            assert view.run_dir == gpu0
            await wait_for(pilot, lambda: view.model.step == 350 and view.model.state == "finished",
                           what="the other run's history")
            await wait_for(pilot, lambda: view.query_one(CheckpointTable).row_count == 3, what="its checkpoints")
            assert app.model.run_dir == str(live)  # the dashboard's own run is untouched underneath
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, what="back to the runs")

            await _select(pilot, screen, "run")
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="back to the dashboard")

    run_async(scenario)


def test_space_marks_runs_and_v_overlays_their_curves(tiny_launch, tmp_path):
    launch_fn = tiny_launch(max_iters=20, every_steps=10)
    gpu0 = _finished(make_run(tmp_path / "model_gpu0", steps=(100,)))
    write_history(gpu0, 350)
    gpu1 = _finished(make_run(tmp_path / "model_gpu1", steps=(100,)))
    write_history(gpu1, 200, eval_every=20)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the live run to finish")
            screen = await _open_runs(pilot, app)
            await pilot.press("v")
            assert app.screen is screen  # nothing marked: nothing to overlay
            for name in ("model_gpu0", "model_gpu1"):
                await _select(pilot, screen, name)
                await pilot.press("space")
            await wait_for(pilot, lambda: _row(screen, "model_gpu1")[0] == "●", what="the marks")
            assert _row(screen, "model_gpu0")[0] == "●" and _row(screen, "run")[0] == ""

            await pilot.press("v")
            await wait_for(pilot, lambda: screen_up(app, OverlayScreen) and app.screen.curves is not None,
                           what="the overlay")
            overlay = app.screen
            chart = overlay.query_one(OverlayChart)
            await wait_for(pilot, lambda: chart.drawn_series == 2, what="two curves")
            train = overlay.curves[TRAIN]
            assert [c.label for c in train] == ["model_gpu0", "model_gpu1"]
            assert (train[0].steps[-1], train[1].steps[-1]) == (350, 200)
            legend = shown_text(chart.query_one("#overlay-legend", Static))
            assert "─o─ model_gpu0 2" in legend and "─x─ model_gpu1 2" in legend and "train loss" in legend

            await pilot.press("v")
            await wait_for(pilot, lambda: chart.what == VAL, what="the val curves")
            assert [len(c.steps) for c in overlay.curves[VAL]] == [7, 10]  # every 50 of 350, every 20 of 200
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, what="back to the runs")

    run_async(scenario)


def _five(run_dir: Path) -> Path:
    make_run_dir(run_dir)
    for step in (100, 200, 300, 400, 500):
        add_checkpoint(run_dir, step, val_loss=1.0 if step == 200 else 2.0)  # the best is step 200
    return _finished(run_dir)


def _others(root: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Every file under `root` but the pruned runs and the live one (still writing while this looks)."""
    return {entry.name: snapshot(entry) for entry in root.iterdir() if entry.name not in ("a", "b", "run")}


def _on_disk(run_dir: Path) -> set[str]:
    return {c.meta.name for c in store_for(run_dir).list()}


def test_x_prunes_across_runs_exactly_what_it_previewed_and_leaves_the_training_run_alone(tiny_launch, tmp_path):
    launch_fn = tiny_launch(every_steps=5)  # trains on while the runs are pruned; keep-last 0 keeps all
    a = _five(tmp_path / "a")
    b = _five(tmp_path / "b")
    stray = tmp_path / "not-a-run"  # a checkpoint-looking file in a folder that holds no run
    stray.mkdir()
    (stray / "step_00000100.pt").write_bytes(b"not ours")
    app = make_app(launch_fn)
    live = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 3, what="the live run's checkpoints")
            screen = await _open_runs(pilot, app)
            await pilot.press("x")
            await wait_for(pilot, lambda: screen_up(app, RunsPruneScreen), what="the prune modal")
            modal = app.screen
            modal.query_one(Input).value = "2"
            await wait_for(pilot, lambda: modal.preview is not None and modal.preview.keep_last == 2,
                           what="the preview for keep-last 2")
            expected = ("a/step_00000100.pt", "a/step_00000300.pt", "b/step_00000100.pt", "b/step_00000300.pt")
            assert modal.preview.keys == expected
            freed = sum((tmp_path / key).stat().st_size for key in expected)
            shown = shown_text(modal.query_one("#prune-preview", Static))
            assert f"deletes 4 checkpoints in 2 runs, freeing {human_bytes(freed)}" in shown
            assert all(key in shown for key in expected)
            assert "left alone: run (being trained right now" in shown
            live_before = _on_disk(live)
            untouched = _others(tmp_path)
            assert "step_00000100.pt" in untouched["not-a-run"]

            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen, what="the modal to close")
            remaining = {"step_00000200.pt", "step_00000400.pt", "step_00000500.pt"}
            await wait_for(pilot, lambda: _on_disk(a) == remaining and _on_disk(b) == remaining, what="the prune")
            assert live_before <= _on_disk(live)  # the training run lost nothing
            assert _others(tmp_path) == untouched
            await wait_for(pilot, lambda: _row(screen, "a")[5] == "3", timeout=10, what="the table to re-scan")

    run_async(scenario)


def test_the_watch_app_opens_the_runs_screen_on_its_root(tmp_path):
    watched = _finished(make_run(tmp_path / "watched", steps=(100, 200)))
    write_history(watched, 200)
    _finished(make_run(tmp_path / "other", steps=(100,)))
    app = make_watch_app(watched)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.run_dir is not None, what="the watched run")
            screen = await _open_runs(pilot, app)
            assert [r.name for r in screen.index.runs] == ["other", "watched"]
            await wait_for(pilot, lambda: _row(screen, "watched")[2] == "finished (live)", what="the live mark")
            await _select(pilot, screen, "watched")
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="back to the watched run")

    run_async(scenario)


def test_a_run_another_process_trains_says_which_and_that_it_is_detached():
    from pathlib import Path

    from tui_trainer.engine.rundir.lock import LockHolder
    from tui_trainer.engine.rundir.runs_index import RunSummary
    from tui_trainer.tui.widgets.runs_table import run_rows

    def summary(name, state, holder):
        return RunSummary(path=Path(name), name=name, run_id=name, job="tui_trainer.demo.job:make_job", state=state,
                          last_step=10, target=100, monitor="val_loss", best_value=None, best_checkpoint=None,
                          checkpoints=0, disk_bytes=0, created="", holder=holder)

    here = __import__("socket").gethostname()
    rows = run_rows([summary("a", "running", LockHolder(4242, here, "", terminal=False)),
                     summary("b", "paused", LockHolder(77, "gpu-box-2", "", terminal=True)),
                     summary("c", "finished", None),
                     summary("d", "running", LockHolder(os.getpid(), here, ""))], set(), live="d")
    states = [row.cells[2] for row in rows]
    assert states == ["running (pid 4242, detached)", "paused (pid 77 on gpu-box-2)", "finished", "running (live)"]
