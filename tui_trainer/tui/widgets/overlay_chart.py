"""Loss curves of several runs on one axes, to decide which run to keep.

It draws through the loss chart's plotting adapter, downsampled the same way (about two points
per column, min and max kept). Each run gets its own colour and its own marker, repeated along
its line and shown in the legend, so the curves tell apart on a monochrome terminal too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui_trainer.tui.chart_data import downsample_minmax, format_loss
from tui_trainer.tui.widgets.loss_chart import MIN_BUCKETS
from tui_trainer.tui.widgets.loss_plot import HiResMode, LinearAxisFormatter, QuietPlot, StepAxisFormatter

MARKERS = ("o", "x", "+", "*", "#", "@", "%", "&")
MARKS_PER_CURVE = 8
COLOUR_CLASSES = tuple(f"overlay-chart--series-{i}" for i in range(6))


@dataclass(frozen=True)
class Curve:
    """One run's curve: its name and (step, loss) points, already at most a few thousand."""

    label: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def last(self) -> float | None:
        finite = self.values[np.isfinite(self.values)]
        return float(finite[-1]) if len(finite) else None


def marker_points(x: np.ndarray, y: np.ndarray, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """About `MARKS_PER_CURVE` points along one curve, shifted per curve so markers do not stack."""
    if len(x) == 0:
        return x, y
    spacing = max(1, len(x) // MARKS_PER_CURVE)
    start = (index * spacing // max(1, count)) % spacing
    return x[start::spacing], y[start::spacing]


class OverlayChart(Vertical):
    DEFAULT_CSS = """
    OverlayChart { height: 1fr; min-height: 6; }
    OverlayChart #overlay-legend { height: auto; padding: 0 1; }
    OverlayChart QuietPlot { height: 1fr; }
    OverlayChart > .overlay-chart--series-0 { color: $primary; }
    OverlayChart > .overlay-chart--series-1 { color: $warning; }
    OverlayChart > .overlay-chart--series-2 { color: $success; }
    OverlayChart > .overlay-chart--series-3 { color: $error; }
    OverlayChart > .overlay-chart--series-4 { color: $accent; }
    OverlayChart > .overlay-chart--series-5 { color: $secondary; }
    """
    COMPONENT_CLASSES = set(COLOUR_CLASSES)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.curves: list[Curve] = []
        self.what = "loss"
        self.drawn_series = 0  # curves drawn at the last redraw, for the tests and the legend

    def compose(self) -> ComposeResult:
        yield Static("", id="overlay-legend")
        yield QuietPlot(allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        plot = self.query_one(QuietPlot)
        plot.set_x_formatter(StepAxisFormatter())
        plot.set_y_formatter(LinearAxisFormatter())

    def on_resize(self) -> None:
        self.redraw()

    def show(self, curves: list[Curve], what: str) -> None:
        self.curves, self.what = curves, what
        self.redraw()

    def redraw(self) -> None:
        plot = self.query_one(QuietPlot)
        buckets = max(MIN_BUCKETS, plot.size.width - plot.margin_left)
        plot.clear()
        drawn = 0
        for index, curve in enumerate(self.curves):
            x, y = downsample_minmax(curve.steps, curve.values, buckets)
            if not len(x):
                continue
            style = self._style(index)
            plot.plot(x, y, line_style=style, hires_mode=HiResMode.BRAILLE)
            mx, my = marker_points(x, y, index, len(self.curves))
            plot.scatter(mx, my, marker=MARKERS[index % len(MARKERS)], marker_style=style)
            drawn += 1
        self.drawn_series = drawn
        self.query_one("#overlay-legend", Static).update(self.legend())

    def legend(self) -> Text:
        text = Text(f"{self.what}   ")
        for index, curve in enumerate(self.curves):
            entry = f"─{MARKERS[index % len(MARKERS)]}─ {curve.label} {format_loss(curve.last)}"
            if not len(curve.steps):
                entry += " (no data)"
            text.append(entry, style=self._style(index))
            text.append("   ")
        return text

    def _style(self, index: int) -> str:
        return str(self.get_component_rich_style(COLOUR_CLASSES[index % len(COLOUR_CLASSES)]))
