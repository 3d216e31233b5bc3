"""A run's history made readable: one row per step, a few rows for a long run, and a summary.

Records are `history.jsonl` lines: step records (`step`, `epoch`, `loss`, `lr`, `time`, and in
newer runs `elapsed`, `grad_norm`, throughput and the job's own scalars) and evaluation records
(`step` and metrics such as `val_loss`). A foreign checkpoint's embedded
history (a dict of lists, or a list of dicts) is turned into the same records first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui_trainer.engine.rundir.history import ANOMALY_KEY, STEP_RECORD_KEYS

STEP_KEYS = ("step", "steps", "iteration", "iterations", "iter", "iters", "global_step")
LOSS_KEYS = ("loss", "train_loss", "losses", "train_losses")
VAL_KEYS = ("val_loss", "val_losses", "valid_loss", "eval_loss", "validation_loss")
LR_KEYS = ("lr", "learning_rate", "lrs", "learning_rates")
EPOCH_KEYS = ("epoch", "epochs")
DEFAULT_ROWS = 30
NOT_METRICS = frozenset({"step", "epoch", "loss", "lr", "time"})  # the rest of a record are eval metrics


@dataclass
class HistoryRow:
    """One step; after downsampling, the span `first_step..step` with its mean loss."""

    step: int
    loss: float | None = None
    lr: float | None = None
    val_loss: float | None = None
    epoch: int | None = None
    time: float | None = None
    first_step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # every metric evaluated at this step
    grad_norm: float | None = None  # before clipping
    elapsed: float | None = None  # the run's training time at this step (newer runs)
    samples_per_sec: float | None = None
    tokens_per_sec: float | None = None
    scalars: dict[str, float] = field(default_factory=dict)  # the job's own, logged with the loss


@dataclass(frozen=True)
class MetricTrend:
    """One evaluation metric over a history: its best (by `mode`), where, and its last value."""

    name: str
    mode: str
    best: float | None
    best_step: int | None
    last: float | None


@dataclass(frozen=True)
class HistorySummary:
    steps_logged: int
    evaluations: int
    first_step: int | None
    last_step: int | None
    first_loss: float | None
    last_loss: float | None
    min_loss: float | None
    min_loss_step: int | None
    best_val_loss: float | None
    best_val_step: int | None
    last_val_loss: float | None
    non_finite_losses: int
    last_epoch: int | None
    elapsed_s: float | None
    monitored: MetricTrend | None = None  # the run's monitored metric, if not val_loss or train loss
    last_logged: HistoryRow | None = None  # the last step record: grad norm, throughput, training time, scalars
    anomalies: tuple[dict[str, Any], ...] = ()  # the anomaly records (`ANOMALY_KEY`): what went wrong, what was done


def anomalies_in(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The records of anomalies (a NaN, a spike) and what was done about each, in the order written."""
    return tuple(dict(r) for r in records if ANOMALY_KEY in r)


def merge_records(records: Sequence[Mapping[str, Any]]) -> list[HistoryRow]:
    """Step and evaluation records of the same step become one row, sorted by step."""
    rows: dict[int, HistoryRow] = {}
    for record in records:
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or ANOMALY_KEY in record:
            continue
        row = rows.setdefault(step, HistoryRow(step))
        if "loss" in record:
            row.loss = _number(record["loss"], missing=math.nan)  # history.jsonl writes NaN as null
        if "lr" in record:
            row.lr = _number(record["lr"])
        if _is_int(record.get("epoch")):
            row.epoch = int(record["epoch"])
        if "val_loss" in record:
            row.val_loss = _number(record["val_loss"], missing=math.nan)
        if "loss" not in record:  # an evaluation: every number it holds is a metric
            row.metrics.update((k, _number(v, missing=math.nan)) for k, v in record.items()
                               if k not in NOT_METRICS and (v is None or _number(v) is not None))
        else:
            _step_numbers(row, record)
        time = _number(record.get("time"))
        row.time = time if time is not None else row.time
    return [rows[step] for step in sorted(rows)]


def _step_numbers(row: HistoryRow, record: Mapping[str, Any]) -> None:
    """What a step record holds beside the loss (none of it in an older run's)."""
    row.grad_norm = _number(record.get("grad_norm"), missing=math.nan) if "grad_norm" in record else None
    row.elapsed = _number(record.get("elapsed"))
    row.samples_per_sec, row.tokens_per_sec = _number(record.get("samples_per_sec")), _number(record.get("tokens_per_sec"))
    row.scalars = {k: _number(v, missing=math.nan) for k, v in record.items()  # type: ignore[misc]
                   if k not in STEP_RECORD_KEYS and (v is None or _number(v) is not None)}


def downsample(rows: Sequence[HistoryRow], max_rows: int = DEFAULT_ROWS) -> list[HistoryRow]:
    """At most `max_rows` rows, each spanning consecutive steps: the span's mean loss (NaN if
    any loss in it was not finite), its last evaluation, and the learning rate at its end."""
    if len(rows) <= max_rows:
        return list(rows)
    merged = []
    for i in range(max_rows):
        span = rows[i * len(rows) // max_rows : (i + 1) * len(rows) // max_rows]
        losses = [r.loss for r in span if r.loss is not None]
        vals = [r.val_loss for r in span if r.val_loss is not None]
        evaluated = [r.metrics for r in span if r.metrics]
        lrs = [r.lr for r in span if r.lr is not None]
        last = span[-1]
        merged.append(
            HistoryRow(
                step=last.step,
                loss=_mean(losses),
                lr=lrs[-1] if lrs else None,
                val_loss=vals[-1] if vals else None,
                epoch=last.epoch,
                time=last.time,
                first_step=span[0].step,
                metrics=dict(evaluated[-1]) if evaluated else {},
                grad_norm=last_logged.grad_norm if (last_logged := _last_logged(span)) else None,
            )
        )
    return merged


def _last_logged(rows: Sequence[HistoryRow]) -> HistoryRow | None:
    return next((r for r in reversed(rows) if r.loss is not None), None)


def summarize(rows: Sequence[HistoryRow], monitor: str = "val_loss", mode: str = "min") -> HistorySummary:
    """The summary; `monitor` (with `mode`) names the metric to trend besides the losses."""
    logged = [r for r in rows if r.loss is not None]
    finite = [r for r in logged if math.isfinite(r.loss)]  # type: ignore[arg-type]
    evals = [r for r in rows if r.val_loss is not None]
    finite_evals = [r for r in evals if math.isfinite(r.val_loss)]  # type: ignore[arg-type]
    lowest = min(finite, key=lambda r: r.loss, default=None)  # type: ignore[arg-type,return-value]
    best = min(finite_evals, key=lambda r: r.val_loss, default=None)  # type: ignore[arg-type,return-value]
    times = [r.time for r in rows if r.time is not None]
    epochs = [r.epoch for r in rows if r.epoch is not None]
    return HistorySummary(
        steps_logged=len(logged),
        evaluations=sum(1 for r in rows if r.val_loss is not None or r.metrics),
        first_step=rows[0].step if rows else None,
        last_step=rows[-1].step if rows else None,
        first_loss=logged[0].loss if logged else None,
        last_loss=logged[-1].loss if logged else None,
        min_loss=lowest.loss if lowest else None,
        min_loss_step=lowest.step if lowest else None,
        best_val_loss=best.val_loss if best else None,
        best_val_step=best.step if best else None,
        last_val_loss=evals[-1].val_loss if evals else None,
        non_finite_losses=len(logged) - len(finite),
        last_epoch=epochs[-1] if epochs else None,
        elapsed_s=times[-1] - times[0] if len(times) > 1 else None,
        monitored=None if monitor in ("val_loss", "train_loss", "loss") else trend_of(
            monitor, mode, [(r.step, r.metrics[monitor]) for r in rows if monitor in r.metrics]),
        last_logged=logged[-1] if logged else None,
    )


def trend_of(name: str, mode: str, values: Sequence[tuple[int, float]]) -> MetricTrend:
    """Best (the first, on a tie) and last of (step, value) pairs; NaN is never best."""
    finite = [(step, value) for step, value in values if math.isfinite(value)]
    pick = max if mode == "max" else min
    best = pick(finite, key=lambda sv: sv[1]) if finite else None  # max/min keep the first of equals
    return MetricTrend(name, mode, best[1] if best else None, best[0] if best else None,
                       values[-1][1] if values else None)


def records_from_embedded(history: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """History records from a foreign checkpoint's `training_history`, and notes on guesses made."""
    if isinstance(history, Mapping):
        return _records_from_columns(history)
    if isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        records = []
        for index, item in enumerate(history):
            if isinstance(item, Mapping):
                step = _first_value(item, STEP_KEYS)
                record = _record(int(_number(step)) if _is_int(step) else index + 1, item)  # type: ignore[arg-type]
                if len(record) > 1:
                    records.append(record)
        return _combine(records), ([] if records else ["the history holds no records"])
    return [], ["the history is neither a dict of lists nor a list of records"]


def _records_from_columns(columns: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    lists = {str(k): list(v) for k, v in columns.items() if isinstance(v, Sequence) and not isinstance(v, (str, bytes))}
    if not lists:
        return [], ["the history holds no lists of values"]
    notes = []
    step_key = next((k for k in STEP_KEYS if k in lists and all(_is_int(s) for s in lists[k])), None)
    if step_key is not None:
        steps = [int(_number(s)) for s in lists[step_key]]  # type: ignore[arg-type]
    else:
        steps = list(range(1, max(len(v) for v in lists.values()) + 1))
        notes.append("the history records no steps: rows are numbered by position")
    records = []
    for key in (*LOSS_KEYS, *VAL_KEYS, *LR_KEYS, *EPOCH_KEYS):
        values = lists.get(key)
        if values is None or key == step_key or not values:
            continue
        if len(values) == len(steps):
            placed = steps
        else:
            # Evaluated less often than logged: assume evenly spaced, ending at the last step.
            placed = [steps[min(len(steps) - 1, (i + 1) * len(steps) // len(values) - 1)] for i in range(len(values))]
            notes.append(f"{key} has {len(values)} values for {len(steps)} steps: assumed evenly spaced")
        for step, value in zip(placed, values):
            number = _number(value)
            if number is not None:  # None: not evaluated at that point
                records.append({"step": step, _canonical(key): int(number) if key in EPOCH_KEYS else number})
    return _combine(records), notes


def _record(step: int, item: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"step": step}
    for keys in (LOSS_KEYS, VAL_KEYS, LR_KEYS, EPOCH_KEYS):
        value = _number(_first_value(item, keys))
        if value is not None:
            record[_canonical(keys[0])] = int(value) if keys is EPOCH_KEYS else value
    return record


def _combine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per step holding every value given for it, in step order."""
    by_step: dict[int, dict[str, Any]] = {}
    for record in records:
        by_step.setdefault(record["step"], {"step": record["step"]}).update(record)
    return [by_step[s] for s in sorted(by_step)]


def _canonical(key: str) -> str:
    for keys, name in ((LOSS_KEYS, "loss"), (VAL_KEYS, "val_loss"), (LR_KEYS, "lr"), (EPOCH_KEYS, "epoch")):
        if key in keys:
            return name
    return key


def _first_value(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if item.get(key) is not None:
            return item[key]
    return None


def _is_int(value: Any) -> bool:
    number = _number(value)
    return number is not None and math.isfinite(number) and number == int(number)


def _number(value: Any, missing: float | None = None) -> float | None:
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return missing
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return missing


def _mean(losses: list[float]) -> float | None:
    if not losses:
        return None
    return math.fsum(losses) / len(losses) if all(map(math.isfinite, losses)) else math.nan
