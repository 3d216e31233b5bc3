"""An alert that pauses the run and asks what to do: a red frame, a title in words, lines that
explain, and a row of choices. The anomaly and full-disk alerts are this layout with their own words."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class AlertScreen(ModalScreen[str | None]):
    """Dismissed with the id of the choice taken (a button or its key), or None (the run stays paused)."""

    DEFAULT_CSS = """
    AlertScreen { align: center middle; }
    AlertScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    AlertScreen .alert-title { width: 100%; text-style: bold; background: $error; color: auto; padding: 0 1; }
    AlertScreen .alert-line { width: 100%; margin-top: 1; }
    AlertScreen Horizontal { height: auto; margin-top: 1; }
    AlertScreen Button { margin-right: 1; }
    """
    CHOICES: tuple[str, ...] = ()  # the button ids that dismiss with themselves; any other dismisses with None

    def alert_title(self) -> str:
        raise NotImplementedError

    def alert_lines(self) -> list[str]:
        raise NotImplementedError

    def buttons(self) -> list[Button]:
        """The choices, left to right. Plain-text labels: "[x]" in a label would be read as markup."""
        raise NotImplementedError

    def first_choice(self) -> str:
        """The id of the button focused when the alert opens."""
        return self.CHOICES[0]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.alert_title()), classes="alert-title")
            for line in self.alert_lines():
                yield Label(Text(line), classes="alert-line")
            with Horizontal():
                yield from self.buttons()

    def on_mount(self) -> None:
        self.query_one(f"#{self.first_choice()}", Button).focus()

    def refresh_text(self) -> None:
        """Show the title and lines again, after what they are about changed."""
        self.query_one(".alert-title", Label).update(Text(self.alert_title()))
        for label, line in zip(self.query(".alert-line").results(Label), self.alert_lines()):
            label.update(Text(line))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id if event.button.id in self.CHOICES else "")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
