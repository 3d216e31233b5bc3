"""The question a pause on an anomaly asks: roll back past the batches that led there, go on, or stop.

The bad step's update was not applied. Rolling back loads the last healthy checkpoint and skips
the batches since (the PaLM recipe); going on trains from here without that update; stopping
saves nothing new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Button

from tui_trainer.engine.loop.anomaly import batches
from tui_trainer.tui.screens.alert_modal import AlertScreen

if TYPE_CHECKING:
    from tui_trainer.engine.loop.events import AnomalyFound

ROLL_BACK, CONTINUE, STOP = "roll_back", "continue", "stop"


def anomaly_title(event: AnomalyFound) -> str:
    return f"ANOMALY at step {event.step}: {event.kind}. Training is paused."


def anomaly_lines(event: AnomalyFound) -> list[str]:
    lines = [f"{event.detail}. The update of step {event.step} was not applied and nothing was saved."]
    if event.rollback_to:
        lines.append(f"Roll back: load {event.rollback_to}, the last healthy checkpoint, and skip the "
                     f"{batches(event.skip_batches)} that led here; newer history is dropped.")
    else:
        lines.append("Roll back: there is no healthy checkpoint of this run to go back to.")
    lines.append("Continue: train on from here without that update. Stop: end the run, saving nothing new.")
    return lines


class AnomalyScreen(AlertScreen):
    """Dismissed with ROLL_BACK, CONTINUE, STOP, or None (escape: the run stays paused)."""

    BINDINGS = [
        Binding("b", "choose('roll_back')", "Roll back", id="anomaly.roll_back"),
        Binding("c", "choose('continue')", "Continue", id="anomaly.continue"),
        Binding("s", "choose('stop')", "Stop", id="anomaly.stop"),
        Binding("escape", "choose('')", "Dismiss (stay paused)", id="anomaly.dismiss"),
    ]
    CHOICES = (ROLL_BACK, CONTINUE, STOP)

    def __init__(self, event: AnomalyFound) -> None:
        super().__init__()
        self.event = event

    def alert_title(self) -> str:
        return anomaly_title(self.event)

    def alert_lines(self) -> list[str]:
        return anomaly_lines(self.event)

    def buttons(self) -> list[Button]:
        return [
            Button(Text("Roll back (b)"), variant="primary", id=ROLL_BACK, disabled=not self.event.rollback_to),
            Button(Text("Continue (c)"), id=CONTINUE),
            Button(Text("Stop (s)"), variant="error", id=STOP),
        ]

    def first_choice(self) -> str:
        return ROLL_BACK if self.event.rollback_to else CONTINUE

    def action_choose(self, choice: str) -> None:
        if choice == ROLL_BACK and not self.event.rollback_to:
            return
        super().action_choose(choice)
