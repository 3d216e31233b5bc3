"""The loss chart: train and val loss on one axes, drawn through `loss_plot` (textual-plot).

Checkpoints are marked on the curve and the run's events along the top edge (`chart_markers`);
the caption says in words how the chart is drawn (smoothing, y range, log scale, window) and
fits its width by shortening or leaving out whole parts, never cutting one.

It is handed `LossSeries` and draws a downsampled copy (about two points per column, min and
max kept), at most every `REDRAW_INTERVAL_S` (2.5 s): each redraw sends ~10 KB to the terminal, which
matters over SSH. The plot itself is mounted right after the first frame, with its imports
(textual-plot and numpy, ~0.1 s): until then a placeholder stands in its place.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from tui_trainer.tui.chart_data import (
    EMA_WEIGHT,
    Y_AUTO,
    LossSeries,
    downsample_minmax,
    format_loss,
    format_step,
    in_window,
    next_smoothing,
    next_window,
    next_y_mode,
    robust_applies,
    y_limits,
    y_range_words,
)
from tui_trainer.tui.chart_markers import DRAW_ORDER, ChartMarker, legend
from tui_trainer.tui.widgets.live_text import show_text

if TYPE_CHECKING:
    import numpy as np

    from tui_trainer.tui.widgets.loss_plot import QuietPlot

REDRAW_INTERVAL_S = 2.5
MIN_BUCKETS = 8
VAL_MARKER = "o"  # ASCII, so train (a line) and val (dots) differ on any terminal, colour or not


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
        text-wrap: nowrap;
    }
    LossChart QuietPlot { height: 1fr; }
    LossChart #chart-placeholder {
        height: 1fr;
        content-align: center middle;
        color: $text-muted;
    }
    LossChart > .loss-chart--train { color: $primary; }
    LossChart > .loss-chart--raw { color: $text-disabled; }
    LossChart > .loss-chart--val { color: $warning; }
    LossChart > .loss-chart--checkpoint { color: $success; text-style: bold; }
    LossChart > .loss-chart--event { color: $error; text-style: bold; }
    """
    COMPONENT_CLASSES = {"loss-chart--train", "loss-chart--raw", "loss-chart--val", "loss-chart--checkpoint",
                         "loss-chart--event"}

    log_scale: reactive[bool] = reactive(False, init=False)
    smoothing: reactive[float] = reactive(0.0, init=False)  # the EMA weight; 0: the raw curve alone
    y_range: reactive[str] = reactive(Y_AUTO, init=False)  # auto, all or robust (`chart_data.Y_MODES`)
    window: reactive[int | None] = reactive(None, init=False)  # last N steps; None: the whole run

    def __init__(self, train: LossSeries, val: LossSeries, markers: list[ChartMarker] | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.train = train
        self.val = val
        self.metric = "val_loss"  # what `val` holds: the run's monitored metric
        self.events = markers if markers is not None else []  # the run's events, appended to by its model
        self.checkpoint_marks: tuple[ChartMarker, ...] = ()  # set from the checkpoint listing
        self.last_smoothing = EMA_WEIGHT  # what `m` turns smoothing back on to
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = 0.0
        self.redraws = 0
        self.drawn_x_range: tuple[float, float] | None = None  # steps on the x axis at the last redraw
        self.drawn_y_range: tuple[float, float] | None = None  # as plotted (log10 on a log scale)
        self.drawn_markers: list[tuple[ChartMarker, int, int]] = []  # (marker, column, row) in the plot area
        self.robust_now = False  # whether the y range leaves the early fall out at the last redraw
        self.plot: QuietPlot | None = None  # mounted after the first frame

    def compose(self) -> ComposeResult:
        yield Static(self._caption(), id="chart-caption")
        yield Static("loading chart...", id="chart-placeholder")

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_plot)

    async def _mount_plot(self) -> None:
        from tui_trainer.tui.widgets.loss_plot import QuietPlot, StepAxisFormatter

        plot = QuietPlot(allow_pan_and_zoom=False)
        plot.set_x_formatter(StepAxisFormatter())
        self.plot = plot
        self._apply_y_formatter()
        await self.query_one("#chart-placeholder").remove()
        await self.mount(plot)
        self.call_after_refresh(self.redraw, force=True)  # once the plot has its size

    def on_resize(self) -> None:
        self.redraw(force=True)
        show_text(self.query_one("#chart-caption", Static), self._caption())

    def watch_log_scale(self) -> None:
        self._apply_y_formatter()
        self.redraw(force=True)

    def watch_smoothing(self, weight: float) -> None:
        if weight:
            self.last_smoothing = weight
            self.train.reweight(weight)
        self.redraw(force=True)

    def watch_y_range(self) -> None:
        self.redraw(force=True)

    def watch_window(self) -> None:
        self.redraw(force=True)

    # --- what the keys do -------------------------------------------------------------------

    def toggle_smoothing(self) -> None:
        self.smoothing = 0.0 if self.smoothing else self.last_smoothing

    def adjust_smoothing(self, step: int) -> None:
        """One level more (+1) or less (-1) smoothing; below the lowest level it is off."""
        self.smoothing = next_smoothing(self.smoothing, step)

    def cycle_y_range(self) -> None:
        self.y_range = next_y_mode(self.y_range)

    def cycle_window(self) -> None:
        """Whole run -> last 10k -> last 1k -> ... -> whole run, offering only windows shorter than the run."""
        steps = self.train.steps
        span = steps[-1] - steps[0] if len(steps) else 0.0
        self.window = next_window(self.window, span)

    def show_checkpoints(self, marks: list[ChartMarker]) -> None:
        """The checkpoints' markers, from the table's listing; drawn with the next redraw that is due."""
        marks_now = tuple(marks)
        if marks_now != self.checkpoint_marks:
            self.checkpoint_marks = marks_now
            self.redraw()

    # --- drawing ----------------------------------------------------------------------------

    def redraw(self, force: bool = False) -> bool:
        """Redraw if the data, the options or the size changed, and the last redraw is old enough."""
        plot = self.plot
        if plot is None or not plot.is_mounted:
            return False
        width = plot.size.width - plot.margin_left
        key = (self.train.version, self.val.version, self.metric, width, plot.size.height, self.log_scale,
               self.smoothing, self.y_range, self.window, len(self.events), self.checkpoint_marks)
        if width <= 0 or key == self._drawn:
            return False
        now = time.monotonic()
        first_data = self.drawn_x_range is None and len(self.train) > 0  # an empty chart waits for nothing
        if not force and not first_data and now - self._last_draw < REDRAW_INTERVAL_S:
            return False
        self._drawn, self._last_draw = key, now
        self._draw(plot, max(MIN_BUCKETS, width))
        plot.draw_now()
        show_text(self.query_one("#chart-caption", Static), self._caption())
        self.redraws += 1
        return True

    def _draw(self, plot: QuietPlot, buckets: int) -> None:
        import numpy as np

        from tui_trainer.tui.widgets.loss_plot import HiResMode

        plot.clear()
        self.drawn_markers = []
        steps = self.train.steps
        if not len(steps):
            return
        first, _ = in_window(steps, steps, self.window, steps[-1])
        x_range = self.drawn_x_range = (float(first[0]), float(steps[-1]))
        raw = self._prepared(self.train.steps, self.train.values, buckets)
        curve = self._prepared(self.train.steps, self.train.smoothed, buckets) if self.smoothing else raw
        val = self._prepared(self.val.steps, self.val.values, buckets)
        in_view = len(in_window(steps, steps, self.window, steps[-1])[0])
        self.robust_now = robust_applies(self.y_range, in_view)
        limits = y_limits(np.concatenate([curve[1], val[1]]), self.robust_now)
        if limits is None:
            return
        low, high = limits
        if not self.robust_now:  # the raw curve under the smoothed one is in view too
            low, high = y_limits(np.concatenate([raw[1], val[1]]), False) or limits
        self.drawn_y_range = (low, high)
        top = high - (high - low) * 1e-3  # y_max itself maps just above the plot's top row
        plot.set_xlimits(*x_range if x_range[1] > x_range[0] else (x_range[0] - 1, x_range[1] + 1))
        plot.set_ylimits(low, high)
        train_style = str(self.get_component_rich_style("loss-chart--train"))
        if self.smoothing and len(raw[0]):
            plot.plot(raw[0], np.clip(raw[1], low, top), hires_mode=HiResMode.BRAILLE,
                      line_style=str(self.get_component_rich_style("loss-chart--raw")))
        if len(curve[0]):
            plot.plot(curve[0], np.clip(curve[1], low, top), line_style=train_style, hires_mode=HiResMode.BRAILLE)
        if len(val[0]):
            plot.scatter(val[0], np.clip(val[1], low, top), marker=VAL_MARKER,
                         marker_style=str(self.get_component_rich_style("loss-chart--val")))
        self._draw_markers(plot, x_range, (low, top), curve)

    def _draw_markers(self, plot: QuietPlot, x_range: tuple[float, float], y_range: tuple[float, float],
                      curve: tuple[np.ndarray, np.ndarray]) -> None:
        """Checkpoints on the curve (at its value there), events along the top edge."""
        import numpy as np

        low, high = y_range
        on_curve = [(m, float(np.interp(m.step, *curve))) for m in self.checkpoint_marks if len(curve[0])]
        on_top = sorted(((m, high) for m in self.events), key=lambda placed: DRAW_ORDER.index(placed[0].kind))
        for placed, style in ((on_curve, "loss-chart--checkpoint"), (on_top, "loss-chart--event")):
            for marker, y in placed:
                if not x_range[0] <= marker.step <= x_range[1]:
                    continue
                y = min(max(y, low), high)
                plot.scatter([marker.step], [y], marker=marker.glyph,
                             marker_style=str(self.get_component_rich_style(style)))
                self.drawn_markers.append((marker, *plot.get_pixel_from_coordinate(marker.step, y)))

    def _prepared(self, steps: Sequence[float], values: Sequence[float], buckets: int) -> tuple[np.ndarray, np.ndarray]:
        last = self.train.steps[-1] if len(self.train.steps) else None
        x, y = downsample_minmax(*in_window(steps, values, self.window, last), buckets)
        if self.log_scale:
            import numpy as np
            positive = y > 0
            x, y = x[positive], np.log10(y[positive])
        return x, y

    def _apply_y_formatter(self) -> None:
        from tui_trainer.tui.widgets.loss_plot import LinearAxisFormatter, LogAxisFormatter

        if self.plot is not None:
            self.plot.set_y_formatter(LogAxisFormatter() if self.log_scale else LinearAxisFormatter())

    # --- the caption ------------------------------------------------------------------------

    def caption_parts(self) -> list[tuple[int, str, str]]:
        """(importance, long words, short words) in display order; 0 is kept however narrow."""
        label = "val" if self.metric == "val_loss" else self.metric
        parts = [(6, "loss", ""), (0, f"── train {format_loss(self.train.last)}", f"── {format_loss(self.train.last)}"),
                 (1, f"{VAL_MARKER} {label} {format_loss(self.val.last)}", f"{VAL_MARKER} {format_loss(self.val.last)}")]
        if not len(self.train):
            parts.append((2, "waiting for the first step", "waiting"))
        if self.smoothing:
            parts.append((2, f"smoothed: EMA {self.smoothing:g}", f"EMA {self.smoothing:g}"))
        robust = self.robust_now if self.drawn_y_range is not None else self.y_range == "robust"
        parts.append((3, y_range_words(self.y_range, robust), y_range_words(self.y_range, robust, short=True)))
        if self.log_scale:
            parts.append((4, "log scale", "log"))
        if self.window is not None:
            parts.append((5, f"last {format_step(self.window)} steps", f"last {format_step(self.window)}"))
        kinds = {m.kind for m in (*self.checkpoint_marks, *self.events)}
        if kinds:
            parts.append((7, legend(kinds), ""))
        return parts

    def _caption(self) -> str:
        room = self.query_one("#chart-caption", Static).content_size.width if self.is_mounted else 0
        return fit_caption(self.caption_parts(), room or None)


CAPTION_SEPARATORS = ("   ", "  ")
# Parts at or above this importance (the word "loss", the markers' legend) go before any
# part is shortened.
DROPPED_FIRST = 6


def fit_caption(parts: list[tuple[int, str, str]], width: int | None) -> str:
    """The caption's parts within `width`: in long words if they fit; else without the legend;
    else in short words, leaving out the least important parts whole. Nothing is cut mid-word."""
    if width is None:
        return CAPTION_SEPARATORS[0].join(text for _, text, _ in parts if text)
    importances = sorted({importance for importance, _, _ in parts}, reverse=True)
    tries = [(limit, 1) for limit in importances if limit >= DROPPED_FIRST] + [(DROPPED_FIRST - 1, 1)]
    tries += [(limit, 2) for limit in importances]
    for limit, form in tries:
        for separator in CAPTION_SEPARATORS:
            shown = separator.join(part[form] for part in parts if part[0] <= limit and part[form])
            if len(shown) <= width:
                return shown
    return "  ".join(part[2] for part in parts if part[0] == 0)
