"""One evaluation metric's curve, from the index and the evaluation lines alone.

The index holds each record's kind and, for evaluations, val_loss; any other metric an
`evaluate()` returns (`accuracy`, `bleu`...) is read from the evaluation lines of history.jsonl,
found by their index records. Evaluations are rare beside steps, so the cost follows their
count, never the history's length. No torch here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tui_trainer.engine.rundir.history_scan import KIND_OTHER, KIND_VAL, number

VAL_LOSS = "val_loss"
MAX_LINE_BYTES = 1 << 20  # an evaluation line longer than this is not one the trainer wrote


def is_evaluation(records: np.ndarray) -> np.ndarray:
    """Which index records are evaluations (with val_loss or only other metrics)."""
    kind = records["kind"]
    return (kind == KIND_VAL) | (kind == KIND_OTHER)


def metric_curve(history: str | os.PathLike[str], records: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and float64 values of metric `name` over the evaluations that report it; the last
    record of a step wins. val_loss comes from the index; others from their lines (NaN for null)."""
    if name == VAL_LOSS:
        chosen = np.flatnonzero(records["kind"] == KIND_VAL)
        steps, values = records["step"][chosen], records["value"][chosen].astype(np.float64)
    else:
        steps, values = _read_metric(Path(history), records, np.flatnonzero(is_evaluation(records)), name)
    last = np.r_[steps[1:] != steps[:-1], True] if len(steps) else np.empty(0, bool)
    return steps[last].astype(np.float64), values[last]


def _read_metric(history: Path, records: np.ndarray, at: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    if not len(at):
        return np.empty(0, np.int64), np.empty(0)
    ends = records["end"]
    try:
        f = open(history, "rb")
    except FileNotFoundError:
        return np.empty(0, np.int64), np.empty(0)
    with f:
        for i in at.tolist():
            start = int(ends[i - 1]) if i else 0
            length = int(ends[i]) - start
            if not 0 < length <= MAX_LINE_BYTES:
                continue
            f.seek(start)
            try:
                record = json.loads(f.read(length))
            except ValueError:
                continue
            if isinstance(record, dict) and name in record and "loss" not in record:
                steps.append(int(records["step"][i]))
                values.append(number(record[name]))
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)


def best_index(values: np.ndarray, mode: str) -> int | None:
    """Where the best finite value is (the first, on a tie); None if there is none."""
    finite = np.isfinite(values)
    if not finite.any():
        return None
    candidates = np.flatnonzero(finite)
    pick = np.argmax if mode == "max" else np.argmin
    return int(candidates[pick(values[finite])])

