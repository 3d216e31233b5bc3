"""Ask for a new iteration target: a number input, validated, defaulting to the current target.

With a way to plan the LR (an in-process trainer), the modal also says what the LR will do, in
words and numbers, and offers a re-warm: back up to a share of the peak LR, then decay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label

from tui_trainer.engine.loop.rewarm import Rewarm, parse_rewarm
from tui_trainer.tui.screens.form_modal import FormModal

# (new target, re-warm or None) -> what the LR will do; ValueError for a re-warm that cannot be.
LrPlanner = Callable[[int, Rewarm | None], str]
DEFAULT_REWARM_FRACTION = "0.5"


@dataclass(frozen=True)
class NewTarget:
    target: int
    rewarm: Rewarm | None = None


def parse_target(text: str, current_step: int) -> tuple[int | None, str | None]:
    """(target, None) if `text` is a valid new target, else (None, what is wrong)."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    if not cleaned.isdigit():
        return None, f"{text.strip() or 'an empty value'!r} is not a whole number of steps; type e.g. {max(current_step + 100, 100)}"
    target = int(cleaned)
    if target <= current_step:
        return None, f"the run is already at step {current_step}; the new target must be above it"
    return target, None


class TargetScreen(FormModal[NewTarget | None]):
    """Dismissed with the new target (and any re-warm), or None when cancelled."""

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
    TargetScreen #rewarm-row { margin-top: 0; }
    TargetScreen #rewarm-row Input { width: 1fr; }
    TargetScreen #rewarm-row.-off Input { display: none; }
    TargetScreen #lr-plan { height: auto; width: 100%; margin-top: 1; color: $text-muted; }
    TargetScreen #lr-plan.-refused { color: $error; }
    TargetScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="target.cancel")]
    OK_BUTTON_ID = "target-ok"

    def __init__(self, current_target: int, current_step: int, note: str = "",
                 plan_lr: LrPlanner | None = None) -> None:
        super().__init__()
        self.current_target = current_target
        self.current_step = current_step
        self.note = note
        self.plan_lr = plan_lr

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"New iteration target (now at step {self.current_step} of {self.current_target})")
            yield Input(str(self.current_target), id="target-input")
            yield Label("", id="target-error", classes="-hidden")
            if self.note:
                yield Label(self.note, id="target-note")
            if self.plan_lr is not None:
                yield Checkbox("Re-warm first (fraction of peak LR, warm-up steps)", id="rewarm-on")
                with Horizontal(id="rewarm-row", classes="-off"):
                    yield Input(DEFAULT_REWARM_FRACTION, id="rewarm-fraction")
                    yield Input("", placeholder="steps (default 1/20)", id="rewarm-steps")
                yield Label("", id="lr-plan")
            with Horizontal():
                yield Button("Set target", variant="primary", id="target-ok")
                yield Button("Cancel", id="target-cancel")

    def on_mount(self) -> None:
        field = self.query_one("#target-input", Input)
        field.focus()
        field.select_all()
        self._show_plan()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_plan()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#rewarm-row").set_class(not event.value, "-off")
        self._show_plan()

    def _rewarm(self) -> Rewarm | None:
        """The re-warm asked for, or None; ValueError saying what is wrong with it."""
        if self.plan_lr is None or not self.query_one("#rewarm-on", Checkbox).value:
            return None
        fraction = self.query_one("#rewarm-fraction", Input).value.strip()
        steps = self.query_one("#rewarm-steps", Input).value.strip()
        return parse_rewarm(f"{fraction}:{steps}" if steps else fraction)

    def _plan(self) -> tuple[NewTarget | None, str | None]:
        """(the choice, None) if it can be done, else (None, why not)."""
        target, problem = parse_target(self.query_one("#target-input", Input).value, self.current_step)
        if target is None:
            return None, problem
        try:
            rewarm = self._rewarm()
            if self.plan_lr is not None:
                self.plan_lr(target, rewarm)
        except ValueError as exc:
            return None, str(exc)
        return NewTarget(target, rewarm), None

    def _show_plan(self) -> None:
        if self.plan_lr is None:
            return
        plan = self.query_one("#lr-plan", Label)
        target, problem = parse_target(self.query_one("#target-input", Input).value, self.current_step)
        if target is None:
            plan.update("")
            return
        try:
            text, refused = self.plan_lr(target, self._rewarm()), False
        except ValueError as exc:
            text, refused = str(exc), True
        plan.update(text)
        plan.set_class(refused, "-refused")

    def _submit(self) -> None:
        choice, problem = self._plan()
        error = self.query_one("#target-error", Label)
        if choice is None:
            error.update(problem or "")
            error.remove_class("-hidden")
            self.query_one("#target-input", Input).focus()
            return
        self.dismiss(choice)
