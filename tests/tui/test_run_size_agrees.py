"""A run's size is one measure: the dashboard's disk panel, `tui-trainer runs` and the runs screen say the same.

Exports (`exports/` in the run dir) and the history count in all three.
"""

from __future__ import annotations

import re
import time

from textual.widgets import DataTable
from tui_pilot import driving, run_async, screen_up, shown_text, wait_for

from tests.cli.ckpt_cli import run
from tests.factories import make_run, write_history
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.screens.runs_screen import RunsScreen
from tui_trainer.tui.widgets.disk_panel import DiskPanel


def test_the_disk_panel_and_the_runs_listings_agree_on_a_run_with_an_export(capsys, tmp_path):
    run_dir = make_run(tmp_path / "root" / "run", steps=(100, 200))
    write_history(run_dir, 200)
    (run_dir / "exports").mkdir()  # where the dashboard's export puts them
    result = run(capsys, "ckpt", "export", run_dir / "step_00000200.pt", run_dir / "exports" / "model.safetensors")
    assert result.code == 0, result.err
    files = [p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    everything = human_bytes(sum(p.stat().st_size for p in files))
    without_exports = human_bytes(sum(p.stat().st_size for p in files if "exports" not in p.parts))
    assert everything != without_exports  # the export is big enough to tell them apart

    listed = run(capsys, "runs", tmp_path / "root")
    assert listed.code == 0, listed.err
    [row] = [line for line in listed.out.splitlines() if line.split()[:2] not in (["run", "state"],) and
             line.startswith("run ")]
    assert re.search(rf"\s{re.escape(everything)}\s", row), row

    app = make_attach_app(run_dir)

    async def scenario():
        async with driving(app) as pilot:
            panel = app.query_one(DiskPanel)
            await wait_for(pilot, lambda: panel.reads > 0 and panel.run_bytes is not None, what="the disk panel")
            shown = shown_text(panel)
            # At 120 columns the checkpoints' size is left out beside the system panel; the run's stays.
            assert shown.split(" · ")[0].split(", ")[0] == f"disk: run {everything}", shown

            await pilot.press("R")
            await wait_for(pilot, lambda: screen_up(app, RunsScreen), what="the runs screen")
            table = app.screen.query_one(DataTable)
            deadline = time.monotonic() + 20
            while not table.row_count and time.monotonic() < deadline:
                await pilot.pause(0.05)
            cells = [str(cell) for cell in table.get_row_at(0)]
            assert everything in cells, cells

    run_async(scenario)
