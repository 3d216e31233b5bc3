"""Formatting shared by the `ckpt` commands: losses, sizes, times and valid JSON."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from typing import Any

from tui_trainer.engine.sizes import human_bytes

PIPE_WIDTH = 200


def print_json(value: Any) -> None:
    """Valid JSON (no NaN); a list prints one item per line, which is fast for thousands."""
    if isinstance(value, list):
        items = ",\n  ".join(json.dumps(item, allow_nan=False) for item in value)
        print(f"[\n  {items}\n]" if value else "[]")
    else:
        print(json.dumps(value, indent=2, allow_nan=False))


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def iso_or_none(value: str | None) -> str | None:
    try:
        return datetime.fromisoformat(value).isoformat() if value else None
    except ValueError:
        return None


def format_loss(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def format_created(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"
    except ValueError:
        return value or "-"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def signed(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else spec.format(value)


def signed_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + human_bytes(abs(value))


def relative(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3%}"


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def console() -> Any:
    """A Rich console; piped output gets room for full rows instead of Rich's default 80 columns."""
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=PIPE_WIDTH)
    return out
