"""The run's checkpoints, read from their sidecars: step, epoch, losses, size, age and marks.

Rows are keyed by checkpoint name, so the cursor stays on the same checkpoint when saves and
prunes add or remove rows around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from textual.widgets import DataTable

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.time_format import format_age

COLUMNS = ("step", "epoch", "train", "val", "size", "age", "marks")


@dataclass(frozen=True)
class CheckpointRow:
    name: str
    cells: tuple[str, ...]


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
            )
        )
    return rows


def _loss(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


class CheckpointTable(DataTable):
    DEFAULT_CSS = """
    CheckpointTable {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._rows: list[CheckpointRow] = []

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.add_column(label, key=label)

    @property
    def selected_name(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= len(self._rows):
            return None
        return self._rows[self.cursor_row].name

    def show_rows(self, rows: list[CheckpointRow]) -> None:
        """Replace the rows, keeping the cursor on the checkpoint it was on (or its neighbour)."""
        if rows == self._rows:
            return
        selected = self.selected_name
        old_index = self.cursor_row
        self.clear()
        for row in rows:
            self.add_row(*row.cells, key=row.name)
        self._rows = list(rows)
        names = [r.name for r in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected), animate=False, scroll=False)
        elif rows:
            # The selected checkpoint is gone (pruned, deleted): stay at the same height.
            self.move_cursor(row=min(max(old_index, 0), len(rows) - 1), animate=False, scroll=False)
