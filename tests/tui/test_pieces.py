"""Small pieces of the dashboard: target parsing, table rows and cursor, time formats, imports."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from textual.app import App, ComposeResult
from tui_pilot import run_async

from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.tui.screens.target_modal import parse_target
from tui_trainer.tui.time_format import format_age, format_duration
from tui_trainer.tui.widgets.checkpoint_table import CheckpointRow, CheckpointTable, checkpoint_rows


def test_parse_target():
    assert parse_target("600", current_step=10) == (600, None)
    assert parse_target(" 1_000 ", current_step=10) == (1000, None)
    target, problem = parse_target("abc", current_step=10)
    assert target is None and "not a whole number" in problem
    target, problem = parse_target("5", current_step=10)
    assert target is None and "already at step 10" in problem
    assert parse_target("-3", current_step=0)[0] is None


def test_durations_and_ages():
    assert [format_duration(s) for s in (None, 5, 65, 3723, 2 * 86400 + 3 * 3600)] == [
        "-", "5s", "1:05", "1:02:03", "2d 03h"]
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert format_age((now - timedelta(minutes=5)).isoformat(), now) == "5m"
    assert format_age((now - timedelta(days=3)).isoformat(), now) == "3d"
    assert format_age("garbage", now) == "-"


@dataclass
class _Stored:
    meta: CheckpointMeta
    marks: tuple[str, ...] = ()


def test_rows_are_newest_first_with_marks_and_kind():
    rows = checkpoint_rows([
        _Stored(CheckpointMeta("step_00000100.pt", 100, epoch=0, train_loss=2.5, size_bytes=2000)),
        _Stored(CheckpointMeta("step_00000200.pt", 200, epoch=1, kind="manual", metrics={"val_loss": 2.25},
                               metrics_step=200), ("best", "latest")),
    ])
    assert [r.name for r in rows] == ["step_00000200.pt", "step_00000100.pt"]
    assert rows[0].cells[3] == "2.2500" and rows[0].cells[6] == "best latest manual"
    assert rows[1].cells[2] == "2.5000" and rows[1].cells[4] == "2.0 KB"


def _row(step):
    return CheckpointRow(f"step_{step:08d}.pt", (str(step), "0", "-", "-", "-", "-", ""))


class _TableApp(App):
    def compose(self) -> ComposeResult:
        yield CheckpointTable()


def test_the_cursor_stays_on_its_checkpoint_when_rows_change():
    async def scenario():
        app = _TableApp()
        async with app.run_test(size=(80, 12)) as pilot:
            table = app.query_one(CheckpointTable)
            table.show_rows([_row(300), _row(200), _row(100)])
            table.move_cursor(row=1)
            await pilot.pause()
            assert table.selected_name == "step_00000200.pt"
            table.show_rows([_row(400), _row(300), _row(200), _row(100)])  # a new save on top
            await pilot.pause()
            assert table.selected_name == "step_00000200.pt"
            table.show_rows([_row(400), _row(300), _row(100)])  # the selected one was pruned
            await pilot.pause()
            assert table.selected_name == "step_00000100.pt"

    run_async(scenario)


def test_on_the_top_row_the_cursor_follows_each_new_save_and_the_newest_stays_in_view():
    async def scenario():
        app = _TableApp()
        async with app.run_test(size=(80, 6)) as pilot:  # room for the header and three rows
            table = app.query_one(CheckpointTable)
            table.show_rows([_row(100)])
            await pilot.pause()
            for step in (200, 300, 400, 500):
                table.show_rows([_row(s) for s in range(step, 0, -100)])
                await pilot.pause()
                assert table.selected_name == _row(step).name
            assert table.scroll_y == 0
            assert "500" in app.export_screenshot()  # on screen, not scrolled out of view
            table.move_cursor(row=2)  # the user picks one: it stays picked as saves arrive
            await pilot.pause()
            assert table.selected_name == _row(300).name
            table.show_rows([_row(s) for s in range(600, 0, -100)])
            await pilot.pause()
            assert table.selected_name == _row(300).name

    run_async(scenario)


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_package_imports_neither_textual_nor_torch():
    loaded = _imported_after("import tui_trainer.tui")
    assert "textual" not in loaded and "torch" not in loaded


def test_the_app_module_does_not_import_torch():
    # torch loads in the worker, after the first frame is on screen.
    assert "torch" not in _imported_after("import tui_trainer.tui.app")
