"""The anomaly guard: which step is an anomaly, and what the run does about it.

A step is an anomaly when its loss or its gradient norm is not finite, or when its loss is a
spike: above the mean of the last `spike_window` healthy logged losses by more than `spike_k`
standard deviations (as OLMo flags loss spikes), once `spike_warmup` of them are known. The
guard looks only at numbers the trainer reads anyway (a logged step's, in its one device sync),
so it costs no sync of its own. Plain Python: no torch.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from tui_trainer.engine.words import counted

# What the run does on an anomaly (`--on-anomaly`).
PAUSE, ROLLBACK, STOP, CONTINUE = "pause", "rollback", "stop", "continue"
ACTIONS = (PAUSE, ROLLBACK, STOP, CONTINUE)
# RunResult.reason (and the run's state) of a run that ended on one.
ANOMALY_REASON = "anomaly"

SPIKE_WINDOW = 100
SPIKE_K = 6.0
SPIKE_WARMUP = 20
MAX_ROLLBACKS = 3
MIN_STD_FRACTION = 1e-3  # the spread a spike is measured against is at least this much of the mean

NON_FINITE_LOSS, NON_FINITE_GRAD, SPIKE = "non-finite loss", "non-finite grad norm", "loss spike"


@dataclass(frozen=True)
class AnomalyGuard:
    """The guard's options, checked when built. `spike_k=0` turns spike detection off.

    `max_rollbacks`: automatic roll-backs (`on_anomaly="rollback"`) without a new healthy
    checkpoint in between; one more anomaly after that many stops the run.
    """

    on_anomaly: str = STOP
    spike_window: int = SPIKE_WINDOW
    spike_k: float = SPIKE_K
    spike_warmup: int = SPIKE_WARMUP
    max_rollbacks: int = MAX_ROLLBACKS

    def __post_init__(self) -> None:
        if self.on_anomaly not in ACTIONS:
            raise ValueError(f"on_anomaly must be one of {', '.join(ACTIONS)}, got {self.on_anomaly!r}")
        if isinstance(self.spike_window, bool) or not isinstance(self.spike_window, int) or self.spike_window < 2:
            raise ValueError(f"spike_window must be an integer >= 2, got {self.spike_window!r}")
        if not (isinstance(self.spike_k, (int, float)) and math.isfinite(self.spike_k) and self.spike_k >= 0):
            raise ValueError(f"spike_k must be a number >= 0 (0: no spike detection), got {self.spike_k!r}")
        if not 2 <= self.spike_warmup <= self.spike_window:
            raise ValueError(f"spike_warmup must be between 2 and spike_window ({self.spike_window}), "
                             f"got {self.spike_warmup!r}")
        if isinstance(self.max_rollbacks, bool) or not isinstance(self.max_rollbacks, int) or self.max_rollbacks < 0:
            raise ValueError(f"max_rollbacks must be an integer >= 0, got {self.max_rollbacks!r}")


@dataclass(frozen=True)
class Anomaly:
    step: int
    kind: str  # NON_FINITE_LOSS, NON_FINITE_GRAD or SPIKE
    detail: str  # in words, e.g. "loss nan" or "loss 9.1 > mean 2.3 + 6 x std 0.4 over 100 steps"


class SpikeDetector:
    """The rolling window of healthy logged losses, by step (a roll-back forgets the newer ones)."""

    def __init__(self, window: int = SPIKE_WINDOW, k: float = SPIKE_K, warmup: int = SPIKE_WARMUP) -> None:
        self.k, self.warmup = k, warmup
        self._losses: deque[tuple[int, float]] = deque(maxlen=window)

    def __len__(self) -> int:
        return len(self._losses)

    def spike(self, loss: float) -> str | None:
        """Why `loss` is a spike against the window, or None (warming up, off, or within bounds)."""
        if not self.k or len(self._losses) < self.warmup:
            return None
        values = [value for _, value in self._losses]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        # A window with (almost) no spread, a loss that has settled, must not flag float noise.
        if loss <= mean + self.k * max(std, MIN_STD_FRACTION * abs(mean)):
            return None
        return f"loss {loss:.4g} > mean {mean:.4g} + {self.k:g} x std {std:.3g} over {len(values)} logged steps"

    def add(self, step: int, loss: float) -> None:
        self._losses.append((step, loss))

    def forget_after(self, step: int) -> None:
        """Drop the losses of steps after `step` (they were rolled back)."""
        while self._losses and self._losses[-1][0] > step:
            self._losses.pop()


def find_anomaly(step: int, loss: float, grad_norm: float | None, spikes: SpikeDetector,
                 scaler_in_use: bool = False) -> Anomaly | None:
    """The anomaly at `step`, or None; a healthy loss joins the spike window.

    Under a grad scaler an infinite gradient is an fp16 overflow, which the scaler skips by
    itself; only a non-finite loss counts then.
    """
    if not math.isfinite(loss):
        return Anomaly(step, NON_FINITE_LOSS, f"loss {loss}")
    if grad_norm is not None and not math.isfinite(grad_norm) and not scaler_in_use:
        return Anomaly(step, NON_FINITE_GRAD, f"grad norm {grad_norm}")
    why = spikes.spike(loss)
    if why is not None:
        return Anomaly(step, SPIKE, why)
    spikes.add(step, loss)
    return None


# --- in words, for every view (the console, the dashboard's log and modal) ------------------------

_DOING = {PAUSE: "paused: roll back, go on or stop", ROLLBACK: "rolling back", STOP: "stopping, nothing new saved",
          CONTINUE: "going on without its update"}


def anomaly_line(step: int, kind: str, detail: str, action: str) -> str:
    """'anomaly at step 14: non-finite loss (loss nan); its update was not applied; rolling back'."""
    return f"anomaly at step {step}: {kind} ({detail}); its update was not applied; {_DOING.get(action, action)}"


def rollback_line(step: int, from_step: int, name: str, skipped_batches: int) -> str:
    return (f"rolled back from step {from_step} to {name} (step {step}) and skipped "
            f"{batches(skipped_batches, 'the ')} of steps {step + 1}-{from_step}")


def batches(count: int, the: str = "") -> str:
    """'the 4 batches', 'the batch': the words a roll-back's skip is said in."""
    return f"{the}batch" if count == 1 else f"{the}{counted(count, 'batch', 'batches')}"
