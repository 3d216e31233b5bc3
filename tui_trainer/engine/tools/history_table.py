"""A run's history as `ckpt history` shows it, from the index: a few rows and a summary.

The same rows and summary as `merge_records`, `downsample` and `summarize` give over every
record (steps never decrease in the file), computed over the index's arrays; only the lines a
shown value needs (the learning rate at a row's end, the first and last times) are read from
history.jsonl. Memory is about the index's size, never a dict per line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tui_trainer.engine.rundir.history_evals import is_evaluation, metric_curve
from tui_trainer.engine.rundir.history_index import load_index
from tui_trainer.engine.rundir.history_scan import KIND_OTHER, KIND_TRAIN, KIND_VAL, scan_records
from tui_trainer.engine.rundir.history_tail import parse_record
from tui_trainer.engine.tools.history_summary import (
    DEFAULT_ROWS,
    HistoryRow,
    HistorySummary,
    anomalies_in,
    merge_records,
    summarize,
    trend_of,
)

PLAIN_LOSSES = ("val_loss", "train_loss", "loss")  # monitored metrics the summary already trends


@dataclass
class HistoryTable:
    rows: list[HistoryRow]  # as shown: downsampled to at most max_rows
    total: int  # rows (distinct steps) before downsampling
    summary: HistorySummary
    notes: list[str] = field(default_factory=list)


def history_table(path: str | os.PathLike[str], max_rows: int = DEFAULT_ROWS,
                  up_to_step: int | None = None, monitor: str = "val_loss", mode: str = "min") -> HistoryTable:
    """Rows and summary of a history file, through `up_to_step` if given; the rows and summary
    carry `monitor`, the run's monitored metric, whatever `evaluate()` named it."""
    path = Path(path)
    notes = []
    records = load_index(path)
    if records is None:
        with open(path, "rb") as f:
            records = scan_records(f)
        notes.append(f"{path.name} has no index (a run from an older version): read it line by line; "
                     "resuming the run builds the index")
    if up_to_step is not None:
        records = records[: int(np.searchsorted(records["step"], up_to_step, "right"))]
    steps = records["step"]
    steps = steps[np.r_[True, steps[1:] != steps[:-1]]] if len(steps) else steps
    if len(steps) <= max_rows:
        parsed = [r for r in _records_at(path, records, 0, len(records)) if up_to_step is None or r["step"] <= up_to_step]
        rows = merge_records(parsed)
        summary = dataclasses.replace(summarize(rows, monitor, mode), anomalies=anomalies_in(parsed))
        return HistoryTable(rows, len(rows), summary, notes)
    return _large_table(path, records, steps, max_rows, notes, monitor, mode)


def _large_table(path: Path, records: np.ndarray, steps: np.ndarray, max_rows: int, notes: list[str],
                 monitor: str, mode: str) -> HistoryTable:
    train_steps, losses = _last_per_step(records, KIND_TRAIN)
    val_steps, vals = _last_per_step(records, KIND_VAL)
    eval_steps = np.unique(records["step"][is_evaluation(records)])
    rows = []
    for i in range(max_rows):
        first, last = int(steps[i * len(steps) // max_rows]), int(steps[(i + 1) * len(steps) // max_rows - 1])
        ta, tb = np.searchsorted(train_steps, [first, last + 1])
        va, vb = np.searchsorted(val_steps, [first, last + 1])
        ea, eb = np.searchsorted(eval_steps, [first, last + 1])
        end_row = _row_at(path, records, last)
        lr_row = end_row if tb > ta and train_steps[tb - 1] == last else (
            _row_at(path, records, int(train_steps[tb - 1])) if tb > ta else None)
        rows.append(HistoryRow(
            step=last,
            loss=_mean(losses[ta:tb]),
            lr=lr_row.lr if lr_row else None,
            val_loss=float(vals[vb - 1]) if vb > va else None,
            epoch=end_row.epoch,
            time=end_row.time,
            first_step=first,
            metrics=_row_at(path, records, int(eval_steps[eb - 1])).metrics if eb > ea else {},
            grad_norm=lr_row.grad_norm if lr_row else None,
        ))
    summary = _summary(path, records, steps, train_steps, losses, val_steps, vals, len(eval_steps))
    if monitor not in PLAIN_LOSSES:  # its curve: the evaluation lines alone are read
        metric_steps, values = metric_curve(path, records, monitor)
        monitored = trend_of(monitor, mode, list(zip(metric_steps.astype(int).tolist(), values.tolist())))
        summary = dataclasses.replace(summary, monitored=monitored)
    summary = dataclasses.replace(summary, anomalies=_anomalies(path, records))
    return HistoryTable(rows, len(steps), summary, notes)


def _anomalies(path: Path, records: np.ndarray) -> tuple[dict, ...]:
    """Anomaly records are indexed as "other" (beside evaluations without val_loss): only those lines are read."""
    found: list[dict] = []
    with open(path, "rb") as f:
        for i in np.flatnonzero(records["kind"] == KIND_OTHER).tolist():
            start = int(records["end"][i - 1]) if i else 0
            f.seek(start)
            record = parse_record(f.read(int(records["end"][i]) - start).strip())
            if record is not None:
                found.append(record)
    return anomalies_in(found)


def _summary(path: Path, records: np.ndarray, steps: np.ndarray, train_steps: np.ndarray, losses: np.ndarray,
             val_steps: np.ndarray, vals: np.ndarray, evaluations: int) -> HistorySummary:
    finite, finite_vals = np.isfinite(losses), np.isfinite(vals)
    lowest = int(np.flatnonzero(finite)[np.argmin(losses[finite])]) if finite.any() else None
    best = int(np.flatnonzero(finite_vals)[np.argmin(vals[finite_vals])]) if finite_vals.any() else None
    first_row, last_row = _row_at(path, records, int(steps[0])), _row_at(path, records, int(steps[-1]))
    last_logged = _row_at(path, records, int(train_steps[-1])) if len(train_steps) else None
    return HistorySummary(
        steps_logged=len(train_steps),
        evaluations=evaluations,
        first_step=int(steps[0]),
        last_step=int(steps[-1]),
        first_loss=float(losses[0]) if len(losses) else None,
        last_loss=float(losses[-1]) if len(losses) else None,
        min_loss=float(losses[lowest]) if lowest is not None else None,
        min_loss_step=int(train_steps[lowest]) if lowest is not None else None,
        best_val_loss=float(vals[best]) if best is not None else None,
        best_val_step=int(val_steps[best]) if best is not None else None,
        last_val_loss=float(vals[-1]) if len(vals) else None,
        non_finite_losses=int((~finite).sum()),
        last_epoch=last_logged.epoch if last_logged else None,
        elapsed_s=last_row.time - first_row.time if first_row.time is not None and last_row.time is not None else None,
        last_logged=last_logged,
    )


def _last_per_step(records: np.ndarray, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of one kind, the last record of each step winning, as merge_records does."""
    chosen = records["kind"] == kind
    steps = records["step"][chosen]
    last = np.r_[steps[1:] != steps[:-1], True] if len(steps) else np.empty(0, bool)
    return steps[last], records["value"][chosen][last]


def _row_at(path: Path, records: np.ndarray, step: int) -> HistoryRow:
    """The merged row of one step, from its lines in history.jsonl."""
    a, b = np.searchsorted(records["step"], [step, step + 1])
    rows = merge_records([r for r in _records_at(path, records, int(a), int(b)) if r["step"] == step])
    return rows[0] if rows else HistoryRow(step)


def _records_at(path: Path, records: np.ndarray, a: int, b: int) -> list[dict]:
    """The parsed lines of index records a..b-1 (and any unindexed lines between them)."""
    if b <= a:
        return []
    start = int(records["end"][a - 1]) if a else 0
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(int(records["end"][b - 1]) - start)
    parsed = (parse_record(line) for line in data.splitlines())
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
            for r in parsed if r is not None]


def _mean(losses: np.ndarray) -> float | None:
    if not len(losses):
        return None
    return math.fsum(losses.tolist()) / len(losses) if np.isfinite(losses).all() else math.nan

