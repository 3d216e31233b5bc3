"""The chart's canvas sets its braille dots with numpy: the same glyphs, cell for cell, as textual-hires-canvas."""

from __future__ import annotations

import random

import pytest
from textual.geometry import Size
from textual_hires_canvas import Canvas
from textual_hires_canvas.hires import HiResMode

from tui_trainer.tui.widgets.loss_plot import _Canvas


def _drawn(canvas_type: type[Canvas], dots: list[tuple[float, float]], mode: HiResMode) -> list[list[str]]:
    canvas = canvas_type(1, 1)
    canvas.reset(Size(30, 12), refresh=False)
    canvas.set_pixel(3, 3, char="x", style="red")  # drawn before: kept where no dot lands, replaced where one does
    canvas.set_hires_pixels(dots, hires_mode=mode, style="green")
    return [[f"{c}|{s}" for c, s in zip(chars, styles)] for chars, styles in zip(canvas._buffer, canvas._styles)]


@pytest.mark.parametrize("mode", [HiResMode.BRAILLE, HiResMode.QUADRANT, HiResMode.HALFBLOCK])
def test_the_same_glyphs_as_the_library_for_random_dots_in_and_out_of_the_canvas(mode):
    rng = random.Random(7)
    dots = [(rng.uniform(-3, 33), rng.uniform(-2, 14)) for _ in range(4000)]
    dots += [(3.2, 3.6), (29.999, 11.999), (0.0, 0.0), (30.0, 5.0), (5.0, 12.0)]  # on the edges
    ours = _drawn(_Canvas, dots, mode)
    assert ours == _drawn(Canvas, dots, mode)
    assert any("green" in cell for row in ours for cell in row)


def test_no_dots_change_nothing():
    assert _drawn(_Canvas, [], HiResMode.BRAILLE) == _drawn(Canvas, [], HiResMode.BRAILLE)
