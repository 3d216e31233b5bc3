"""One line that says what went wrong, for a modal or a notification."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    from tui_trainer.engine.errors import TrainerError

    # A TrainerError already says what to do next; anything else needs its type to be read.
    text = str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
