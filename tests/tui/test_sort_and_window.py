"""The checkpoint table's sort (`o`, or a header click) and the chart's window (`w`)."""

from __future__ import annotations

from tui_pilot import driving, run_async, wait_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.chart_data import next_window, window_choices
from tui_trainer.tui.widgets.checkpoint_table import CheckpointRow, CheckpointTable, sort_rows
from tui_trainer.tui.widgets.loss_chart import LossChart


def _row(step: int, val: float, size: int) -> CheckpointRow:
    return CheckpointRow(f"step_{step:08d}.pt", (str(step),) + ("-",) * 6, (float(step), val, float(size)))


def test_sort_rows_puts_newest_best_or_largest_first_and_unknown_last():
    rows = [_row(10, 2.0, 300), _row(20, float("nan"), 100), _row(30, 1.0, 200)]
    assert [r.name[-6:-3] for r in sort_rows(rows, "step")] == ["030", "020", "010"]
    assert [r.name[-6:-3] for r in sort_rows(rows, "val")] == ["030", "010", "020"]
    assert [r.name[-6:-3] for r in sort_rows(rows, "size")] == ["010", "030", "020"]


def test_o_sorts_the_table_and_the_cursor_stays_on_its_checkpoint(tiny_launch):
    launch_fn = tiny_launch(max_iters=120, every_steps=20, eval_every=20)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
            table = app.query_one(CheckpointTable)
            await wait_for(pilot, lambda: table.row_count >= 3, what="checkpoints in the table")
            table.move_cursor(row=1)
            chosen = table.selected_name
            steps = [int(r.cells[0]) for r in table._rows]
            assert steps == sorted(steps, reverse=True)
            assert str(table.columns["step"].label).endswith("▼")

            await pilot.press("o")
            assert table.sort_by == "val"
            assert str(table.columns["val"].label).endswith("▲")
            assert not str(table.columns["step"].label).endswith("▼")
            vals = [r.sort_values[1] for r in table._rows]
            assert vals == sorted(vals)
            assert table.selected_name == chosen

            await pilot.press("o")
            assert table.sort_by == "size" and table.selected_name == chosen
            # Rows that change under a sort keep the cursor on the same checkpoint.
            table.show_rows([r for r in app.checkpoints if r.name != app.checkpoints[-1].name or r.name == chosen])
            assert table.selected_name == chosen
            await pilot.press("o")
            assert table.sort_by == "step" and table.selected_name == chosen

            val_x = sum(table.columns[key].get_render_width(table) for key in ("step", "epoch", "train")) + 1
            inside = table.content_region.offset - table.region.offset  # past the border, if any
            await pilot.click(CheckpointTable, offset=(inside.x + val_x, inside.y))  # the "val" header
            await wait_for(pilot, lambda: table.sort_by == "val", timeout=5, what="the header click to sort")
            assert table.selected_name == chosen

    run_async(scenario)


def test_window_choices_offer_only_windows_shorter_than_the_run():
    assert window_choices(50) == [None]
    assert window_choices(5_000) == [None, 1_000, 100]
    assert next_window(None, 5_000) == 1_000
    assert next_window(100, 5_000) is None
    assert next_window(10_000, 5_000) is None  # a window the run outgrew the other way: back to whole


def test_w_narrows_the_chart_to_the_last_steps_and_back(tiny_launch):
    launch_fn = tiny_launch(max_iters=300)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", timeout=40, what="the run to finish")
            chart = app.query_one(LossChart)
            await wait_for(pilot, lambda: chart.drawn_x_range == (1.0, 300.0), what="the whole run drawn")
            await pilot.press("w")
            assert chart.window == 100
            assert chart.drawn_x_range == (200.0, 300.0)
            assert "last 100 steps" in str(chart.query_one("#chart-caption").render())
            await pilot.press("w")
            assert chart.window is None and chart.drawn_x_range == (1.0, 300.0)

    run_async(scenario)
