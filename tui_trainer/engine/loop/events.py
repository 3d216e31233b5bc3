"""Events the trainer reports: frozen dataclasses, safe to hand to another thread."""

from __future__ import annotations

from dataclasses import dataclass, field

# What a trainer does when a write does not fit (its `when_disk_full`): end the run, or pause.
DISK_FULL_STOP, DISK_FULL_PAUSE = "stop", "pause"
# DiskFull.kind when what did not fit is a record of the run (history, run.json), not a checkpoint.
DISK_FULL_WRITE = "write"


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
    elapsed: float | None = None  # training time before this start (a resumed run's), in seconds


@dataclass(frozen=True)
class StepCompleted(Event):
    """A logged step. Speeds are over training time (`step_rate`); `elapsed` is the run's training
    time so far, across resumes; `lrs` holds every param group's LR (`lr` is the first's)."""

    step: int
    epoch: int
    loss: float
    lr: float
    steps_per_sec: float
    samples_per_sec: float
    target: int
    elapsed: float | None = None  # None: not known (an older run's history)
    lrs: tuple[float, ...] = ()
    grad_norm: float | None = None  # before clipping; None where the step did not measure it
    tokens_per_sec: float | None = None  # when the job says how many tokens a batch holds
    scalars: dict[str, float] = field(default_factory=dict)  # the job's own, from its loss_fn


@dataclass(frozen=True)
class Evaluated(Event):
    step: int
    metrics: dict[str, float]
    seconds: float = 0.0  # how long it took (kept out of training time)


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
class DiskFull(Event):
    """A write did not fit, so training is paused with nothing torn on disk; `resume()` retries it.

    Only a trainer asked to pause on a full disk (`when_disk_full="pause"`) reports this; by
    default a full disk ends the run instead.
    """

    step: int
    kind: str  # the save that did not fit (periodic, manual, final), or DISK_FULL_WRITE
    name: str  # the checkpoint's name, or the file's (history.jsonl, run.json)
    needed_bytes: int | None
    free_bytes: int | None
    directory: str
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
class AnomalyFound(Event):
    """A step whose loss or grad norm was not finite, or whose loss spiked; its update was not applied.

    `action` is what the run does (`anomaly.ACTIONS`): with "pause" it waits for a roll-back,
    a resume (go on) or a stop. `rollback_to` names the last healthy checkpoint a roll-back
    would load, and `skip_batches` how many batches it would skip (those of the steps after it).
    """

    step: int
    kind: str
    detail: str
    action: str
    rollback_to: str | None = None
    skip_batches: int = 0


@dataclass(frozen=True)
class RolledBack(Event):
    """After an anomaly at `from_step`: back to checkpoint `name` (step `step`), past `skipped_batches`."""

    step: int
    from_step: int
    name: str
    skipped_batches: int
    superseded: int = 0  # newer checkpoints set aside


@dataclass(frozen=True)
class Finished(Event):
    step: int
    reason: str  # "target", "stopped", "interrupted", "disk_full", "anomaly"


@dataclass(frozen=True)
class Failed(Event):
    step: int
    error: str
