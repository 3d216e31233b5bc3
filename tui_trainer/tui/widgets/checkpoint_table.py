"""The run's checkpoints, read from their sidecars: step, epoch, losses, size, age and marks.

Rows are keyed by checkpoint name, so the cursor stays on the same checkpoint when saves and
prunes add or remove rows around it, and when the table is sorted another way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.time_format import format_age

COLUMNS = ("step", "epoch", "train", "val", "size", "age", "marks")
# The sorts `o` cycles through (a header click picks one): column -> newest, best, largest first.
SORTS = ("step", "val", "size")
DESCENDING = {"step": True, "val": False, "size": True}


@dataclass(frozen=True)
class CheckpointRow:
    name: str
    cells: tuple[str, ...]
    sort_values: tuple[float, float, float] | None = None  # step, val loss, size in bytes


def sort_rows(rows: Sequence[CheckpointRow], column: str) -> list[CheckpointRow]:
    """`rows` in the order `column` sorts them; checkpoints without a value (no val loss) go last."""
    index = SORTS.index(column)

    def value(row: CheckpointRow) -> float:
        return row.sort_values[index] if row.sort_values else float(row.cells[0]) if index == 0 else math.nan

    known = [r for r in rows if math.isfinite(value(r))]
    unknown = [r for r in rows if not math.isfinite(value(r))]
    known.sort(key=lambda r: (value(r), r.name), reverse=DESCENDING[column])
    return known + unknown


def checkpoint_rows(stored: Sequence[Any], now: datetime | None = None) -> list[CheckpointRow]:
    """Table rows for `CheckpointStore.list()` entries, newest step first."""
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
                    _loss(meta.metric("val_loss")),
                    human_bytes(meta.size_bytes),
                    format_age(meta.created, now),
                    marks,
                ),
                (float(meta.step), _finite(meta.metric("val_loss")), float(meta.size_bytes or 0)),
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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._rows: list[CheckpointRow] = []
        self._given: list[CheckpointRow] = []

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for label in COLUMNS:
            # The sorted column's header has an arrow, and is bold where the arrow cannot be drawn.
            arrow = ("▼" if DESCENDING[label] else "▲") if label == self.sort_by else ""
            self.add_column(Text(label + arrow, style="bold" if arrow else ""), key=label)

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

    def show_rows(self, rows: list[CheckpointRow]) -> None:
        """Replace the rows, keeping the cursor on the checkpoint it was on (or its neighbour)."""
        if rows == self._given:
            return
        self._given = list(rows)
        self._fill(rows, self.selected_name, self.cursor_row)

    def _fill(self, given: list[CheckpointRow], selected: str | None, old_index: int) -> None:
        rows = sort_rows(given, self.sort_by)
        self.clear()
        for row in rows:
            self.add_row(*row.cells, key=row.name)
        self._rows = rows
        names = [r.name for r in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected), animate=False, scroll=False)
        elif rows:
            # The selected checkpoint is gone (pruned, deleted): stay at the same height.
            self.move_cursor(row=min(max(old_index, 0), len(rows) - 1), animate=False, scroll=False)
