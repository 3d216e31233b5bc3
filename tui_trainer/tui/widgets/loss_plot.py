"""The plotting adapter over textual-plot: a plot widget without keys, and its axis formatters.

Only this module imports textual-plot (and, through it, numpy). The loss chart mounts it after
the first frame has painted; the runs screen's overlay chart draws through it too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.app import ComposeResult
from textual.containers import Grid
from textual.reactive import reactive
from textual.strip import Strip
from textual_hires_canvas import Canvas
from textual_hires_canvas.hires import hires_sizes, pixels
from textual_plot import HiResMode, PlotWidget
from textual_plot.axis_formatter import AxisFormatter
from textual_plot.plot_widget import Legend

from tui_trainer.tui.chart_data import format_step, format_tick, linear_ticks, log_ticks

__all__ = ["HiResMode", "LinearAxisFormatter", "LogAxisFormatter", "QuietPlot", "StepAxisFormatter"]


class _Canvas(Canvas):
    """textual-hires-canvas's Canvas, minus the unstyled empty line that crashes `NO_COLOR=1`.

    Textual's monochrome filter reads `.color` of every segment's style; an empty canvas line
    comes back as a segment whose style is None.
    """

    _line_style: Style | None = None  # the widget's style, while one frame's lines are rendered

    @property
    def rich_style(self) -> Style:
        """The widget's style, once per frame: Textual derives it from every ancestor on each call,
        and the canvas asks for it on each of its lines (a fifth of a chart redraw's time)."""
        return self._line_style if self._line_style is not None else super().rich_style

    def render_lines(self, crop: Region) -> list[Strip]:
        self._line_style = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._line_style = None

    def set_hires_pixels(self, coordinates: Iterable[tuple[float, float]], hires_mode: HiResMode | None = None,
                         style: str = "white") -> None:
        """The library's `set_hires_pixels`, cell for cell, with numpy: each cell touched gets the
        glyph of the dots given to it in this call. Its loop over every dot in Python was most of
        a chart redraw (~3,000 dots a curve at 120x40), and a redraw is what a key like `l` waits for."""
        import numpy as np

        mode = hires_mode or self.default_hires_mode
        size = hires_sizes[mode]
        xy = np.asarray(list(coordinates), dtype=np.float64).reshape(-1, 2)
        region = self._canvas_region
        whole = np.floor(xy)
        xy = xy[(whole[:, 0] >= region.x) & (whole[:, 0] < region.right)
                & (whole[:, 1] >= region.y) & (whole[:, 1] < region.bottom)]
        if not len(xy):
            return
        hx = np.floor(xy[:, 0] * size.width).astype(np.int64)
        hy = np.floor(xy[:, 1] * size.height).astype(np.int64)
        cells_x, cells_y = hx // size.width, hy // size.height
        dots = np.left_shift(1, (hy % size.height) * size.width + hx % size.width)  # the cell's flat index
        cells, where = np.unique(cells_y * (region.right + 1) + cells_x, return_inverse=True)
        masks = np.zeros(len(cells), dtype=np.int64)
        np.bitwise_or.at(masks, where.ravel(), dots)
        glyphs = _glyphs(mode)
        width, height = region.width, region.height
        buffer, styles = self._buffer, self._styles
        for cell, mask in zip(cells.tolist(), masks.tolist()):
            y, x = divmod(cell, region.right + 1)
            glyph = glyphs[mask]
            if glyph and 0 <= x < width and 0 <= y < height:
                buffer[y][x] = glyph
                styles[y][x] = style
        self.refresh()

    def render_line(self, y: int) -> Strip:
        if not self._canvas_size.area or y >= self._canvas_size.height:
            return Strip.blank(0, self.rich_style)
        return Strip(merge_blanks(super().render_line(y)))


@functools.cache
def _glyphs(mode: HiResMode) -> list[str | None]:
    """The glyph of each set of a cell's dots, by the bits of their flat (row-major) indices."""
    size = hires_sizes[mode]
    count = size.width * size.height
    return [pixels[mode][tuple((bits >> i) & 1 for i in range(count))] for bits in range(1 << count)]


def merge_blanks(segments: Iterable[Segment]) -> list[Segment]:
    """Blanks between a curve's cells take the curve's style: a space's foreground colour never
    shows, and each change of style costs ~25 bytes to the terminal (half a chart redraw's bytes)."""
    merged: list[Segment] = []
    for segment in segments:
        text, style = segment.text, segment.style
        if merged and text and not text.strip(" ") and _blank_looks_same(merged[-1].style, style):
            segment = Segment(text, merged[-1].style)
        merged.append(segment)
    return list(Segment.simplify(merged))


def _blank_looks_same(before: Style | None, blank: Style | None) -> bool:
    before, blank = before or Style.null(), blank or Style.null()  # unstyled: the widget's own style
    if before.bgcolor != blank.bgcolor:
        return False
    # A space shows these whatever its colour; `bold` may pick another colour for it on some terminals.
    return not any(s.underline or s.strike or s.reverse or s.overline for s in (before, blank))


class QuietPlot(PlotWidget, can_focus=False, inherit_bindings=False):
    """textual-plot without focus or keys: focused, it would take r, +, - and the arrows.

    Its default margins (2 rows above, 3 below) leave few rows in a small panel; the caption
    above the chart replaces the axis labels.
    """

    margin_top = reactive(0)
    margin_bottom = reactive(1)
    margin_left = reactive(7)

    def draw_now(self) -> None:
        """Draw what was plotted into the canvases now, in this frame.

        Left to the next frame, the plot draws its canvases while that frame is being painted,
        and the canvases ask for a frame of their own: every redraw reached the terminal twice
        (~20 KB each at 120x40). Each canvas refreshes once, after all its cells are set, not
        once per cell (a quarter of a redraw's time went to those refreshes).
        """
        canvases = list(self.query(_Canvas))
        for canvas in canvases:
            canvas._refreshes_pending += 1
        try:
            self.render()
        finally:
            for canvas in canvases:
                canvas._refreshes_pending -= 1
                if not canvas._refreshes_pending:
                    canvas.refresh()

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
