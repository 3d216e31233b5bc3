"""The numbers beside the loss: learning rate, gradient norm, throughput and the job's own scalars.

One line; each value after the LR has a sparkline of its last logged values. On a narrow line
the least useful ones are left out, never cut mid-word.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from textual.widgets import Label

from tui_trainer.tui.run_model import GRAD_NORM, RunModel
from tui_trainer.tui.widgets.live_text import show_text

SEPARATOR = "  "
BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 8
SLACK = 4  # columns of padding kept before the label shrinks to its text


class TrainScalars(Label):
    DEFAULT_CSS = """
    TrainScalars {
        width: auto;
        height: 1;
        margin-left: 2;
        color: $text-muted;
    }
    """

    _width = 0

    def show(self, model: RunModel, room: int) -> None:
        text = describe_scalars(model, room)
        # Padded to the widest text lately: a label that keeps its width needs no layout pass
        # (a part left out, or a narrower window, gives the room back to the bar).
        if not cell_len(text) <= self._width <= min(room, cell_len(text) + SLACK):
            self._width = cell_len(text)
        self.display = self._width > 0
        show_text(self, text.ljust(self._width))


def describe_scalars(model: RunModel, width: int | None = None) -> str:
    """The line for `model`, keeping the most useful parts that fit `width` (in display order)."""
    if not model.lrs and model.grad_norm is None and not model.scalars:
        return ""  # nothing logged yet
    parts = [(0, f"lr {format_lrs(model.lrs)}")] if model.lrs else []
    if model.grad_norm is not None:
        parts.append((1, f"grad {format_number(model.grad_norm)} {sparkline(model.recent.get(GRAD_NORM, ()))}"))
    if model.state == "running" and model.samples_per_sec > 0:
        parts.append((2, f"{format_number(model.samples_per_sec)} samples/s"))
        if model.tokens_per_sec:
            parts.append((3, f"{format_number(model.tokens_per_sec)} tok/s"))
    for rank, (name, value) in enumerate(model.scalars.items(), start=4):
        parts.append((rank, f"{name} {format_number(value)} {sparkline(model.recent.get(name, ()))}"))
    if width is None:
        return SEPARATOR.join(text for _, text in parts)
    kept: set[int] = set()
    for importance, _ in sorted(parts):
        if len(SEPARATOR.join(text for i, text in parts if i in kept | {importance})) > width:
            break
        kept.add(importance)
    return SEPARATOR.join(text for i, text in parts if i in kept)


def format_lrs(lrs: Sequence[float]) -> str:
    """`3.0e-04`; param groups with other LRs `3.0e-04,1.0e-03` (from the fourth on, counted: `+2`)."""
    distinct = list(dict.fromkeys(f"{lr:.1e}" for lr in lrs))
    return ",".join(distinct[:3]) + (f" +{len(distinct) - 3}" if len(distinct) > 3 else "")


def format_number(value: float | None) -> str:
    """Three significant digits; thousands and millions as k and M (`1.23k`)."""
    if value is None or not math.isfinite(value):
        return "-" if value is None else str(value).lower()
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def sparkline(values: Iterable[float], width: int = SPARK_WIDTH) -> str:
    """The last `width` values as block heights between their min and max; a gap for a non-finite one."""
    recent = list(values)[-width:]
    finite = [v for v in recent if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low
    return "".join(
        " " if not math.isfinite(v) else BLOCKS[round((v - low) / span * (len(BLOCKS) - 1)) if span else 3]
        for v in recent
    )
