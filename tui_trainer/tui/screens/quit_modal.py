"""Leaving while training: detach (training goes on), save and stop, stop without saving, or cancel.

Detach is offered where the trainer runs in its own process (every dashboard the CLI opens);
a dashboard that trains in its own process (`make_app(launch_fn)`) offers the other three.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

DETACH, SAVE_AND_QUIT, QUIT_WITHOUT_SAVING = "detach", "save", "discard"


class QuitScreen(ModalScreen[str | None]):
    """Dismissed with DETACH, SAVE_AND_QUIT, QUIT_WITHOUT_SAVING, or None (cancel)."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical {
        width: 78;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    QuitScreen Label { width: 100%; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 1; min-width: 10; }
    """
    BINDINGS = [
        Binding("q", "choose('detach')", "Detach", id="quit.detach"),
        Binding("s", "choose('save')", "Save and quit", id="quit.save"),
        Binding("d", "choose('discard')", "Quit without saving", id="quit.discard"),
        Binding("escape,c", "choose('')", "Cancel", id="quit.cancel"),
    ]

    def __init__(self, kept: str, detach: bool = False) -> None:
        super().__init__()
        self.kept = kept
        self.detach = detach

    def compose(self) -> ComposeResult:
        with Vertical():
            # Training goes on while this is open, so say nothing that a few steps make untrue.
            if self.detach:
                yield Label("Training is running. Leave the dashboard?")
                yield Label("Detach: training goes on in the background; `tui-trainer attach` shows it again.")
                yield Label("Save, stop: save a checkpoint at the current step, then stop training.")
                yield Label(f"Stop, no save: {self.kept}")
            else:
                yield Label("Training is still running. Quit?")
                yield Label("Save and quit: save a checkpoint at the current step, then quit.")
                yield Label(f"Quit without saving: {self.kept}")
            with Horizontal():
                # Plain-text labels: "[s]" in a label would be read as markup (strike).
                if self.detach:
                    yield Button(Text("Detach (q)"), variant="success", id=DETACH)
                if self.detach:  # four buttons: short words, so that all fit at 80 columns
                    yield Button(Text("Save, stop (s)"), variant="primary", id=SAVE_AND_QUIT)
                    yield Button(Text("Stop, no save (d)"), variant="error", id=QUIT_WITHOUT_SAVING)
                else:
                    yield Button(Text("Save and quit (s)"), variant="primary", id=SAVE_AND_QUIT)
                    yield Button(Text("Quit, don't save (d)"), variant="error", id=QUIT_WITHOUT_SAVING)
                yield Button(Text("Cancel (esc)"), id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{DETACH if self.detach else SAVE_AND_QUIT}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id if event.button.id in (DETACH, SAVE_AND_QUIT, QUIT_WITHOUT_SAVING) else "")

    def action_choose(self, choice: str) -> None:
        if choice == DETACH and not self.detach:
            return  # a dashboard that trains in its own process cannot leave its trainer behind
        self.dismiss(choice or None)
