"""Per-epoch aggregates for `training_history.json`, kept up to date as records arrive.

Its state travels in each checkpoint (plain lists, loadable with `weights_only=True`), with the
history offset it covers, so a resume puts it back without reading the history; a checkpoint
from an older version gets it rebuilt from the index, vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tui_trainer.engine.rundir.history_scan import KIND_TRAIN, KIND_VAL

STATE_KEYS = ("epochs", "last_steps", "loss_sums", "loss_counts", "val_losses")


@dataclass
class EpochSummary:
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

    def add_records(self, records: np.ndarray) -> None:
        """Index records (`history_scan.RECORD`), one by one: for the few a checkpoint missed."""
        for step, _, value, epoch, kind in records.tolist():
            if kind == KIND_TRAIN:
                self.add_step(epoch, step, value)
            elif kind == KIND_VAL:
                self.add_eval(epoch, {"val_loss": value})

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

    def state(self) -> dict[str, list[Any]]:
        return {key: list(getattr(self, key)) for key in STATE_KEYS}

    @classmethod
    def from_state(cls, state: Any) -> EpochSummary | None:
        """The summary a checkpoint carried, or None if it carried none (or a malformed one)."""
        if not isinstance(state, Mapping) or not all(isinstance(state.get(k), list) for k in STATE_KEYS):
            return None
        lists = [state[k] for k in STATE_KEYS]
        if len({len(v) for v in lists}) != 1:
            return None
        return cls(*(list(v) for v in lists))

    @classmethod
    def from_records(cls, records: np.ndarray) -> EpochSummary:
        """As if every record had been added in order, but in a few numpy passes."""
        kind = records["kind"]
        counted = records[(kind == KIND_TRAIN) | (kind == KIND_VAL)]
        if not len(counted):
            return cls()
        epoch, kind = counted["epoch"], counted["kind"]
        starts = np.flatnonzero(np.r_[True, epoch[1:] != epoch[:-1]])
        train = kind == KIND_TRAIN
        value = counted["value"]
        finite = train & np.isfinite(value)
        val_at = np.where(kind == KIND_VAL, np.arange(len(counted)), -1)
        last_val = np.maximum.reduceat(val_at, starts)
        return cls(
            epochs=epoch[starts].tolist(),
            last_steps=np.maximum.reduceat(np.where(train, counted["step"], 0), starts).tolist(),
            loss_sums=np.add.reduceat(np.where(finite, value, 0.0), starts).tolist(),
            loss_counts=np.add.reduceat(finite.astype(np.int64), starts).tolist(),
            val_losses=[float(value[i]) if i >= 0 else None for i in last_val.tolist()],
        )
