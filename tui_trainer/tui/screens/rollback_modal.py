"""Roll back: confirm resuming from the selected checkpoint, after reading what it supersedes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label

from tui_trainer.session.rollback import RollbackPlan, describe_rollback
from tui_trainer.tui.screens.form_modal import FormModal
from tui_trainer.tui.screens.target_modal import parse_target


class RollbackScreen(FormModal[int | None]):
    """Dismissed with the target to train to from the checkpoint, or None (cancel)."""

    DEFAULT_CSS = """
    RollbackScreen { align: center middle; }
    RollbackScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    RollbackScreen #rollback-title { text-style: bold; width: 100%; }
    RollbackScreen VerticalScroll { height: auto; max-height: 14; }
    RollbackScreen .rollback-line { width: 100%; }
    RollbackScreen #rollback-error { color: $error; height: auto; width: 100%; }
    RollbackScreen #rollback-error.-hidden { display: none; }
    RollbackScreen Horizontal { height: auto; margin-top: 1; }
    RollbackScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="rollback.cancel")]
    OK_BUTTON_ID = "rollback-ok"

    def __init__(self, plan: RollbackPlan, target: int, live_step: int | None) -> None:
        super().__init__()
        self.plan = plan
        self.target = target
        self.live_step = live_step
        self.lines = describe_rollback(plan, live_step)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Roll back to {self.plan.name} (step {self.plan.step}) and train from there?"),
                        id="rollback-title")
            with VerticalScroll():
                for line in self.lines:
                    yield Label(Text(line), classes="rollback-line")
            yield Label("Train to step:")
            yield Input(str(self.target), id="rollback-target")
            yield Label("", id="rollback-error", classes="-hidden")
            with Horizontal():
                yield Button("Roll back", variant="error", id="rollback-ok")
                yield Button("Cancel", id="rollback-cancel")

    def on_mount(self) -> None:
        self.query_one("#rollback-cancel", Button).focus()

    def _submit(self) -> None:
        target, problem = parse_target(self.query_one(Input).value, self.plan.step)
        if problem is not None:
            error = self.query_one("#rollback-error", Label)
            error.update(Text(problem))
            error.remove_class("-hidden")
            self.query_one(Input).focus()
            return
        self.dismiss(target)
