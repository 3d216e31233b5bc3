"""The runs under a root, one row each: marked for the overlay, name, state, step, best, checkpoints, size, job.

Rows are keyed by the run's name, so the cursor and the marks stay on the same runs when a
re-scan adds, removes or reorders rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.rundir.runs_index import RunSummary, best_label
from tui_trainer.engine.sizes import human_bytes

COLUMNS = ("", "run", "state", "step", "best val", "ckpts", "size", "job")  # job last: cut first when narrow
MARK = "●"  # marked for the overlay chart
LIVE = "live"  # the run this dashboard trains or watches


@dataclass(frozen=True)
class RunRow:
    name: str
    cells: tuple[str, ...]
    best_label: str = "best val"  # the header over cells[4]: names the runs' monitored metric


def job_name(job: str) -> str:
    if job == DEMO_JOB:
        return "demo"
    module, _, factory = job.partition(":")
    return f"{module.rpartition('.')[2]}:{factory}" if factory else module


def run_rows(runs: Sequence[RunSummary], marked: set[str], live: str | None = None) -> list[RunRow]:
    label = best_label(list(runs))
    rows = []
    for run in runs:
        step = "-" if run.last_step is None else str(run.last_step)
        state = f"{run.state} ({LIVE})" if run.name == live else run.state
        if run.live and run.name != live:
            state = f"{run.state} ({run.live})"  # trained by another process: which, and is it detached
        rows.append(RunRow(run.name, (
            MARK if run.name in marked else "",
            run.name,
            state,
            f"{step}/{run.target}",
            _loss(run.best_value) + (f" {run.monitor}" if label == "best" and run.best_value is not None else ""),
            str(run.checkpoints),
            human_bytes(run.disk_bytes),
            job_name(run.job),
        ), label))
    return rows


def _loss(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


class RunsTable(DataTable):
    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._rows: list[RunRow] = []
        self.best_label = "best val"

    def on_mount(self) -> None:
        self._add_columns("best val")

    def _add_columns(self, best: str) -> None:
        self.best_label = best
        for label in COLUMNS:
            self.add_column(Text(best if label == "best val" else label, style="bold"), key=label or "mark")

    @property
    def selected_name(self) -> str | None:
        if not self._rows or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row].name

    def show_rows(self, rows: list[RunRow]) -> None:
        """Replace the rows, keeping the cursor on the same run (or at the same height)."""
        if rows == self._rows:
            return
        selected, old_index = self.selected_name, self.cursor_row
        best = rows[0].best_label if rows else self.best_label
        self.clear(columns=best != self.best_label)
        if not self.columns:
            self._add_columns(best)
        for row in rows:
            self.add_row(*row.cells, key=row.name)
        self._rows = list(rows)
        names = [r.name for r in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected), animate=False, scroll=False)
        elif rows:
            self.move_cursor(row=min(max(old_index, 0), len(rows) - 1), animate=False, scroll=False)
