"""The loss chart: train and val loss on one axes, behind a small adapter over textual-plot.

Only this module knows the plotting library. It is handed `LossSeries` and draws a downsampled
copy (about two points per column, min and max kept), at most every `REDRAW_INTERVAL_S`:
each redraw sends ~20 KB to the terminal, which matters over SSH.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import Static
from textual_hires_canvas import Canvas
from textual_plot import HiResMode, PlotWidget
from textual_plot.plot_widget import Legend
from textual_plot.axis_formatter import AxisFormatter

from tui_trainer.tui.chart_data import (
    LossSeries,
    downsample_minmax,
    format_step,
    format_tick,
    in_window,
    linear_ticks,
    log_ticks,
    next_window,
)
from tui_trainer.tui.widgets.live_text import show_text

REDRAW_INTERVAL_S = 2.0
MIN_BUCKETS = 8
VAL_MARKER = "o"  # ASCII, so train (a line) and val (dots) differ on any terminal, colour or not


class _Canvas(Canvas):
    """textual-hires-canvas's Canvas, minus the unstyled empty line that crashes `NO_COLOR=1`.

    Textual's monochrome filter reads `.color` of every segment's style; an empty canvas line
    comes back as a segment whose style is None.
    """

    def render_line(self, y: int) -> Strip:
        if not self._canvas_size.area or y >= self._canvas_size.height:
            return Strip.blank(0, self.rich_style)
        return super().render_line(y)


class _Plot(PlotWidget, can_focus=False, inherit_bindings=False):
    """textual-plot without focus or keys: focused, it would take r, +, - and the arrows.

    Its default margins (2 rows above, 3 below) leave few rows in a small panel; the caption
    above the chart replaces the axis labels.
    """

    margin_top = reactive(0)
    margin_bottom = reactive(1)
    margin_left = reactive(7)

    def compose(self) -> ComposeResult:
        with Grid():
            yield _Canvas(1, 1, id="margin-top")
            yield _Canvas(1, 1, id="margin-left")
            yield _Canvas(1, 1, id="plot")
            yield _Canvas(1, 1, id="margin-bottom")
        yield Legend(id="legend")


class LogAxisFormatter(AxisFormatter):
    """Ticks for values plotted as log10(y), labelled with y itself."""

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        return [math.log10(t) for t in log_ticks(10.0**min_, 10.0**max_, max_ticks)]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [format_tick(10.0**t) for t in ticks]


class LinearAxisFormatter(AxisFormatter):
    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        return linear_ticks(min_, max_, max_ticks)

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [format_tick(t) for t in ticks]


class StepAxisFormatter(LinearAxisFormatter):
    def get_ticks(self, min_: float, max_: float, max_ticks: int = 6) -> list[float]:
        return [t for t in linear_ticks(min_, max_, max_ticks) if t == int(t)]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [format_step(t) for t in ticks]


class LossChart(Vertical):
    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
    }
    LossChart #chart-caption {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    LossChart _Plot { height: 1fr; }
    LossChart > .loss-chart--train { color: $primary; }
    LossChart > .loss-chart--raw { color: $text-disabled; }
    LossChart > .loss-chart--val { color: $warning; }
    """
    COMPONENT_CLASSES = {"loss-chart--train", "loss-chart--raw", "loss-chart--val"}

    log_scale: reactive[bool] = reactive(False, init=False)
    smoothing: reactive[bool] = reactive(False, init=False)
    window: reactive[int | None] = reactive(None, init=False)  # last N steps; None: the whole run

    def __init__(self, train: LossSeries, val: LossSeries, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.train = train
        self.val = val
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = 0.0
        self.redraws = 0
        self.drawn_x_range: tuple[float, float] | None = None  # steps on the x axis at the last redraw

    def compose(self) -> ComposeResult:
        yield Static(self._caption(), id="chart-caption")
        yield _Plot(allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        self.query_one(_Plot).set_x_formatter(StepAxisFormatter())
        self._apply_y_formatter()

    def on_resize(self) -> None:
        self.redraw(force=True)

    def watch_log_scale(self) -> None:
        self._apply_y_formatter()
        self.redraw(force=True)

    def watch_smoothing(self) -> None:
        self.redraw(force=True)

    def watch_window(self) -> None:
        self.redraw(force=True)

    def cycle_window(self) -> None:
        """Whole run -> last 10k -> last 1k -> ... -> whole run, offering only windows shorter than the run."""
        steps = self.train.steps
        span = steps[-1] - steps[0] if len(steps) else 0.0
        self.window = next_window(self.window, span)

    def redraw(self, force: bool = False) -> bool:
        """Redraw if the data or the size changed, and the last redraw is old enough."""
        plot = self.query_one(_Plot)
        width = plot.size.width - plot.margin_left
        key = (self.train.version, self.val.version, width, plot.size.height, self.log_scale, self.smoothing,
               self.window)
        if width <= 0 or key == self._drawn:
            return False
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_INTERVAL_S:
            return False
        self._drawn, self._last_draw = key, now
        self._draw(plot, max(MIN_BUCKETS, width))
        show_text(self.query_one("#chart-caption", Static), self._caption())
        self.redraws += 1
        return True

    def _draw(self, plot: PlotWidget, buckets: int) -> None:
        plot.clear()
        steps = self.train.steps
        if len(steps):
            first, _ = in_window(steps, steps, self.window, steps[-1])
            self.drawn_x_range = (float(first[0]), float(steps[-1]))
        train_style = str(self.get_component_rich_style("loss-chart--train"))
        if self.smoothing:
            x, y = self._prepared(self.train.steps, self.train.values, buckets)
            if len(x):
                plot.plot(x, y, line_style=str(self.get_component_rich_style("loss-chart--raw")),
                          hires_mode=HiResMode.BRAILLE)
            x, y = self._prepared(self.train.steps, self.train.smoothed, buckets)
        else:
            x, y = self._prepared(self.train.steps, self.train.values, buckets)
        if len(x):
            plot.plot(x, y, line_style=train_style, hires_mode=HiResMode.BRAILLE)
        x, y = self._prepared(self.val.steps, self.val.values, buckets)
        if len(x):
            plot.scatter(x, y, marker=VAL_MARKER, marker_style=str(self.get_component_rich_style("loss-chart--val")))

    def _prepared(self, steps: Sequence[float], values: Sequence[float], buckets: int) -> tuple[np.ndarray, np.ndarray]:
        last = self.train.steps[-1] if len(self.train.steps) else None
        x, y = downsample_minmax(*in_window(steps, values, self.window, last), buckets)
        if self.log_scale:
            positive = y > 0
            x, y = x[positive], np.log10(y[positive])
        return x, y

    def _apply_y_formatter(self) -> None:
        plot = self.query_one(_Plot)
        plot.set_y_formatter(LogAxisFormatter() if self.log_scale else LinearAxisFormatter())

    def _caption(self) -> str:
        last = self.train.last
        val = self.val.last
        parts = ["loss", f"── train {_fmt(last)}", f"{VAL_MARKER} val {_fmt(val)}"]
        if self.log_scale:
            parts.append("log scale")
        if self.smoothing:
            parts.append("smoothed (EMA)")
        if self.window is not None:
            parts.append(f"last {format_step(self.window)} steps")
        if not len(self.train):
            parts.append("waiting for the first step")
        return "   ".join(parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"
