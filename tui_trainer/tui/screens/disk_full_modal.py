"""The alert for a write that did not fit (a save, or the run's history): what is free, and what to do.

Training is paused while it shows, with nothing torn on disk and its progress in memory. The
choices: prune, export, resume (which retries the write), or dismiss (the run stays paused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Button

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.screens.alert_modal import AlertScreen

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


class DiskFullScreen(AlertScreen):
    """Dismissed with PRUNE, EXPORT, RETRY, or None (dismiss: the run stays paused)."""

    BINDINGS = [
        Binding("x", "choose('prune')", "Prune", id="disk_full.prune"),
        Binding("e", "choose('export')", "Export", id="disk_full.export"),
        Binding("r,p", "choose('retry')", "Resume and retry", id="disk_full.retry"),
        Binding("escape", "choose('')", "Dismiss (stay paused)", id="disk_full.dismiss"),
    ]
    CHOICES = (PRUNE, EXPORT, RETRY)

    def __init__(self, event: DiskFull) -> None:
        super().__init__()
        self.event = event

    def alert_title(self) -> str:
        return alert_title(self.event)

    def alert_lines(self) -> list[str]:
        return alert_lines(self.event)

    def buttons(self) -> list[Button]:
        return [
            Button(Text("Prune (x)"), id=PRUNE),
            Button(Text("Export (e)"), id=EXPORT),
            Button(Text("Resume and retry (r)"), variant="primary", id=RETRY),
            Button(Text("Dismiss (esc)"), id="dismiss"),
        ]

    def show(self, event: DiskFull) -> None:
        """A fresh failure while the alert is open: show its numbers."""
        self.event = event
        self.refresh_text()
