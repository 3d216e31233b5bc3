"""Two checkpoints side by side: metric deltas, parameters, size, and the tensors that moved most.

`compare_checkpoints` loads both files (torch), so it runs in a thread worker; the screen says
so until the comparison arrives.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.screens.loaded_view import LoadedView

CHANGES_SHOWN = 12


def _loss(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _signed(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else spec.format(value)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _relative(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3%}"


def side_by_side(c: Any) -> Table:
    """Rows of A, B and B - A: progress, losses and metrics, parameters and file size."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (("", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_row("file", c.a.path.name, c.b.path.name, "")
    for name, delta in c.deltas.items():
        if name == "size_bytes":
            sign = "-" if delta is not None and delta < 0 else "+"
            change = "-" if delta is None else sign + human_bytes(abs(delta))
            table.add_row("size", human_bytes(c.a.size_bytes), human_bytes(c.b.size_bytes), change)
        elif name in ("step", "epoch", "parameters"):
            table.add_row(name, _count(getattr(c.a, name)), _count(getattr(c.b, name)), _signed(delta, "{:+,.0f}"))
        else:
            a = c.a.train_loss if name == "train_loss" else c.a.metrics.get(name)
            b = c.b.train_loss if name == "train_loss" else c.b.metrics.get(name)
            table.add_row(name.replace("_", " "), _loss(a), _loss(b), _signed(delta, "{:+.4f}"))
    return table


def largest_changes(c: Any) -> RenderableType:
    """The tensors that moved most (relative L2 change), or why they cannot be compared."""
    if c.changes is None:
        lines = ["The weights differ in keys or shapes, so they cannot be compared tensor by tensor:"]
        lines += [f"  {key}: A {list(a)}, B {list(b)}" for key, a, b in c.shape_mismatches[:CHANGES_SHOWN]]
        lines += [f"  only in A: {key}" for key in c.only_in_a[:CHANGES_SHOWN]]
        lines += [f"  only in B: {key}" for key in c.only_in_b[:CHANGES_SHOWN]]
        return Text("\n".join(lines))
    table = Table(box=None, header_style="bold", pad_edge=False, title="largest per-tensor changes",
                  title_justify="left", title_style="bold")
    for column in ("tensor", "shape", "|B - A|", "|A|", "relative"):
        table.add_column(column, justify="left" if column in ("tensor", "shape") else "right")
    for t in c.changes[:CHANGES_SHOWN]:
        table.add_row(t.key, str(list(t.shape)), f"{t.change_norm:.4g}", f"{t.base_norm:.4g}", _relative(t.relative))
    more = len(c.changes) - CHANGES_SHOWN
    footer = Text(
        (f"... and {more} tensors that changed less\n" if more > 0 else "")
        + f"all weights: |B - A| {c.total_change_norm:.4g}, |A| {c.total_base_norm:.4g}, "
        f"relative {_relative(c.total_relative)}"
    )
    return Group(table, footer)


class CompareScreen(LoadedView):
    """A compared with B, where A is the earlier checkpoint."""

    DEFAULT_CSS = """
    CompareScreen #compare-title { text-style: bold; }
    CompareScreen Static { width: 100%; height: auto; margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="compare.close")]

    def __init__(self, a: Path, b: Path) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.comparison: Any = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"A {self.a.name}  vs  B {self.b.name}   (esc closes)"), id="compare-title")
            with VerticalScroll():
                yield Static("loading both checkpoints ...", id="compare-sides")
                yield Static("", id="compare-changes")

    def load(self) -> Any:
        from tui_trainer.engine.tools.compare import compare_checkpoints  # imports torch

        return compare_checkpoints(self.a, self.b)

    def show_result(self, comparison: Any) -> None:
        self.comparison = comparison
        self.query_one("#compare-sides", Static).update(side_by_side(comparison))
        self.query_one("#compare-changes", Static).update(largest_changes(comparison))

    def show_problem(self, problem: str) -> None:
        self.query_one("#compare-sides", Static).update(Text(f"cannot compare: {problem}", style="bold red"))
