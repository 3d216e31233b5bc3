"""Durations and ages as a dashboard shows them: short, fixed-ish width, no units to decode."""

from __future__ import annotations

import math
from datetime import datetime, timezone


def format_duration(seconds: float | None) -> str:
    """`42s`, `3:07`, `1:02:03`, `2d 03h`; `-` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_age(created_iso: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO timestamp was: `12s`, `5m`, `3h`, `2d`; `-` if unreadable."""
    if not created_iso:
        return "-"
    try:
        created = datetime.fromisoformat(created_iso)
    except ValueError:
        return "-"
    if created.tzinfo is None:
        created = created.astimezone()
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_rate(steps_per_sec: float) -> str:
    if steps_per_sec <= 0 or not math.isfinite(steps_per_sec):
        return "- it/s"
    if steps_per_sec < 1:
        return f"{1 / steps_per_sec:.1f} s/it"
    return f"{steps_per_sec:.1f} it/s" if steps_per_sec < 100 else f"{steps_per_sec:.0f} it/s"
