"""The loss chart beside the checkpoint table and the event log: one run's panels, fed from its RunModel.

The dashboard and the read-only view of another run (from the runs screen) show the same three
panels and feed them the same way; this widget is that shared part.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.worker import get_current_worker

from tui_trainer.tui.chart_markers import checkpoint_markers
from tui_trainer.tui.run_model import Changed, RunModel
from tui_trainer.tui.widgets.checkpoint_table import MARKS, CheckpointRow, CheckpointTable, checkpoint_rows
from tui_trainer.tui.widgets.event_log import EventLog
from tui_trainer.tui.widgets.loss_chart import LossChart


class RunPanels(Horizontal):
    def __init__(self, model: RunModel, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.model = model
        self.rows: list[CheckpointRow] = []  # the checkpoints as last listed

    def compose(self) -> ComposeResult:
        yield LossChart(self.model.train, self.model.val, self.model.markers, id="chart")
        with Vertical(id="side"):
            yield CheckpointTable(id="checkpoints")
            yield EventLog(id="events")

    def show(self, changed: Changed) -> None:
        """After `model.apply`: new log lines, and the chart if it is due a redraw."""
        if Changed.LOG in changed:
            self.query_one(EventLog).add(self.model.take_log())
        chart = self.query_one(LossChart)
        chart.metric = self.model.metric
        if Changed.CHART in changed and self.rows:
            self._mark_checkpoints()  # a resume names the checkpoint it started from
        chart.redraw()

    def _mark_checkpoints(self) -> None:
        marks = checkpoint_markers(((float(row.cells[0]), row.cells[MARKS]) for row in self.rows),
                                   self.model.resumed_from)
        self.query_one(LossChart).show_checkpoints(marks)

    @work(thread=True, exclusive=True, group="checkpoints", exit_on_error=False)
    def list_checkpoints(self, run_dir: str | Path) -> None:
        """Re-read the run's checkpoint metadata on a worker, then show it in the table."""
        from tui_trainer.engine.rundir.layout import store_for

        store = store_for(run_dir)
        rows = checkpoint_rows(store.list(), monitor=store.monitor)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_rows, rows, store.monitor, store.mode)

    def _show_rows(self, rows: list[CheckpointRow], metric: str = "val_loss", mode: str = "min") -> None:
        if self.is_mounted:
            self.rows = rows
            self.query_one(CheckpointTable).show_rows(rows, metric, mode)
            self._mark_checkpoints()
