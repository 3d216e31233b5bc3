"""Training time: the loop's wall time less what it spent paused, evaluating or saving.

"elapsed" on every screen is this clock, cumulative across resumes (a resumed run starts it
at the time its history recorded), so speed and ETA never count a pause as work. No torch here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

PAUSED, EVALUATING, SAVING = "paused", "evaluating", "saving"


class TrainingClock:
    """Accumulates training time from `start()` on; `apart(kind)` sections are kept out of it."""

    def __init__(self, elapsed: float = 0.0, now: Callable[[], float] = time.perf_counter) -> None:
        self.elapsed = elapsed
        self.apart_seconds: dict[str, float] = {}  # time kept out, by kind (paused, evaluating, saving)
        self._now = now
        self._mark: float | None = None

    def start(self) -> None:
        self._mark = self._now()

    def lap(self) -> float:
        """Add the training time since the last mark; the training time so far."""
        now = self._now()
        if self._mark is not None:
            self.elapsed += now - self._mark
        self._mark = now
        return self.elapsed

    @contextlib.contextmanager
    def apart(self, kind: str) -> Iterator[None]:
        """Time spent inside is not training time (nested sections count once, as the outer kind)."""
        if self._mark is None:  # inside another section, or not started
            yield
            return
        self.lap()
        began, self._mark = self._mark, None
        try:
            yield
        finally:
            self._mark = self._now()
            self.apart_seconds[kind] = self.apart_seconds.get(kind, 0.0) + self._mark - began
