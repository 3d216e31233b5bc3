"""A re-warm: the LR of a run extended after it decayed goes back up to a share of its peak, then decays.

This is the warmup-stable-decay recipe's way back in; it is always the user's explicit choice.
Plain Python (no torch), so the CLI's arguments and the dashboard's form can parse it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tui_trainer.engine.errors import TrainerError

DEFAULT_REWARM_SHARE = 20  # without a step count, a re-warm takes 1/20 of the added steps


class RewarmRefused(TrainerError, ValueError):
    """A re-warm that cannot be done from where the run is; the message says what to choose instead."""


@dataclass(frozen=True)
class Rewarm:
    """Warm the LR back up to `fraction` of the schedule's peak over `steps`, then decay."""

    fraction: float
    steps: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ValueError(f"the re-warm fraction of the peak LR must be above 0 and at most 1, got {self.fraction!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"re-warm steps must be a whole number >= 1, got {self.steps!r}")


def parse_rewarm(text: str) -> Rewarm:
    """`FRACTION` or `FRACTION:STEPS` (e.g. `0.5:200`); ValueError with a one-line reason."""
    fraction_text, colon, steps_text = text.strip().partition(":")
    try:
        fraction = float(fraction_text)
    except ValueError:
        raise ValueError(f"re-warm {text!r}: give FRACTION[:STEPS], e.g. 0.5 or 0.5:200") from None
    if colon and not steps_text.strip().isdigit():
        raise ValueError(f"re-warm {text!r}: STEPS must be a whole number, e.g. 0.5:200")
    if not math.isfinite(fraction):
        raise ValueError(f"re-warm {text!r}: the fraction must be a number between 0 and 1")
    return Rewarm(fraction, int(steps_text) if steps_text else None)
