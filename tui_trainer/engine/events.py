"""Events the trainer reports: frozen dataclasses, safe to hand to another thread."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    time: float = field(kw_only=True, default=0.0)


@dataclass(frozen=True)
class Started(Event):
    run_dir: str
    run_id: str
    job: str
    step: int
    target: int
    device: str
    resumed_from: str | None = None


@dataclass(frozen=True)
class StepCompleted(Event):
    step: int
    epoch: int
    loss: float
    lr: float
    steps_per_sec: float
    samples_per_sec: float
    target: int


@dataclass(frozen=True)
class Evaluated(Event):
    step: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class CheckpointSaved(Event):
    path: str
    step: int
    kind: str
    size_bytes: int
    seconds: float


@dataclass(frozen=True)
class CheckpointPruned(Event):
    paths: tuple[str, ...]
    freed_bytes: int


@dataclass(frozen=True)
class CheckpointFailed(Event):
    step: int
    kind: str
    reason: str


@dataclass(frozen=True)
class TargetChanged(Event):
    step: int
    old_target: int
    new_target: int
    note: str


@dataclass(frozen=True)
class PolicyChanged(Event):
    keep_last: int


@dataclass(frozen=True)
class Paused(Event):
    step: int


@dataclass(frozen=True)
class Resumed(Event):
    step: int


@dataclass(frozen=True)
class Finished(Event):
    step: int
    reason: str  # "target", "stopped", "interrupted"


@dataclass(frozen=True)
class Failed(Event):
    step: int
    error: str
