"""Pick the checkpoint to compare the selected one with: a list of the others, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class ComparePickScreen(ModalScreen[str | None]):
    """Dismissed with the chosen checkpoint's name, or None."""

    DEFAULT_CSS = """
    ComparePickScreen { align: center middle; }
    ComparePickScreen > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ComparePickScreen OptionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="compare_pick.cancel")]

    def __init__(self, selected: str, others: list[tuple[str, str]]) -> None:
        """`others`: (name, what to show for it) of every other checkpoint."""
        super().__init__()
        self.selected = selected
        self.others = others

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Compare {self.selected} with:"))
            yield OptionList(*(Option(Text(label), id=name) for name, label in self.others), id="compare-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        options.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
