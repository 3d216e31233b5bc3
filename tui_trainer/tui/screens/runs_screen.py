"""Every run under the checkpoints root, side by side: state, last step, best val loss, size, and the total.

Enter opens a run (the live one: back to its dashboard; another: a read-only view that follows
it), space marks runs and `v` overlays their loss curves, `x` prunes across runs with a preview.
The list is re-read every few seconds on a thread worker: runs appear, train and finish on
their own, and a listing reads only small files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label
from textual.worker import get_current_worker

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.rundir.runs_index import RunsIndex, RunSummary
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.tui.error_text import describe_error
from tui_trainer.tui.screens.help_screen import HelpScreen, key_help
from tui_trainer.tui.screens.overlay_screen import OverlayScreen
from tui_trainer.tui.screens.prune_modal import PruneRequest
from tui_trainer.tui.screens.run_view_screen import RunViewScreen
from tui_trainer.tui.screens.runs_prune_modal import RunsPruneScreen
from tui_trainer.tui.widgets.runs_table import RunsTable, run_rows

RESCAN_S = 3.0


def total_line(index: RunsIndex) -> str:
    line = f"{index.total()} in all"
    if index.problems:
        line += f"; {len(index.problems)} unreadable: " + "; ".join(index.problems)
    return line


class RunsScreen(Screen[None]):
    DEFAULT_CSS = """
    RunsScreen #runs-title, RunsScreen #runs-total { width: 100%; height: auto; padding: 0 1; }
    RunsScreen #runs-title { color: $text-muted; }
    RunsScreen #runs-total { text-style: bold; }
    RunsScreen RunsTable { border: round $primary-darken-2; }
    """
    BINDINGS = [
        Binding("enter", "open_run", "Open", tooltip="Runs: open the selected run", id="runs.open"),
        Binding("space", "toggle_mark", "Mark", tooltip="Runs: mark or unmark the selected run for the overlay",
                id="runs.mark"),
        Binding("v", "overlay", "Overlay", tooltip="Runs: overlay the loss curves of the marked runs",
                id="runs.overlay"),
        Binding("x", "prune_runs", "Prune all", tooltip="Runs: prune old checkpoints across runs (shows what first)",
                id="runs.prune"),
        Binding("escape", "close", "Back", tooltip="Runs: back to the dashboard", id="runs.close"),
        Binding("question_mark", "show_help", "Help", tooltip="Help: every key and what it does", id="runs.help"),
    ]

    def __init__(self, root: str | Path, live_run: str | Path | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        self.live_run = Path(live_run) if live_run is not None else None
        self.index: RunsIndex | None = None
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Label(f"runs under {self.root}   enter opens · space marks · v overlays marked · x prunes · esc back",
                    id="runs-title")
        yield RunsTable(id="runs-table")
        yield Label("reading the runs ...", id="runs-total")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunsTable).focus()
        self.rescan()
        self.set_interval(RESCAN_S, self.rescan)

    # --- listing --------------------------------------------------------------------------------

    def rescan(self) -> None:
        self._scan()

    @work(thread=True, exclusive=True, group="runs-scan", exit_on_error=False)
    def _scan(self) -> None:
        from tui_trainer.engine.rundir.runs_index import list_runs

        try:
            index, problem = list_runs(self.root), None
        except Exception as exc:  # the root removed or unreadable: said on the screen
            index, problem = None, describe_error(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_index, index, problem)

    def _show_index(self, index: RunsIndex | None, problem: str | None) -> None:
        if not self.is_mounted:
            return
        total = self.query_one("#runs-total", Label)
        if index is None:
            total.update(f"cannot list the runs: {problem}")
            return
        self.index = index
        self.marked &= {r.name for r in index.runs}
        self._show_rows()
        total.update(total_line(index))

    def _show_rows(self) -> None:
        if self.index is None:
            return
        live = self.index.find(self.live_run) if self.live_run is not None else None
        self.query_one(RunsTable).show_rows(run_rows(self.index.runs, self.marked, live.name if live else None))

    def _selected(self, what: str) -> RunSummary | None:
        name = self.query_one(RunsTable).selected_name
        run = next((r for r in self.index.runs if r.name == name), None) if self.index else None
        if run is None:
            self.notify(f"no run selected to {what}", severity="warning", timeout=3)
        return run

    # --- keys -----------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def action_open_run(self) -> None:
        run = self._selected("open")
        if run is None:
            return
        if self.live_run is not None and self.index is not None and self.index.find(self.live_run) is run:
            self.dismiss(None)  # the dashboard under this screen is that run
        else:
            self.app.push_screen(RunViewScreen(run.path))

    def action_toggle_mark(self) -> None:
        run = self._selected("mark")
        if run is not None:
            self.marked ^= {run.name}
            self._show_rows()

    def action_overlay(self) -> None:
        if self.index is None:
            return
        runs = [(r.name, r.path) for r in self.index.runs if r.name in self.marked]
        if not runs:
            self.notify("mark the runs to compare with space first", severity="warning", timeout=4)
            return
        self.app.push_screen(OverlayScreen(runs))

    def action_prune_runs(self) -> None:
        self.app.push_screen(RunsPruneScreen(self.root, CheckpointPolicy().keep_last), self._prune_chosen)

    def _prune_chosen(self, request: PruneRequest | None) -> None:
        if request is not None and request.names:
            self._prune(request)

    @work(thread=True, exclusive=True, group="runs-prune", exit_on_error=False)
    def _prune(self, request: PruneRequest) -> None:
        from tui_trainer.engine.rundir.runs_index import list_runs
        from tui_trainer.engine.rundir.runs_prune import prune_runs

        try:
            result: Any = prune_runs(list_runs(self.root), request.keep_last, request.names)
            problem = None
        except Exception as exc:
            result, problem = None, describe_error(exc)
        self.app.call_from_thread(self._pruned, result, problem)

    def _pruned(self, result: Any, problem: str | None) -> None:
        if result is None:
            self.notify(f"could not prune: {problem}", severity="error", timeout=6)
        elif result.deleted:
            self.notify(f"pruned {counted(len(result.deleted), 'checkpoint')}, freed {human_bytes(result.freed_bytes)}: "
                        + ", ".join(result.deleted), timeout=6)
        else:
            self.notify("prune: nothing left to delete", timeout=4)
        for run, why in result.skipped if result is not None else ():
            self.notify(f"{run} left alone: {why}", severity="warning", timeout=6)
        for note in result.notes if result is not None else ():
            self.notify(note, severity="warning", timeout=6)
        if self.is_mounted:
            self.rescan()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_show_help(self) -> None:
        self.app.push_screen(HelpScreen(key_help(self.app, self)))
