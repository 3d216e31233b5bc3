"""The footer: the keys that fit the terminal's width whole, `?` (help) and `^p` (palette) always.

Textual's footer shows every key and cuts the last one that does not fit mid-word ("c Compa").
This one keeps the keys in their declared order and leaves out whole the ones past the width;
help and the command palette list every key, so nothing is out of reach.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the footer's own item, not re-exported by textual.widgets

ALWAYS_SHOWN = frozenset({"show_help"})


class CompactFooter(Footer):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(compact=True, **kwargs)  # type: ignore[arg-type]
        self._composed_width = 0
        self.shown_actions: list[str] = []  # the keys on screen, for tests

    def compose(self) -> ComposeResult:
        width = self.app.size.width
        self._composed_width = width
        items = list(super().compose())
        keys = [item for item in items if isinstance(item, FooterKey)]
        palette = [key for key in keys if key.has_class("-command-palette")]
        room = width - sum(1 + item_width(key) for key in palette)  # its left border
        room -= sum(item_width(key) + 1 for key in keys if key.action in ALWAYS_SHOWN)
        shown = set()
        for key in keys:
            if key in palette or key.action in ALWAYS_SHOWN:
                continue
            if item_width(key) + 1 > room:
                break
            room -= item_width(key) + 1
            shown.add(key)
        self.shown_actions = []
        for item in items:
            if not isinstance(item, FooterKey) or item in shown or item in palette or item.action in ALWAYS_SHOWN:
                if isinstance(item, FooterKey):
                    self.shown_actions.append(item.action)
                yield item

    def on_resize(self, event: events.Resize) -> None:
        if self.app.size.width != self._composed_width:
            self.call_after_refresh(self.recompose)


def item_width(key: FooterKey) -> int:
    """Cells a compact footer key takes: "p Pause" (its margin is counted by the caller)."""
    return cell_len(key.key_display) + (1 + cell_len(key.description) if key.description else 0)
