"""Training speed and ETA, computed one way for every view: the trainer, a followed run, a console.

Speed is steps over training time across a recent window of logged steps, never a mean of
per-step rates: with steps of 5 ms and 60 ms in turn, a mean of rates says 108 it/s where the
truth is 31. Training time leaves out pauses, evaluations and saves (`training_clock`), so
neither the speed nor the ETA moves when someone pauses. No torch here.
"""

from __future__ import annotations

import math
from collections import deque

WINDOW_S = 30.0  # of training time: recent enough to follow a change of pace, long enough to be steady
MAX_SAMPLES = 512  # bounds memory when every step is logged; the window then spans 512 steps


class StepRate:
    """Steps per second of training time over the last `window_s` of it (at least two samples)."""

    def __init__(self, window_s: float = WINDOW_S, max_samples: int = MAX_SAMPLES) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[int, float]] = deque(maxlen=max_samples)

    def add(self, step: int, training_seconds: float) -> float:
        """Note that `step` was done after `training_seconds` of training; the rate now.

        A step at or before the last one (a resume from an earlier checkpoint, a rollback) or a
        clock that went back starts the window again.
        """
        if not math.isfinite(training_seconds):
            return self.rate
        if self._samples and (step <= self._samples[-1][0] or training_seconds < self._samples[-1][1]):
            self._samples.clear()
        self._samples.append((step, training_seconds))
        while len(self._samples) > 2 and training_seconds - self._samples[1][1] >= self.window_s:
            self._samples.popleft()
        return self.rate

    @property
    def rate(self) -> float:
        """0.0 until two samples span some training time."""
        if len(self._samples) < 2:
            return 0.0
        (first_step, first_s), (last_step, last_s) = self._samples[0], self._samples[-1]
        return (last_step - first_step) / (last_s - first_s) if last_s > first_s else 0.0

    def reset(self) -> None:
        self._samples.clear()


def eta_seconds(step: int, target: int | None, steps_per_sec: float) -> float | None:
    """Training time left to `target` at `steps_per_sec`; None when unknown."""
    if not target or steps_per_sec <= 0 or not math.isfinite(steps_per_sec):
        return None
    return max(0, target - step) / steps_per_sec
