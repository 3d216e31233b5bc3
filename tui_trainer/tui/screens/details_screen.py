"""Everything known about one checkpoint: metadata, marks, tensors, config and data position.

`inspect_checkpoint` loads the file (torch) and checks its checksum, so it runs in a thread
worker; the screen says so until the details arrive.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.tui.screens.loaded_view import LoadedView

TENSORS_SHOWN = 12
PARTS = (("data", "data position"), ("target", "target"), ("job", "job"), ("job_options", "job options"),
         ("config", "config"))


def load_details(run_dir: str | Path, name: str) -> Any:
    """Run on a worker thread: the checkpoint's marks from the listing, then the file itself."""
    from tui_trainer.engine.rundir.layout import store_for
    from tui_trainer.engine.tools.inspect import inspect_checkpoint  # imports torch

    stored = store_for(run_dir).get(name)
    return inspect_checkpoint(stored.path, marks=stored.marks)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


def _section(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, title=title, title_justify="left",
                  title_style="bold")
    table.add_column("field", style="dim", no_wrap=True)
    table.add_column("value")
    for label, value in rows:
        table.add_row(label, value)
    return table


def details_sections(d: Any) -> list[Table]:
    m = d.meta
    meta_rows = [
        ("file", f"{d.path.name} ({'tui-trainer' if d.own_format else 'foreign'}, {human_bytes(d.size_bytes)})"),
        ("marks", ", ".join(d.marks) or "-"),
        ("step", _value(m.step if m.step >= 0 else None)),
        ("epoch", _value(m.epoch)),
        ("kind", m.kind),
        ("pinned", "yes" if m.pinned else "no"),
        ("train loss", _value(m.train_loss)),
    ]
    for metric, value in sorted(m.metrics.items()):
        stale = m.metric(metric) is None
        meta_rows.append((metric.replace("_", " "), _value(value) + (f" (at step {m.metrics_step})" if stale else "")))
    meta_rows += [("created", m.created or "-"), ("run", m.run_id or "-"),
                  ("sidecar", d.sidecar if d.checksum is None else f"{d.sidecar}, checksum {d.checksum}")]
    meta_rows += [("", f"differs from the file: {diff}") for diff in d.sidecar_differences]

    w = d.weights
    dtypes = ", ".join(f"{name} x{count}" for name, count in w.dtypes.items()) or "-"
    tensor_rows = [("weights", f"{w.tensors} tensors, {w.parameters:,} parameters, {human_bytes(w.bytes)}"),
                   ("dtypes", dtypes)]
    if w.shared_keys:
        tensor_rows.append(("tied", ", ".join(w.shared_keys)))
    largest = sorted(d.tensor_shapes, key=lambda t: -math.prod(t[1]))[:TENSORS_SHOWN]
    tensor_rows += [("", f"{key}  {list(shape)}  {dtype}") for key, shape, dtype in largest]
    if len(d.tensor_shapes) > TENSORS_SHOWN:
        tensor_rows.append(("", f"... and {len(d.tensor_shapes) - TENSORS_SHOWN} smaller tensors"))
    if d.optimizer:
        o = d.optimizer
        lrs = ", ".join(f"{lr:g}" if isinstance(lr, float) else str(lr) for lr in o["lr"]) or "-"
        slots = f" ({', '.join(o['state_slots'])})" if o["state_slots"] else ""
        tensor_rows.append(("optimizer", f"{counted(o['param_groups'], 'param group')}, lr {lrs}, "
                                         f"state for {o['parameters_with_state']} tensors{slots}"))

    run_rows = []
    for key, label in PARTS:
        if key in d.parts:
            value = d.parts[key]
            run_rows.append((label, value if isinstance(value, str) else json.dumps(value, sort_keys=True, indent=1)))
    if d.rng_streams:
        run_rows.append(("rng", ", ".join(d.rng_streams)))
    if not run_rows:
        run_rows.append(("", "no config or data position recorded in this file"))
    return [_section("checkpoint", meta_rows), _section("tensors", tensor_rows),
            _section("config and data position", run_rows)]


class DetailsScreen(LoadedView):
    DEFAULT_CSS = """
    DetailsScreen #details-title { text-style: bold; }
    DetailsScreen #details-body { width: 100%; height: auto; }
    """
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="details.close")]

    def __init__(self, run_dir: str | Path, name: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.name_ = name
        self.details: Any = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"{self.name_}   (esc closes)"), id="details-title")
            with VerticalScroll():
                yield Static("loading the checkpoint ...", id="details-body")

    def load(self) -> Any:
        return load_details(self.run_dir, self.name_)

    def show_result(self, details: Any) -> None:
        self.details = details
        self.query_one("#details-body", Static).update(
            Group(*(item for table in details_sections(details) for item in (table, Text(""))))
        )

    def show_problem(self, problem: str) -> None:
        self.query_one("#details-body", Static).update(Text(f"cannot read {self.name_}: {problem}", style="bold red"))