"""The run's history: `history.jsonl` as it happens, `training_history.json` as a summary.

`history.jsonl` has one object per logged step (`step`, `epoch`, `loss`, `lr`, `time`) and one
per evaluation (`step` and the metrics, e.g. `val_loss`). After a resume from step N every line
past N is dropped first, so the file always reads as one continuous run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tui_trainer.engine.atomic import atomic_open, atomic_write_json

FLUSH_INTERVAL_S = 1.0


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record in a history file; a torn last line (a crash mid-write) is skipped."""
    return list(iter_history(path))


def iter_history(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                yield record


@dataclass
class LossCurves:
    """A run's train loss per logged step and its val loss per evaluation, NaN where not finite."""

    steps: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)


def read_loss_curves(path: str | os.PathLike[str]) -> LossCurves:
    """Train and val loss from a history file, for charts that compare runs."""
    curves = LossCurves()
    for record in iter_history(path):
        if "loss" in record:
            curves.steps.append(float(record["step"]))
            curves.losses.append(_as_float(record["loss"]))
        elif "val_loss" in record:
            curves.val_steps.append(float(record["step"]))
            curves.val_losses.append(_as_float(record["val_loss"]))
    return curves


def truncate_history(path: Path, last_step: int) -> int:
    """Drop records after `last_step` (atomically); return how many were dropped."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for record in iter_history(path):
        if record["step"] <= last_step:
            kept.append(record)
        else:
            dropped += 1
    with atomic_open(path, "w") as f:
        for record in kept:
            f.write(_dumps(record) + "\n")
    return dropped


@dataclass
class EpochSummary:
    """Per-epoch aggregates for `training_history.json`, built incrementally."""

    epochs: list[int] = field(default_factory=list)
    last_steps: list[int] = field(default_factory=list)
    loss_sums: list[float] = field(default_factory=list)
    loss_counts: list[int] = field(default_factory=list)
    val_losses: list[float | None] = field(default_factory=list)

    def add_step(self, epoch: int, step: int, loss: float) -> None:
        self._ensure(epoch)
        self.last_steps[-1] = step
        if math.isfinite(loss):
            self.loss_sums[-1] += loss
            self.loss_counts[-1] += 1

    def add_eval(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if "val_loss" in metrics:
            self._ensure(epoch)
            self.val_losses[-1] = metrics["val_loss"]

    def _ensure(self, epoch: int) -> None:
        if not self.epochs or self.epochs[-1] != epoch:
            self.epochs.append(epoch)
            self.last_steps.append(0)
            self.loss_sums.append(0.0)
            self.loss_counts.append(0)
            self.val_losses.append(None)

    def to_json(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "steps": self.last_steps,
            "train_loss": [s / n if n else None for s, n in zip(self.loss_sums, self.loss_counts)],
            "val_loss": self.val_losses,
        }


class HistoryWriter:
    """Appends to `history.jsonl`; flushes at least once a second while records arrive.

    Not thread-safe: the training thread owns it.
    """

    def __init__(self, run_dir: str | os.PathLike[str], resume_step: int | None = None) -> None:
        from tui_trainer.engine.run_dir import HISTORY_FILE, SUMMARY_FILE

        self.path = Path(run_dir) / HISTORY_FILE
        self.summary_path = Path(run_dir) / SUMMARY_FILE
        self.summary = EpochSummary()
        self.dropped = 0
        last_epoch = 0
        if resume_step is not None:
            self.dropped = truncate_history(self.path, resume_step)
            for record in iter_history(self.path):
                if "loss" in record:
                    last_epoch = record.get("epoch", last_epoch)
                    self.summary.add_step(last_epoch, record["step"], _as_float(record["loss"]))
                else:
                    self.summary.add_eval(last_epoch, record)
        elif self.path.exists() and self.path.stat().st_size:
            raise FileExistsError(f"{self.path} already exists; resume the run instead")
        self._file: IO[str] = open(self.path, "a", buffering=1 << 16)
        self._last_flush = time.monotonic()

    def log_step(self, step: int, epoch: int, loss: float, lr: float, now: float) -> None:
        # Called every step: formatted by hand, as json.dumps would, at a third of its cost.
        loss_text = repr(loss) if math.isfinite(loss) else "null"
        self._file.write(f'{{"step": {step}, "epoch": {epoch}, "loss": {loss_text}, "lr": {lr!r}, "time": {now:.3f}}}\n')
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()
        self.summary.add_step(epoch, step, loss)

    def log_eval(self, step: int, epoch: int, metrics: Mapping[str, float], now: float) -> None:
        self._write({"step": step, **metrics, "time": round(now, 3)})
        self.summary.add_eval(epoch, metrics)

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(_dumps(record) + "\n")
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()

    def sync(self) -> None:
        """Flush to disk and rewrite the summary; called at checkpoints and at the end."""
        self.flush()
        os.fsync(self._file.fileno())
        atomic_write_json(self.summary_path, self.summary.to_json(), durable=False)  # derived from the history

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()


def _dumps(record: Mapping[str, Any]) -> str:
    # NaN/inf are written as null: a diverged loss must not make the file unreadable elsewhere.
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()})


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan
