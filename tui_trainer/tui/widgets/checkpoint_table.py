"""The run's checkpoints, read from their sidecars: step, epoch, losses, size, age and marks.

The "val" column is the run's monitored metric, headed by its name when it is not val_loss
(`accuracy`), with a val_loss column beside it when the run also reports val_loss.

Rows are keyed by checkpoint name, so the cursor stays on the same checkpoint when saves and
prunes add or remove rows around it, and when the table is sorted another way; left on the top
row, it stays there, on the newest save.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.reactive import reactive
from textual.widgets import DataTable

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.time_format import format_age

COLUMNS = ("step", "epoch", "train", "val", "size", "age", "marks")
AGE = COLUMNS.index("age")
MARKS = COLUMNS.index("marks")
VAL_LOSS = "val_loss"
# The sorts `o` cycles through (a header click picks one): column -> newest, best, largest first.
SORTS = ("step", "val", "size")
DESCENDING = {"step": True, "val": False, "size": True}


@dataclass(frozen=True)
class CheckpointRow:
    name: str
    cells: tuple[str, ...]
    sort_values: tuple[float, float, float] | None = None  # step, monitored metric, size in bytes
    val_loss: tuple[str, ...] = ()  # the val_loss cell, when another metric is monitored
    created: str | None = None  # ISO time of the save, for the age cell to tick


def sort_rows(rows: Sequence[CheckpointRow], column: str, mode: str = "min") -> list[CheckpointRow]:
    """`rows` in the order `column` sorts them, the best metric first by `mode`; checkpoints
    without a value (not evaluated) go last."""
    index = SORTS.index(column)

    def value(row: CheckpointRow) -> float:
        return row.sort_values[index] if row.sort_values else float(row.cells[0]) if index == 0 else math.nan

    known = [r for r in rows if math.isfinite(value(r))]
    unknown = [r for r in rows if not math.isfinite(value(r))]
    known.sort(key=lambda r: (value(r), r.name), reverse=descending(column, mode))
    return known + unknown


def descending(column: str, mode: str) -> bool:
    return mode == "max" if column == "val" else DESCENDING[column]


def checkpoint_rows(stored: Sequence[Any], now: datetime | None = None, monitor: str = VAL_LOSS) -> list[CheckpointRow]:
    """Table rows for `CheckpointStore.list()` entries, newest step first; the "val" cell holds `monitor`."""
    with_val_loss = monitor != VAL_LOSS and any(c.meta.metric(VAL_LOSS) is not None for c in stored)
    rows = []
    for c in sorted(stored, key=lambda c: (c.meta.step, c.meta.name), reverse=True):
        meta = c.meta
        marks = " ".join(c.marks)
        if meta.kind not in ("periodic",):
            marks = f"{marks} {meta.kind}".strip()
        rows.append(
            CheckpointRow(
                meta.name,
                (
                    str(meta.step),
                    "-" if meta.epoch is None else str(meta.epoch),
                    _loss(meta.train_loss),
                    _loss(meta.metric(monitor)),
                    human_bytes(meta.size_bytes),
                    format_age(meta.created, now),
                    marks,
                ),
                (float(meta.step), _finite(meta.metric(monitor)), float(meta.size_bytes or 0)),
                (_loss(meta.metric(VAL_LOSS)),) if with_val_loss else (),
                meta.created,
            )
        )
    return rows


def _finite(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _loss(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


class CheckpointTable(DataTable):
    DEFAULT_CSS = """
    CheckpointTable {
        height: 1fr;
        min-height: 4;
    }
    """

    sort_by: reactive[str] = reactive("step", init=False)
    _only_cells = False  # while an age is updated: no repaint of the whole table

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._rows: list[CheckpointRow] = []
        self._given: list[CheckpointRow] = []
        self.metric, self.mode = VAL_LOSS, "min"  # the run's monitored metric, in the "val" column
        self._with_val_loss = False
        self._ages: dict[str, str] = {}  # age cells ticked since the rows were filled

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key in COLUMNS:
            # The sorted column's header has an arrow, and is bold where the arrow cannot be drawn.
            arrow = ("▼" if descending(key, self.mode) else "▲") if key == self.sort_by else ""
            label = self.metric if key == "val" and self.metric != VAL_LOSS else key
            self.add_column(Text(label + arrow, style="bold" if arrow else ""), key=key)
            if key == "val" and self._with_val_loss:
                self.add_column(VAL_LOSS, key=VAL_LOSS)

    def watch_virtual_size(self) -> None:
        # DataTable measures new cells when idle, and its line caches are not keyed on column
        # widths: lines painted before (the header, rows the cursor does not touch) kept the old ones.
        self._clear_caches()
        self.refresh()

    def cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value in SORTS:
            self.sort_by = event.column_key.value

    def watch_sort_by(self) -> None:
        selected, old_index = self.selected_name, self.cursor_row
        self.clear(columns=True)
        self._add_columns()
        self._fill(self._given, selected, old_index)

    @property
    def selected_name(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= len(self._rows):
            return None
        return self._rows[self.cursor_row].name

    def show_rows(self, rows: list[CheckpointRow], metric: str = VAL_LOSS, mode: str = "min") -> None:
        """Replace the rows, keeping the cursor on the checkpoint it was on (or its neighbour);
        `metric` and `mode` are the run's monitored metric, which the "val" column shows."""
        with_val_loss = any(row.val_loss for row in rows)
        if (metric, mode, with_val_loss) != (self.metric, self.mode, self._with_val_loss):
            self.metric, self.mode, self._with_val_loss = metric, mode, with_val_loss
            self.clear(columns=True)
            self._add_columns()
            self._given = []
        if rows == self._given:
            return
        self._given = list(rows)
        self._fill(rows, self.selected_name, self.cursor_row)

    def tick_ages(self, now: datetime | None = None) -> None:
        """Bring the age cells up to `now`, touching only those whose text changed."""
        for row in self._rows:
            if row.created is None:
                continue
            age = format_age(row.created, now)
            if self._ages.get(row.name, row.cells[AGE]) != age:
                self._ages[row.name] = age
                self._update_age(row.name, age)

    def _update_age(self, name: str, age: str) -> None:
        # `update_cell` repaints the whole table, border and all (~2.5 KB over SSH at every
        # tick); an age keeps its column's width, so only its cell is repainted.
        self._only_cells = True
        try:
            self.update_cell(name, "age", age)
        finally:
            self._only_cells = False
        self.refresh_coordinate(Coordinate(self.get_row_index(name), self.get_column_index("age")))

    def refresh(self, *regions: Region, **kwargs: Any) -> CheckpointTable:
        if self._only_cells and not regions:
            return self
        return super().refresh(*regions, **kwargs)

    def _fill(self, given: list[CheckpointRow], selected: str | None, old_index: int) -> None:
        rows = sort_rows(given, self.sort_by, self.mode)
        before = {row.name for row in self._rows}
        if old_index == 0 and rows and self._rows and rows[0].name not in before:
            # On the top row, the cursor follows what arrives there (the newest save, sorted by
            # step) rather than slide down with its checkpoint until the newest scrolls out of view.
            selected = rows[0].name
        self.clear()
        self._ages = {}
        for row in rows:
            extra = (row.val_loss or ("-",)) if self._with_val_loss else ()
            self.add_row(*row.cells[:4], *extra, *row.cells[4:], key=row.name)
        self._rows = rows
        names = [r.name for r in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected), animate=False, scroll=False)
        elif rows:
            # The selected checkpoint is gone (pruned, deleted): stay at the same height.
            self.move_cursor(row=min(max(old_index, 0), len(rows) - 1), animate=False, scroll=False)
