"""The checkpoint keys driven with Pilot over tiny demo runs: e, x, d, space, enter, c, b, ? and ctrl+p."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Label, RadioButton, Static
from tui_pilot import driving, run_async, screen_up, shown_text, wait_for

from tui_trainer.engine.rundir.layout import SUPERSEDED_DIR, store_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.screens.compare_pick import ComparePickScreen
from tui_trainer.tui.screens.compare_screen import CompareScreen
from tui_trainer.tui.screens.confirm_modal import ConfirmScreen
from tui_trainer.tui.screens.details_screen import DetailsScreen
from tui_trainer.tui.screens.export_modal import ExportScreen
from tui_trainer.tui.screens.help_screen import HelpScreen
from tui_trainer.tui.screens.prune_modal import PruneScreen
from tui_trainer.tui.screens.rollback_modal import RollbackScreen
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.event_log import EventLog


def _name(step: int) -> str:
    return f"step_{step:08d}.pt"


def _on_disk(run_dir: Path) -> list[str]:
    return sorted(c.meta.name for c in store_for(run_dir).list())


def _in_table(app) -> list[str]:
    return sorted(row.name for row in app.checkpoints)




async def _finished_with(pilot, app, count: int) -> None:
    await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
    await wait_for(pilot, lambda: len(app.checkpoints) == count, what=f"{count} rows in the table")


async def _select(pilot, app, name: str) -> None:
    table = app.query_one(CheckpointTable)
    table.move_cursor(row=[row.name for row in app.checkpoints].index(name))
    await pilot.pause()
    assert table.selected_name == name


async def _open(pilot, app, key: str, screen_type) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type), what=f"{screen_type.__name__} after {key}")


def test_e_exports_shows_sizes_and_refuses_an_existing_file_or_a_missing_folder(tiny_launch, tmp_path):
    launch_fn = tiny_launch(max_iters=30, every_steps=10)
    app = make_app(launch_fn)
    default_out = launch_fn.run_dir / "exports" / "step_00000020.safetensors"

    async def scenario():
        async with driving(app) as pilot:
            await _finished_with(pilot, app, 3)
            await _select(pilot, app, _name(20))
            await _open(pilot, app, "e", ExportScreen)
            screen = app.screen
            assert screen.query_one(Input).value == str(default_out)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.result is not None, what="the export")
            assert default_out.is_file()
            shown = shown_text(screen.query_one("#export-result", Label))
            assert "of weights, from a" in shown and "KB" in shown and "parameters" in shown
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ExportScreen), what="the modal to close")
            assert any("exported" in line for line in app.query_one(EventLog).lines_written)

            # The same output again: an error in the modal, the file untouched.
            before = default_out.read_bytes(), default_out.stat().st_mtime_ns
            await _open(pilot, app, "e", ExportScreen)
            screen = app.screen
            await pilot.press("enter")
            error = screen.query_one("#export-error", Label)
            await wait_for(pilot, lambda: "already exists" in shown_text(error), what="the existing-file error")
            assert isinstance(app.screen, ExportScreen) and screen.result is None
            assert (default_out.read_bytes(), default_out.stat().st_mtime_ns) == before

            # A folder that does not exist; the .pt suffix also switches the format.
            screen.query_one(Input).value = str(tmp_path / "nowhere" / "weights.pt")
            await pilot.pause()
            assert screen.query_one("#format-pt", RadioButton).value
            await pilot.press("enter")
            await wait_for(pilot, lambda: "does not exist" in shown_text(error), what="the missing-folder error")
            assert not (tmp_path / "nowhere").exists()
            await pilot.press("escape")

    run_async(scenario)


def test_x_previews_exactly_what_prune_deletes_rejects_bad_numbers_and_spares_the_pinned(tiny_launch):
    launch_fn = tiny_launch(max_iters=60, every_steps=10)  # keep_last 0: all six stay
    app = make_app(launch_fn)
    run_dir = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await _finished_with(pilot, app, 6)
            await _select(pilot, app, _name(20))
            await pilot.press("space")
            await wait_for(pilot, lambda: store_for(run_dir).get(_name(20)).pinned, what="the pin")
            await wait_for(pilot, lambda: "pinned" in app.checkpoints[-2].cells[6], what="the mark in the table")

            await _open(pilot, app, "x", PruneScreen)
            screen = app.screen
            field = screen.query_one(Input)
            assert field.value == "5"  # the run keeps everything (0), so the usual default is offered
            error = screen.query_one("#prune-error", Label)
            for bad, says in (("abc", "not a whole number"), ("0", "at least 1")):
                field.value = bad
                await pilot.press("enter")
                assert isinstance(app.screen, PruneScreen), "invalid input must keep the modal open"
                assert error.display and says in shown_text(error)

            field.value = "1"
            await wait_for(pilot, lambda: screen.preview is not None and screen.preview.keep_last == 1,
                           what="the preview for keep-last 1")
            expected = tuple(c.meta.name for c in store_for(run_dir).plan_prune(1))
            assert screen.preview.names == expected and expected
            store = store_for(run_dir)
            protected = {_name(20), store.best().meta.name, store.latest().meta.name}
            assert not protected & set(expected)
            shown = shown_text(screen.query_one("#prune-preview", Static))
            assert "freeing" in shown and all(name in shown for name in expected)

            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, PruneScreen), what="the modal to close")
            await wait_for(pilot, lambda: _in_table(app) == _on_disk(run_dir), what="the table to refresh")
            assert set(_on_disk(run_dir)) == {f"step_{s:08d}.pt" for s in range(10, 70, 10)} - set(expected)
            assert _name(20) in _on_disk(run_dir)
            assert app.query_one(CheckpointTable).selected_name == _name(20)  # the cursor stayed

    run_async(scenario)


def test_d_deletes_after_a_confirmation_and_the_best_needs_a_second_one(tiny_launch):
    launch_fn = tiny_launch(max_iters=40, every_steps=10)
    app = make_app(launch_fn)
    run_dir = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await _finished_with(pilot, app, 4)
            best = store_for(run_dir).best().meta.name
            plain = next(n for n in (_name(10), _name(20), _name(30)) if n != best)
            await _select(pilot, app, plain)
            await _open(pilot, app, "d", ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: plain not in _on_disk(run_dir), what="the delete")
            await wait_for(pilot, lambda: plain not in _in_table(app), what="the row to go")

            await _select(pilot, app, best)
            await _open(pilot, app, "d", ConfirmScreen)
            first = app.screen
            await pilot.press("y")
            await wait_for(pilot, lambda: screen_up(app, ConfirmScreen) and app.screen is not first,
                           what="the second confirmation")
            said = " ".join(app.screen.lines)
            assert "best checkpoint" in said
            await pilot.press("n")  # changed my mind: nothing is deleted
            await pilot.pause(0.3)
            assert best in _on_disk(run_dir)

            await _open(pilot, app, "d", ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: "protected" in getattr(app.screen, "title_text", ""),
                           what="the second confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: best not in _on_disk(run_dir), what="the best to be deleted")

    run_async(scenario)


def test_enter_c_question_mark_and_the_palette_open_their_screens(tiny_launch):
    launch_fn = tiny_launch(max_iters=30, every_steps=10)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await _finished_with(pilot, app, 3)
            await _select(pilot, app, _name(20))
            await _open(pilot, app, "enter", DetailsScreen)
            screen = app.screen
            await wait_for(pilot, lambda: screen.details is not None, what="the details")
            assert screen.details.meta.step == 20 and screen.details.parts["data"]
            body = shown_text(screen.query_one("#details-body", Static))
            assert "data position" in body and "parameters" in body and "checksum matches" in body
            await pilot.press("escape")

            await _open(pilot, app, "c", ComparePickScreen)
            assert [name for name, _ in app.screen.others] == [_name(30), _name(10)]
            await pilot.press("down", "enter")  # the second option: step 10
            await wait_for(pilot, lambda: screen_up(app, CompareScreen), what="the comparison screen")
            screen = app.screen
            await wait_for(pilot, lambda: screen.comparison is not None, what="the comparison")
            assert (screen.comparison.a.step, screen.comparison.b.step) == (10, 20)  # the earlier one is A
            assert screen.comparison.changes and "largest per-tensor changes" in shown_text(
                screen.query_one("#compare-changes", Static))
            await pilot.press("escape")

            await _open(pilot, app, "question_mark", HelpScreen)
            keys = {row.key: row.description for row in app.screen.rows}
            assert keys["p"] == "Pause" and keys["x"] == "Prune" and keys["e"] == "Export"
            assert {"d", "space", "c", "b", "?"} <= keys.keys()
            await pilot.press("escape")

            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"export")
            await pilot.pause(0.3)
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: screen_up(app, ExportScreen), what="export from the palette")
            await pilot.press("escape")

    run_async(scenario)


def test_b_rolls_a_finished_run_back_and_trains_on_from_that_checkpoint(tiny_launch):
    launch_fn = tiny_launch(max_iters=40, every_steps=10)
    app = make_app(launch_fn)
    run_dir = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await _finished_with(pilot, app, 4)
            # A damaged checkpoint is refused before anything is stopped or moved.
            damaged = run_dir / _name(10)
            damaged.write_bytes(damaged.read_bytes()[:-100])
            await _select(pilot, app, _name(10))
            await pilot.press("b")
            log = app.query_one(EventLog).lines_written
            await wait_for(pilot, lambda: any("cannot be resumed from" in line for line in log), what="the refusal")
            assert not isinstance(app.screen, RollbackScreen)

            await _select(pilot, app, _name(20))
            await _open(pilot, app, "b", RollbackScreen)
            screen = app.screen
            said = "\n".join(screen.lines)
            assert _name(30) in said and _name(40) in said and "steps 21-40" in said
            field = screen.query_one(Input)
            assert field.value == "40"
            field.value = "15"
            field.focus()
            await pilot.press("enter")
            assert isinstance(app.screen, RollbackScreen), "a target below the checkpoint must be refused"
            field.value = "50"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.model.state == "finished" and app.model.step == 50, timeout=40,
                           what="the rolled-back run to finish at 50")
            assert app.runner.trainer.resumed_from.endswith(_name(20))
            moved = {p.name for p in (run_dir / SUPERSEDED_DIR).rglob("*.pt")}
            assert moved == {_name(30), _name(40)}
            await wait_for(pilot, lambda: _in_table(app) == _on_disk(run_dir), what="the table to refresh")

    run_async(scenario)


def test_while_training_x_also_sets_the_trainers_keep_last_and_b_stops_then_rolls_back(tiny_launch):
    launch_fn = tiny_launch(every_steps=5)
    app = make_app(launch_fn)
    run_dir = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 4, what="four checkpoints")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="the pause")

            await _open(pilot, app, "x", PruneScreen)
            screen = app.screen
            assert screen.query_one("#prune-live", Label)
            screen.query_one(Input).value = "2"
            await wait_for(pilot, lambda: screen.preview is not None and screen.preview.keep_last == 2,
                           what="the preview")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.runner.trainer.policy.keep_last == 2, what="the trainer's keep-last")
            await wait_for(pilot, lambda: _in_table(app) == _on_disk(run_dir), what="the table to refresh")

            oldest = _in_table(app)[0]
            step = int(oldest[5:13])
            await _select(pilot, app, oldest)
            await _open(pilot, app, "b", RollbackScreen)
            assert "Training is running" in app.screen.lines[0], (app.model.state, app.model.worker_done, app.model.error, app.model.end_reason)
            await pilot.click("#rollback-ok")
            await wait_for(pilot, lambda: app.runner.trainer is not None and app.model.state == "running"
                           and app.runner.trainer.resumed_from is not None, what="training from the checkpoint")
            assert app.runner.trainer.resumed_from.endswith(oldest)
            assert app.model.training and app.control.stop_reason is None
            assert app.runner.trainer.policy.keep_last == 2  # kept in the run, so it does not grow back
            moved = [int(p.name[5:13]) for p in (run_dir / SUPERSEDED_DIR).rglob("*.pt")]
            assert moved and min(moved) > step

    run_async(scenario)
