"""Quitting while training: save and quit, quit without saving, or cancel."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

SAVE_AND_QUIT, QUIT_WITHOUT_SAVING = "save", "discard"


class QuitScreen(ModalScreen[str | None]):
    """Dismissed with SAVE_AND_QUIT, QUIT_WITHOUT_SAVING, or None (cancel)."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    QuitScreen Label { width: 100%; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 1; }
    """
    BINDINGS = [
        Binding("s", "choose('save')", "Save and quit", id="quit.save"),
        Binding("d", "choose('discard')", "Quit without saving", id="quit.discard"),
        Binding("escape,c", "choose('')", "Cancel", id="quit.cancel"),
    ]

    def __init__(self, kept: str) -> None:
        super().__init__()
        self.kept = kept

    def compose(self) -> ComposeResult:
        with Vertical():
            # Training goes on while this is open, so say nothing that a few steps make untrue.
            yield Label("Training is still running. Quit?")
            yield Label("Save and quit: save a checkpoint at the current step, then quit.")
            yield Label(f"Quit without saving: {self.kept}")
            with Horizontal():
                # Plain-text labels: "[s]" in a label would be read as markup (strike).
                yield Button(Text("Save and quit (s)"), variant="primary", id="save")
                yield Button(Text("Quit, don't save (d)"), variant="error", id="discard")
                yield Button(Text("Cancel (esc)"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#save", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id if event.button.id in (SAVE_AND_QUIT, QUIT_WITHOUT_SAVING) else "")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
