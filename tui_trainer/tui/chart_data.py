"""Loss series kept compact for days-long runs, and the pure functions that shape them for a chart.

A chart is never handed the raw history: `downsample_minmax` reduces a series to about two
points per column, keeping each bucket's minimum and maximum so that a loss spike survives.
numpy is imported by the functions that shape a series for drawing, not by `LossSeries`, so the
dashboard's first frame does not wait for it.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# TensorBoard's smoothing slider defaults to 0.6; 0.9 reads better for noisy per-step losses.
EMA_WEIGHT = 0.9
# The EMA weights `[` and `]` step through; 0 is no smoothing.
SMOOTHING_LEVELS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
# Y range modes `y` cycles through: robust once the run is past its first steps, the whole
# curve, robust from the start.
Y_AUTO, Y_ALL, Y_ROBUST = "auto", "all", "robust"
Y_MODES = (Y_AUTO, Y_ALL, Y_ROBUST)
# Robust limits leave out the first 10% of the points in view (the early fall) and the top and
# bottom 1% of the rest (lone spikes), then pad by 10% of the span.
ROBUST_SKIP, ROBUST_QUANTILES, Y_PAD = 0.10, (0.01, 0.99), 0.10
# "Past the first steps": auto turns robust once this many points are in view.
ROBUST_AFTER_POINTS = 50
# Chart windows ("last N steps") on offer; only those shorter than the run so far are offered.
WINDOWS = (100, 1_000, 10_000, 100_000, 1_000_000)


def downsample_minmax(x: Sequence[float], y: Sequence[float], buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `2 * buckets` points of (x, y): each bucket's min and max, in x order.

    Non-finite y values are dropped first. Series already short enough come back unchanged.
    """
    import numpy as np

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    finite = np.isfinite(ys) & np.isfinite(xs)
    xs, ys = xs[finite], ys[finite]
    if buckets < 1 or len(ys) <= 2 * buckets:
        return xs, ys
    # Equal-count buckets: steps are logged at a steady interval, so count tracks x closely.
    edges = np.linspace(0, len(ys), buckets + 1).astype(int)
    keep = []
    for start, end in zip(edges[:-1], edges[1:]):
        if end <= start:
            continue
        chunk = ys[start:end]
        lo, hi = start + int(chunk.argmin()), start + int(chunk.argmax())
        keep.extend(sorted({lo, hi}))
    index = np.asarray(keep, dtype=int)
    return xs[index], ys[index]


class DebiasedEma:
    """An exponential moving average debiased at the start, as TensorBoard's smoothing.

    Without debiasing the curve starts at zero and climbs; dividing by `1 - weight**n` removes
    that. Non-finite values are skipped, so one NaN loss does not poison the rest of the curve.
    """

    def __init__(self, weight: float = EMA_WEIGHT) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"EMA weight must be in [0, 1), got {weight}")
        self.weight = weight
        self._raw = 0.0
        self._count = 0

    def update(self, value: float) -> float:
        if math.isfinite(value):
            self._raw = self.weight * self._raw + (1.0 - self.weight) * value
            self._count += 1
        if self._count == 0:
            return math.nan
        return self._raw / (1.0 - self.weight**self._count)


def debiased_ema(values: Sequence[float], weight: float = EMA_WEIGHT) -> list[float]:
    ema = DebiasedEma(weight)
    return [ema.update(v) for v in values]


# Block length of the vectorised EMA: decay**-block stays within float range for the decays met.
_EMA_BLOCK = 64
_LOOP_BELOW = 4096  # short enough to run as a plain loop


def debiased_ema_array(values: np.ndarray, weight: float = EMA_WEIGHT) -> tuple[np.ndarray, float, int]:
    """`DebiasedEma` over a whole array at numpy speed (a million points in tens of milliseconds).

    Returns the smoothed values (NaN before the first finite one; a non-finite value repeats
    the last smoothed one, as `update` does), and the EMA's raw state and count, so that an
    `update` afterwards continues exactly where the array left off.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    v = values[finite]
    n = len(v)
    if n == 0:
        return np.full(len(values), np.nan), 0.0, 0
    raw = _linear_recurrence((1.0 - weight) * v, weight)
    # The debiasing divisor 1 - w^k is 1 to float precision after a few hundred points.
    debias = np.ones(n)
    if weight > 0.0:
        m = min(n, int(math.log(1e-18) / math.log(weight)) + 1)
        debias[:m] = 1.0 - weight ** np.arange(1, m + 1)
    smoothed = raw / debias
    positions = np.cumsum(finite) - 1  # the last finite value at or before each point
    out = np.where(positions >= 0, smoothed[np.maximum(positions, 0)], np.nan)
    return out, float(raw[-1]), n


def _linear_recurrence(u: np.ndarray, decay: float) -> np.ndarray:
    """y_k = decay * y_(k-1) + u_k from y_(-1) = 0, in blocks: within one, y_j = decay^j cumsum(u_i decay^-i)."""
    import numpy as np

    n = len(u)
    if decay == 0.0:
        return u.copy()
    if n < _LOOP_BELOW or decay ** (_EMA_BLOCK - 1) < 1e-250:
        out, y = np.empty(n), 0.0
        for k, x in enumerate(u.tolist()):
            y = decay * y + x
            out[k] = y
        return out
    block = _EMA_BLOCK
    padded = np.zeros(-(-n // block) * block)
    padded[:n] = u
    blocks = padded.reshape(-1, block)
    j = np.arange(block)
    partial = decay**j * np.cumsum(blocks * decay ** (-j), axis=1)
    # Each block's carry-in is the same recurrence over the blocks' last values, one level up.
    ends = _linear_recurrence(partial[:, -1], decay**block)
    carries = np.concatenate(([0.0], ends[:-1]))
    return (partial + np.outer(carries, decay ** (j + 1))).ravel()[:n]


def log_ticks(low: float, high: float, max_ticks: int = 8) -> list[float]:
    """Real-valued tick positions for a log axis spanning [low, high] (both > 0)."""
    if not (low > 0 and high > 0) or high < low:
        return []
    if high / low < 10:
        # Less than a decade: round-number linear ticks read better than sparse decades.
        return [t for t in linear_ticks(low, high, max_ticks) if t > 0]
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas if low <= m * 10.0**e <= high]
        if len(ticks) <= max_ticks:
            return ticks
    step = math.ceil((last - first + 1) / max_ticks)
    return [10.0**e for e in range(first, last + 1, step) if low <= 10.0**e <= high]


def linear_ticks(low: float, high: float, max_ticks: int) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / max(1, max_ticks - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.ceil(low / step) * step
    count = int(math.floor((high - start) / step + 1e-9)) + 1
    return [round(start + i * step, 12) for i in range(count)]


def next_smoothing(current: float, step: int) -> float:
    """The smoothing level `step` places up (+1) or down (-1) from `current`, within SMOOTHING_LEVELS."""
    below = [w for w in SMOOTHING_LEVELS if w <= current]
    index = SMOOTHING_LEVELS.index(below[-1]) if below else 0
    return SMOOTHING_LEVELS[min(max(index + step, 0), len(SMOOTHING_LEVELS) - 1)]


def next_y_mode(current: str) -> str:
    return Y_MODES[(Y_MODES.index(current) + 1) % len(Y_MODES)] if current in Y_MODES else Y_AUTO


def robust_applies(mode: str, points: int) -> bool:
    """Whether `mode` leaves the first steps' fall out of the y range, with `points` in view."""
    return mode == Y_ROBUST or (mode == Y_AUTO and points >= ROBUST_AFTER_POINTS)


def y_limits(values: np.ndarray, robust: bool) -> tuple[float, float] | None:
    """The y axis for `values` (in x order), padded; robust: without the first steps' fall and lone spikes."""
    import numpy as np

    ys = np.asarray(values, dtype=float)
    ys = ys[np.isfinite(ys)]
    if not len(ys):
        return None
    if robust and len(ys) >= 10:
        rest = ys[int(len(ys) * ROBUST_SKIP):]
        low, high = (float(q) for q in np.quantile(rest, ROBUST_QUANTILES))
    else:
        low, high = float(ys.min()), float(ys.max())
    span = high - low
    pad = span * Y_PAD if span > 0 else max(abs(high) * Y_PAD, 1e-6)
    return low - pad, high + pad


def y_range_words(mode: str, robust: bool, short: bool = False) -> str:
    """The y range in words for the caption: what the axis leaves out, and whether that was chosen."""
    if short:
        words = "y robust" if robust else "y all"
    else:
        words = "y: early fall left out" if robust else "y: whole curve"
    return f"{words} (auto)" if mode == Y_AUTO and not short else words


def window_choices(span: float) -> list[int | None]:
    """The whole run (None), then each window shorter than `span` steps, widest first."""
    return [None] + sorted((w for w in WINDOWS if w < span), reverse=True)


def next_window(current: int | None, span: float) -> int | None:
    """The window after `current` in `window_choices(span)`, back to the whole run at the end."""
    choices = window_choices(span)
    if current not in choices:
        return None
    return choices[(choices.index(current) + 1) % len(choices)]


def in_window(steps: Sequence[float], values: Sequence[float], window: int | None,
              last_step: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The points of (steps, values) within `window` steps of `last_step` (all when window is None)."""
    import numpy as np

    xs = np.frombuffer(steps, dtype=float) if isinstance(steps, array) else np.asarray(steps, dtype=float)
    ys = np.frombuffer(values, dtype=float) if isinstance(values, array) else np.asarray(values, dtype=float)
    if window is None or last_step is None:
        return xs, ys
    start = int(np.searchsorted(xs, last_step - window, side="left"))
    return xs[start:], ys[start:]


def format_loss(value: float | None) -> str:
    """A loss for a caption or legend: four significant digits, "-" when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def format_tick(value: float) -> str:
    return f"{value:.3g}"


def format_step(value: float) -> str:
    """Step counts on an axis: `800`, `12k`, `1.5M`."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= 10 * size or (abs(value) >= size and value % (size / 10) == 0):
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


class LossSeries:
    """One curve (train or val loss): steps, values and their running EMA, as packed arrays.

    Owned by the UI thread. A million points cost about 24 MB.
    """

    def __init__(self, weight: float = EMA_WEIGHT) -> None:
        self.steps = array("d")
        self.values = array("d")
        self.smoothed = array("d")
        self._ema = DebiasedEma(weight)
        self.version = 0  # bumped on every change, so a chart knows when to redraw

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, value: float) -> None:
        if self.steps and step <= self.steps[-1]:
            self._truncate_from(step)
        self.steps.append(float(step))
        self.values.append(value)
        self.smoothed.append(self._ema.update(value))
        self.version += 1

    def load(self, steps: Sequence[float], values: Sequence[float]) -> None:
        """Replace the whole series at once: a run's history read from disk, not replayed point by point."""
        import numpy as np

        xs, ys = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
        smoothed, raw, count = debiased_ema_array(ys, self._ema.weight)
        self.steps, self.values, self.smoothed = array("d", xs.tobytes()), array("d", ys.tobytes()), array("d", smoothed.tobytes())
        self._ema = DebiasedEma(self._ema.weight)
        self._ema._raw, self._ema._count = raw, count
        self.version += 1

    @property
    def weight(self) -> float:
        return self._ema.weight

    def reweight(self, weight: float) -> None:
        """Smooth the whole series again with another EMA weight (numpy speed: a million points in ~0.1 s)."""
        if weight == self._ema.weight:
            return
        self._ema = DebiasedEma(weight)
        if self.values:
            smoothed, self._ema._raw, self._ema._count = debiased_ema_array(self.values, weight)
            self.smoothed = array("d", smoothed.tobytes())
        self.version += 1

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def _truncate_from(self, step: int) -> None:
        # A resume from an earlier checkpoint replays steps: the old tail is superseded.
        keep = bisect_left(self.steps, step)
        del self.steps[keep:], self.values[keep:], self.smoothed[keep:]
        self._ema = DebiasedEma(self._ema.weight)
        if self.values:
            _, self._ema._raw, self._ema._count = debiased_ema_array(self.values, self._ema.weight)
