"""Ask for a new iteration target: a number input, validated, defaulting to the current target."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label

from tui_trainer.tui.screens.form_modal import FormModal


def parse_target(text: str, current_step: int) -> tuple[int | None, str | None]:
    """(target, None) if `text` is a valid new target, else (None, what is wrong)."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    if not cleaned.isdigit():
        return None, f"{text.strip() or 'an empty value'!r} is not a whole number of steps; type e.g. {max(current_step + 100, 100)}"
    target = int(cleaned)
    if target <= current_step:
        return None, f"the run is already at step {current_step}; the new target must be above it"
    return target, None


class TargetScreen(FormModal[int | None]):
    """Dismissed with the new target, or None when cancelled."""

    DEFAULT_CSS = """
    TargetScreen { align: center middle; }
    TargetScreen > Vertical {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    TargetScreen #target-error { color: $error; height: auto; width: 100%; }
    TargetScreen #target-error.-hidden { display: none; }
    TargetScreen Horizontal { height: auto; margin-top: 1; }
    TargetScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="target.cancel")]
    OK_BUTTON_ID = "target-ok"

    def __init__(self, current_target: int, current_step: int, note: str = "") -> None:
        super().__init__()
        self.current_target = current_target
        self.current_step = current_step
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"New iteration target (now at step {self.current_step} of {self.current_target})")
            yield Input(str(self.current_target), id="target-input")
            yield Label("", id="target-error", classes="-hidden")
            if self.note:
                yield Label(self.note, id="target-note")
            with Horizontal():
                yield Button("Set target", variant="primary", id="target-ok")
                yield Button("Cancel", id="target-cancel")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.focus()
        field.select_all()

    def _submit(self) -> None:
        target, problem = parse_target(self.query_one(Input).value, self.current_step)
        error = self.query_one("#target-error", Label)
        if problem is not None:
            error.update(problem)
            error.remove_class("-hidden")
            self.query_one(Input).focus()
            return
        self.dismiss(target)
