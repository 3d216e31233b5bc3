"""`show_text`: put new text in a Static without a screen-wide layout pass when its size cannot change.

`Static.update` asks for a layout of the whole screen by default. The dashboard's counters change
at every tick while their widths stay put, and those layout passes were most of the UI
thread's CPU: what a fast training loop loses to the dashboard.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Static


def show_text(widget: Static, text: str) -> None:
    """Show `text` in `widget`: nothing if it is unchanged, a layout pass only if its size may change."""
    old = widget.content
    if isinstance(old, str) and old == text:
        return
    widget.update(text, layout=not isinstance(old, str) or _may_resize(widget, old, text))


def _may_resize(widget: Static, old: str, new: str) -> bool:
    width, height = widget.styles.width, widget.styles.height
    if width is not None and width.is_auto and cell_len(old) != cell_len(new):
        return True  # as wide as its text
    if height is None or not height.is_auto:
        return False
    # As tall as its text: it re-wraps when either text is wider than the widget.
    room = widget.content_size.width
    return room <= 0 or "\n" in old or "\n" in new or max(cell_len(old), cell_len(new)) > room
