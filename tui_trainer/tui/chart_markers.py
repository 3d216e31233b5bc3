"""What the loss chart marks on the curve: checkpoints (saved, best, pinned, resumed from) and
the run's events (pause, resume, target change, roll-back, warm start, anomaly).

Plain Python, no Textual. Events are mapped by their class name, so a kind of event this
module has not heard of yet is tolerated (not marked), and one added later (an anomaly) is
marked as soon as its name says what it is. Glyphs are ASCII: they read on any terminal,
in colour or not, and none is the val points' `o`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# kind -> (glyph, words); checkpoints sit on the curve, events along the chart's top edge.
CHECKPOINT_KINDS = {
    "saved": ("+", "saved"),
    "best": ("*", "best"),
    "pinned": ("#", "pinned"),
    "resumed_from": ("@", "resumed from"),
}
EVENT_KINDS = {
    "pause": ("P", "pause"),
    "resume": ("R", "resume"),
    "target": ("T", "target change"),
    "rollback": ("B", "roll-back"),
    "warm_start": ("W", "warm start"),
    "anomaly": ("!", "anomaly"),
}
GLYPHS = {kind: glyph for kind, (glyph, _) in {**CHECKPOINT_KINDS, **EVENT_KINDS}.items()}
WORDS = {kind: words for kind, (_, words) in {**CHECKPOINT_KINDS, **EVENT_KINDS}.items()}
# A checkpoint carries one glyph: the most telling of what it is.
CHECKPOINT_PRECEDENCE = ("resumed_from", "best", "pinned", "saved")
# Where events share a column the one drawn last shows: a resume right after a pause leaves the P.
DRAW_ORDER = ("saved", "pinned", "best", "resumed_from", "resume", "target", "warm_start", "pause", "rollback",
              "anomaly")
# Engine event class name -> marker kind. Started is decided by `event_markers` (resume or roll-back).
EVENT_NAMES = {"Paused": "pause", "Resumed": "resume", "TargetChanged": "target", "RolledBack": "rollback"}
# The launch's note for weights taken from another checkpoint (`warm_start.init_from`).
WARM_START_NOTE = "weights from "


@dataclass(frozen=True)
class ChartMarker:
    step: float
    kind: str

    @property
    def glyph(self) -> str:
        return GLYPHS[self.kind]


def checkpoint_markers(rows: Iterable[tuple[float, str]], resumed_from: Iterable[float] = ()) -> list[ChartMarker]:
    """One marker per checkpoint from (step, its marks as the table shows them: "best latest pinned")."""
    resumed = set(resumed_from)
    markers = []
    for step, marks in rows:
        words = set(marks.split())
        if step in resumed:
            words.add("resumed_from")
        words.add("saved")
        kind = next(k for k in CHECKPOINT_PRECEDENCE if k in words)
        markers.append(ChartMarker(float(step), kind))
    return sorted(markers, key=lambda m: m.step)


def event_kind(name: str) -> str | None:
    """The marker kind for an engine event's class name; None for one not marked."""
    if name in EVENT_NAMES:
        return EVENT_NAMES[name]
    return "anomaly" if "anomaly" in name.lower() else None


def event_markers(event: Any, reached_step: float) -> list[ChartMarker]:
    """The markers `event` puts on the curve, given the furthest step the curve has reached."""
    name = type(event).__name__
    step = getattr(event, "step", None)
    if not isinstance(step, int | float):
        step = reached_step
    if name == "Started":
        if not getattr(event, "resumed_from", None):
            return []
        # Started again below where the curve got to: what came after is rolled back.
        return [ChartMarker(float(step), "rollback" if step < reached_step else "resume")]
    kind = event_kind(name)
    return [ChartMarker(float(step), kind)] if kind else []


def resumed_from_step(event: Any) -> float | None:
    """The checkpoint step a Started event resumed from (its step), None for a fresh start."""
    if type(event).__name__ != "Started" or not getattr(event, "resumed_from", None):
        return None
    return float(event.step)


def is_warm_start_note(text: str) -> bool:
    return text.startswith(WARM_START_NOTE)


def legend(kinds: Iterable[str]) -> str:
    """"+ saved  * best  P pause" for the kinds on the chart, in a fixed order."""
    present = set(kinds)
    return "  ".join(f"{GLYPHS[k]} {WORDS[k]}" for k in GLYPHS if k in present)
