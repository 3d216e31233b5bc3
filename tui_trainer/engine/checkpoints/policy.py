"""The checkpoint policy: when to save, what to keep, and which metric decides "best"."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tui_trainer.engine.errors import InvalidPolicy


@dataclass(frozen=True)
class CheckpointPolicy:
    """Validated on construction; stored in the run so `resume` keeps it unless overridden."""

    every_steps: int = 100
    every_minutes: float = 0.0
    keep_last: int = 5
    monitor: str = "val_loss"
    mode: str = "min"
    eval_before_save: bool = True
    save_final: bool = True

    def __post_init__(self) -> None:
        _require_int("every_steps", self.every_steps, "--ckpt-every", "0 turns periodic saves off")
        _require_int("keep_last", self.keep_last, "--keep-last", "0 keeps every checkpoint")
        if (
            isinstance(self.every_minutes, bool)
            or not isinstance(self.every_minutes, (int, float))
            or not math.isfinite(self.every_minutes)
            or self.every_minutes < 0
        ):
            raise InvalidPolicy(
                f"--ckpt-minutes must be a number >= 0 (0 turns timed saves off), got {self.every_minutes!r}"
            )
        if self.mode not in ("min", "max"):
            raise InvalidPolicy(f"monitor mode must be 'min' or 'max', got {self.mode!r}")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise InvalidPolicy("the monitored metric needs a name, e.g. 'val_loss'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointPolicy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **overrides: Any) -> CheckpointPolicy:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _require_int(name: str, value: Any, flag: str, zero_means: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPolicy(f"{flag} must be an integer >= 0 ({zero_means}), got {value!r}")
