"""show_text: counters change at every tick; the screen is laid out again only when a size may change."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Label, Static

from tui_pilot import run_async
from tui_trainer.tui.widgets.live_text import show_text


class Counters(App[None]):
    CSS = """
    #line { width: 1fr; height: 1; }
    #wrapping { width: 20; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Label("12/600", id="label")  # as wide as its text
        yield Static("step 12", id="line")  # one row, as wide as the screen
        yield Static("short", id="wrapping")  # as tall as its wrapped text


def layouts_asked(widget: Any, text: str) -> list[bool]:
    asked: list[bool] = []
    original = widget.update

    def update(content: Any, *, layout: bool = True) -> None:
        asked.append(layout)
        original(content, layout=layout)

    widget.update = update
    show_text(widget, text)
    return asked


def test_a_layout_pass_only_when_the_widget_could_change_size():
    async def scenario() -> None:
        app = Counters()
        async with app.run_test(size=(80, 10)) as pilot:
            label, line, wrapping = (app.query_one(f"#{name}") for name in ("label", "line", "wrapping"))
            assert layouts_asked(label, "13/600") == [False]  # same width
            assert layouts_asked(label, "13/600  ETA 4s") == [True]  # wider
            assert layouts_asked(label, "13/600  ETA 4s") == []  # unchanged: nothing at all
            assert layouts_asked(line, "step 1300  epoch 4  ETA 2:01") == [False]  # its size is the screen's
            assert layouts_asked(wrapping, "tiny") == [False]  # both fit on its one row
            assert layouts_asked(wrapping, "a text that wraps onto two rows") == [True]
            await pilot.pause()
            assert str(label.content) == "13/600  ETA 4s"
            assert wrapping.size.height == 2

    run_async(scenario)
