"""A modal holding one small form: Enter or its OK button submits; Cancel or escape dismisses."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.screen import ModalScreen
from textual.widgets import Button, Input

ResultType = TypeVar("ResultType")


class FormModal(ModalScreen[ResultType]):
    """Subclasses name their OK button in `OK_BUTTON_ID`, bind escape to `cancel`, and validate
    in `_submit()`, which dismisses with the result or shows why it cannot."""

    OK_BUTTON_ID: ClassVar[str] = "ok"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == self.OK_BUTTON_ID:
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        raise NotImplementedError
