"""The question a pause on an anomaly asks: roll back past the batches that led there, go on, or stop.

The bad step's update was not applied. Rolling back loads the last healthy checkpoint and skips
the batches since (the PaLM recipe); going on trains from here without that update; stopping
saves nothing new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

if TYPE_CHECKING:
    from tui_trainer.engine.loop.events import AnomalyFound

ROLL_BACK, CONTINUE, STOP = "roll_back", "continue", "stop"


def anomaly_title(event: AnomalyFound) -> str:
    return f"ANOMALY at step {event.step}: {event.kind}. Training is paused."


def anomaly_lines(event: AnomalyFound) -> list[str]:
    lines = [f"{event.detail}. The update of step {event.step} was not applied and nothing was saved."]
    if event.rollback_to:
        lines.append(f"Roll back: load {event.rollback_to}, the last healthy checkpoint, and skip the "
                     f"{event.skip_batches} batch(es) that led here; newer history is dropped.")
    else:
        lines.append("Roll back: there is no healthy checkpoint of this run to go back to.")
    lines.append("Continue: train on from here without that update. Stop: end the run, saving nothing new.")
    return lines


class AnomalyScreen(ModalScreen[str | None]):
    """Dismissed with ROLL_BACK, CONTINUE, STOP, or None (escape: the run stays paused)."""

    DEFAULT_CSS = """
    AnomalyScreen { align: center middle; }
    AnomalyScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    AnomalyScreen #anomaly-title { width: 100%; text-style: bold; background: $error; color: auto; padding: 0 1; }
    AnomalyScreen .anomaly-line { width: 100%; margin-top: 1; }
    AnomalyScreen Horizontal { height: auto; margin-top: 1; }
    AnomalyScreen Button { margin-right: 1; }
    """
    BINDINGS = [
        Binding("b", "choose('roll_back')", "Roll back", id="anomaly.roll_back"),
        Binding("c", "choose('continue')", "Continue", id="anomaly.continue"),
        Binding("s", "choose('stop')", "Stop", id="anomaly.stop"),
        Binding("escape", "choose('')", "Dismiss (stay paused)", id="anomaly.dismiss"),
    ]

    def __init__(self, event: AnomalyFound) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(anomaly_title(self.event)), id="anomaly-title")
            for line in anomaly_lines(self.event):
                yield Label(Text(line), classes="anomaly-line")
            with Horizontal():
                yield Button(Text("Roll back (b)"), variant="primary", id=ROLL_BACK, disabled=not self.event.rollback_to)
                yield Button(Text("Continue (c)"), id=CONTINUE)
                yield Button(Text("Stop (s)"), variant="error", id=STOP)

    def on_mount(self) -> None:
        self.query_one(f"#{ROLL_BACK if self.event.rollback_to else CONTINUE}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id or "")

    def action_choose(self, choice: str) -> None:
        if choice == ROLL_BACK and not self.event.rollback_to:
            return
        self.dismiss(choice or None)
