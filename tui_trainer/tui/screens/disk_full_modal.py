"""The alert for a write that did not fit (a save, or the run's history): what is free, and what to do.

Training is paused while it shows, with nothing torn on disk and its progress in memory. The
choices: prune, export, resume (which retries the write), or dismiss (the run stays paused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tui_trainer.engine.sizes import human_bytes

if TYPE_CHECKING:
    from tui_trainer.engine.loop.events import DiskFull

PRUNE, EXPORT, RETRY = "prune", "export", "retry"


def alert_title(event: DiskFull) -> str:
    # "ERROR" in words too: on a monochrome terminal the red border says nothing.
    return f"ERROR: disk full. Training is paused at step {event.step}."


def alert_lines(event: DiskFull) -> list[str]:
    from tui_trainer.engine.loop.events import DISK_FULL_WRITE  # here: not on the first frame's path

    free = human_bytes(event.free_bytes) if event.free_bytes is not None else "too little"
    if event.kind == DISK_FULL_WRITE:
        return [
            f"{event.name} could not be written: {free} is free on the filesystem of {event.directory}.",
            "Nothing is lost and nothing half-written was left: the records wait in memory.",
            "Make room (prune old checkpoints, export one and delete it, or free space elsewhere), "
            "then resume: they are written first. If they still do not fit, this alert comes back.",
            "Dismiss keeps the run paused; p resumes it later.",
        ]
    needed = f"about {human_bytes(event.needed_bytes)}" if event.needed_bytes else "more room than there is"
    return [
        f"The {event.kind} checkpoint {event.name} needs {needed}; {free} is free on the filesystem of "
        f"{event.directory}.",
        "Nothing was written and nothing is lost: the run's progress is still in memory.",
        "Make room (prune old checkpoints, export one and delete it, or free space elsewhere), "
        "then resume: the save is tried again. If it still does not fit, this alert comes back.",
        "Dismiss keeps the run paused; p resumes it later.",
    ]


class DiskFullScreen(ModalScreen[str | None]):
    """Dismissed with PRUNE, EXPORT, RETRY, or None (dismiss: the run stays paused)."""

    DEFAULT_CSS = """
    DiskFullScreen { align: center middle; }
    DiskFullScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    DiskFullScreen #disk-full-title { width: 100%; text-style: bold; background: $error; color: auto; padding: 0 1; }
    DiskFullScreen .disk-full-line { width: 100%; margin-top: 1; }
    DiskFullScreen Horizontal { height: auto; margin-top: 1; }
    DiskFullScreen Button { margin-right: 1; }
    """
    BINDINGS = [
        Binding("x", "choose('prune')", "Prune", id="disk_full.prune"),
        Binding("e", "choose('export')", "Export", id="disk_full.export"),
        Binding("r,p", "choose('retry')", "Resume and retry", id="disk_full.retry"),
        Binding("escape", "choose('')", "Dismiss (stay paused)", id="disk_full.dismiss"),
    ]

    def __init__(self, event: DiskFull) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(alert_title(self.event)), id="disk-full-title")
            for line in alert_lines(self.event):
                yield Label(Text(line), classes="disk-full-line")
            with Horizontal():
                # Plain-text labels: "[x]" in a label would be read as markup.
                yield Button(Text("Prune (x)"), id=PRUNE)
                yield Button(Text("Export (e)"), id=EXPORT)
                yield Button(Text("Resume and retry (r)"), variant="primary", id=RETRY)
                yield Button(Text("Dismiss (esc)"), id="dismiss")

    def on_mount(self) -> None:
        self.query_one(f"#{PRUNE}", Button).focus()

    def show(self, event: DiskFull) -> None:
        """A fresh failure while the alert is open: show its numbers."""
        self.event = event
        self.query_one("#disk-full-title", Label).update(Text(alert_title(event)))
        for label, line in zip(self.query(".disk-full-line").results(Label), alert_lines(event)):
            label.update(Text(line))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id if event.button.id in (PRUNE, EXPORT, RETRY) else "")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
