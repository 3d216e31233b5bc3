"""The loss curves of the runs marked on the runs screen, overlaid on one chart.

Each run's `history.jsonl` is read in a thread worker and reduced at once to a few thousand
points (min and max per bucket kept), so even week-long runs cost little to hold and redraw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Label
from textual.worker import get_current_worker

from tui_trainer.tui.chart_data import downsample_minmax
from tui_trainer.tui.error_text import describe_error
from tui_trainer.tui.screens.help_screen import HelpScreen, key_help
from tui_trainer.tui.widgets.overlay_chart import Curve, OverlayChart

KEPT_BUCKETS = 2000  # per curve, before the chart downsamples again to its width
TRAIN, VAL = "train loss", "val loss"


def load_curves(runs: list[tuple[str, Path]]) -> dict[str, list[Curve]]:
    """Train and val curves of each run, keyed by TRAIN and VAL, in the order given."""
    from tui_trainer.engine.rundir.history_index import read_curves

    curves: dict[str, list[Curve]] = {TRAIN: [], VAL: []}
    for label, run_dir in runs:
        history = read_curves(run_dir)  # from the history's index: a long run costs no parse
        pairs = ((TRAIN, history.steps, history.losses), (VAL, history.val_steps, history.val_losses))
        for what, steps, values in pairs:
            x, y = downsample_minmax(steps, values, KEPT_BUCKETS)
            curves[what].append(Curve(label, np.asarray(x), np.asarray(y)))
    return curves


class OverlayScreen(Screen[None]):
    DEFAULT_CSS = """
    OverlayScreen #overlay-title { height: 1; padding: 0 1; color: $text-muted; }
    OverlayScreen OverlayChart { border: round $primary-darken-2; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the runs", id="overlay.close"),
        Binding("v", "toggle_val", "Train/val", tooltip="Overlay: switch between train and val loss",
                id="overlay.toggle_val"),
        Binding("question_mark", "show_help", "Help", tooltip="Help: every key and what it does", id="overlay.help"),
    ]

    def __init__(self, runs: list[tuple[str, Path]]) -> None:
        super().__init__()
        self.runs = runs
        self.curves: dict[str, list[Curve]] | None = None
        self.what = TRAIN

    def compose(self) -> ComposeResult:
        names = ", ".join(name for name, _ in self.runs)
        yield Label(f"comparing {len(self.runs)} runs: {names}  (reading their histories ...)", id="overlay-title")
        yield OverlayChart(id="overlay-chart")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load(self) -> None:
        try:
            curves, problem = load_curves(self.runs), None
        except Exception as exc:  # a history unreadable (permissions, a vanished run): said, not raised
            curves, problem = None, describe_error(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._loaded, curves, problem)

    def _loaded(self, curves: dict[str, list[Curve]] | None, problem: str | None) -> None:
        title = self.query_one("#overlay-title", Label)
        if curves is None:
            title.update(f"could not read the histories: {problem}")
            return
        self.curves = curves
        title.update(f"comparing {len(self.runs)} runs; v switches train / val loss, esc goes back")
        self._show()

    def _show(self) -> None:
        if self.curves is not None:
            self.query_one(OverlayChart).show(self.curves[self.what], self.what)

    def action_toggle_val(self) -> None:
        self.what = VAL if self.what == TRAIN else TRAIN
        self._show()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_show_help(self) -> None:
        self.app.push_screen(HelpScreen(key_help(self.app, self)))
