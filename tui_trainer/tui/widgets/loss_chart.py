"""The loss chart: train and val loss on one axes, drawn through `loss_plot` (textual-plot).

It is handed `LossSeries` and draws a downsampled copy (about two points per column, min and
max kept), at most every `REDRAW_INTERVAL_S`: each redraw sends ~20 KB to the terminal, which
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

from tui_trainer.tui.chart_data import LossSeries, downsample_minmax, format_loss, format_step, in_window, next_window
from tui_trainer.tui.widgets.live_text import show_text

if TYPE_CHECKING:
    import numpy as np

    from tui_trainer.tui.widgets.loss_plot import QuietPlot

REDRAW_INTERVAL_S = 2.0
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
    """
    COMPONENT_CLASSES = {"loss-chart--train", "loss-chart--raw", "loss-chart--val"}

    log_scale: reactive[bool] = reactive(False, init=False)
    smoothing: reactive[bool] = reactive(False, init=False)
    window: reactive[int | None] = reactive(None, init=False)  # last N steps; None: the whole run

    def __init__(self, train: LossSeries, val: LossSeries, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.train = train
        self.val = val
        self.metric = "val_loss"  # what `val` holds: the run's monitored metric
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = 0.0
        self.redraws = 0
        self.drawn_x_range: tuple[float, float] | None = None  # steps on the x axis at the last redraw
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
        plot = self.plot
        if plot is None or not plot.is_mounted:
            return False
        width = plot.size.width - plot.margin_left
        key = (self.train.version, self.val.version, self.metric, width, plot.size.height, self.log_scale, self.smoothing,
               self.window)
        if width <= 0 or key == self._drawn:
            return False
        now = time.monotonic()
        first_data = self.drawn_x_range is None and len(self.train) > 0  # an empty chart waits for nothing
        if not force and not first_data and now - self._last_draw < REDRAW_INTERVAL_S:
            return False
        self._drawn, self._last_draw = key, now
        self._draw(plot, max(MIN_BUCKETS, width))
        show_text(self.query_one("#chart-caption", Static), self._caption())
        self.redraws += 1
        return True

    def _draw(self, plot: QuietPlot, buckets: int) -> None:
        from tui_trainer.tui.widgets.loss_plot import HiResMode

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
            import numpy as np
            positive = y > 0
            x, y = x[positive], np.log10(y[positive])
        return x, y

    def _apply_y_formatter(self) -> None:
        from tui_trainer.tui.widgets.loss_plot import LinearAxisFormatter, LogAxisFormatter

        if self.plot is not None:
            self.plot.set_y_formatter(LogAxisFormatter() if self.log_scale else LinearAxisFormatter())

    def _caption(self) -> str:
        last = self.train.last
        val = self.val.last
        label = "val" if self.metric == "val_loss" else self.metric
        parts = ["loss", f"── train {format_loss(last)}", f"{VAL_MARKER} {label} {format_loss(val)}"]
        if self.log_scale:
            parts.append("log scale")
        if self.smoothing:
            parts.append("smoothed (EMA)")
        if self.window is not None:
            parts.append(f"last {format_step(self.window)} steps")
        if not len(self.train):
            parts.append("waiting for the first step")
        return "   ".join(parts)
