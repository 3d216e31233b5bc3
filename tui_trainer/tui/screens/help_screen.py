"""Every key and what it does, generated from the app's bindings (a user's keymap included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

# Textual's own plumbing, not something a user of the dashboard looks up.
HIDDEN_ACTIONS = frozenset({"help_quit"})


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    detail: str


def app_bindings(app: Any) -> list[Binding]:
    """The app's bindings in declaration order, one per key, after the user's keymap."""
    return _unique_bindings(app)


def screen_bindings(screen: Any) -> list[Binding]:
    """A screen's own bindings (those declared with an id), after the user's keymap."""
    return [b for b in _unique_bindings(screen) if b.id is not None]


def _unique_bindings(node: Any) -> list[Binding]:
    # `_bindings` is the merged map Textual builds from every class's BINDINGS and the keymap;
    # the class attributes alone would miss remapped keys.
    seen: set[tuple[str, str]] = set()
    bindings = []
    for _key, binding in node._bindings:
        if binding.action in HIDDEN_ACTIONS or (binding.key, binding.action) in seen:
            continue
        seen.add((binding.key, binding.action))
        bindings.append(binding)
    return bindings


def key_help(app: Any, screen: Any = None) -> list[KeyHelp]:
    """Every key: a screen's own first (when given), then the app's."""
    bindings = (screen_bindings(screen) if screen is not None else []) + app_bindings(app)
    rows = []
    for binding in bindings:
        description = binding.description or binding.action.replace("_", " ")
        rows.append(KeyHelp(app.get_key_display(binding), description, binding.tooltip or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen VerticalScroll { height: auto; max-height: 100%; }
    HelpScreen #help-keys { width: 100%; height: auto; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, rows: list[KeyHelp]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, header_style="bold", pad_edge=False, expand=True)
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("does", no_wrap=True)
        table.add_column("")
        for row in self.rows:
            table.add_row(row.key, row.description, row.detail)
        with Vertical():
            yield Label("Keys (ctrl+p finds every action by name; esc closes)")
            with VerticalScroll():
                yield Static(table, id="help-keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
