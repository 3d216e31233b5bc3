"""The score a Lightning `ModelCheckpoint` callback kept in each `.ckpt` it wrote.

Lightning stores the callback's state under `callbacks`, keyed by a string such as
`ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', ...}`: the monitored metric, this
checkpoint's score (`current_score`), and the best so far with its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MODE_RE = re.compile(r"'mode':\s*'(min|max)'")


@dataclass(frozen=True)
class MonitoredScore:
    monitor: str
    mode: str | None  # from the callback's key, when it says
    current: float | None  # this checkpoint's score
    best: float | None
    best_path: str | None

    @property
    def best_name(self) -> str | None:
        return self.best_path.replace("\\", "/").rsplit("/", 1)[-1] if self.best_path else None


def monitored_score(obj: Any) -> MonitoredScore | None:
    """The first ModelCheckpoint state in a Lightning checkpoint that monitors a metric, else None."""
    callbacks = obj.get("callbacks") if isinstance(obj, Mapping) else None
    if not isinstance(callbacks, Mapping):
        return None
    for key, state in callbacks.items():
        if not (isinstance(key, str) and key.startswith("ModelCheckpoint") and isinstance(state, Mapping)):
            continue
        monitor = state.get("monitor")
        if not isinstance(monitor, str) or not monitor:
            continue
        mode = _MODE_RE.search(key)
        best_path = state.get("best_model_path")
        return MonitoredScore(
            monitor=monitor,
            mode=mode.group(1) if mode else None,
            current=_score(state.get("current_score")),
            best=_score(state.get("best_model_score")),
            best_path=best_path if isinstance(best_path, str) and best_path else None,
        )
    return None


def _score(value: Any) -> float | None:
    """A float from a number or a one-element tensor (Lightning keeps scores as tensors)."""
    if hasattr(value, "numel") and hasattr(value, "item"):
        value = value.item() if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
