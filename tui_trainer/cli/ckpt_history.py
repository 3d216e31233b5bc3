"""`ckpt history`: a run's training history as a compact table and a summary."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_trainer.cli import ckpt_format as fmt
from tui_trainer.cli.ckpt_paths import existing_file
from tui_trainer.engine.checkpoints.meta import read_sidecar, sidecar_path
from tui_trainer.engine.errors import CheckpointError, RunDirError, TrainerError
from tui_trainer.engine.rundir.history import ANOMALY_KEY, iter_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, is_run_dir, read_run
from tui_trainer.engine.tools.history_summary import (
    HistoryRow,
    HistorySummary,
    downsample,
    merge_records,
    records_from_embedded,
    summarize,
)
from tui_trainer.engine.tools.history_table import HistoryTable, history_table
from tui_trainer.engine.words import counted

HISTORY_ROWS = 30


def run_history(args: argparse.Namespace) -> int:
    source = history_source(Path(args.path))
    if args.json:
        print_json_stream(source.records())
        return 0
    table_data = source.table()
    if not table_data.total:
        print(f"no history records in {source.name}")
        return 0
    shown, notes = table_data.rows, source.notes + table_data.notes
    from rich.table import Table

    spans = len(shown) < table_data.total
    monitored = table_data.summary.monitored
    with_val = monitored is None or table_data.summary.best_val_loss is not None or any(
        r.val_loss is not None for r in shown)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("steps" if spans else "step", justify="right", no_wrap=True)
    table.add_column("loss (mean)" if spans else "loss", justify="right")
    if monitored is not None:
        table.add_column(monitored.name, justify="right")
    if with_val:
        table.add_column("val_loss", justify="right")
    table.add_column("lr", justify="right")
    with_grad = any(r.grad_norm is not None for r in shown)
    if with_grad:
        table.add_column("grad norm", justify="right")
    for r in shown:
        step = f"{r.first_step}-{r.step}" if spans and r.first_step != r.step else str(r.step)
        lr = "-" if r.lr is None else f"{r.lr:.3g}"
        metric = [fmt.format_loss(r.metrics.get(monitored.name))] if monitored is not None else []
        val = [fmt.format_loss(r.val_loss)] if with_val else []
        grad = [_number(r.grad_norm)] if with_grad else []
        table.add_row(step, fmt.format_loss(r.loss), *metric, *val, lr, *grad)
    print(f"history of {source.name}")
    fmt.console().print(table)
    if spans:
        evaluated = "the metrics" if monitored is not None else "val_loss"
        print(
            f"{table_data.total} steps shown as {len(shown)} rows: loss is the mean over each row's steps, "
            f"{evaluated} the last evaluation among them"
            + (", lr and grad norm their last step's" if with_grad else "") + " (--json prints every record)"
        )
    for note in notes:
        print(f"note: {note}")
    for line in history_summary_lines(table_data.summary):
        print(line)
    return 0


@dataclass
class HistorySource:
    """Where a history comes from: a run's history file (read through its index, streamed), or
    the records embedded in a foreign checkpoint (held in memory: they were loaded with it)."""

    name: str
    notes: list[str]
    path: Path | None = None
    up_to_step: int | None = None
    embedded: list[dict[str, Any]] | None = None
    monitor: str = "val_loss"
    mode: str = "min"

    def records(self) -> Iterator[dict[str, Any]]:
        if self.embedded is not None:
            yield from self.embedded
            return
        for record in iter_history(self.path):
            if self.up_to_step is None or record["step"] <= self.up_to_step:
                yield fmt.json_safe(record)

    def table(self) -> HistoryTable:
        if self.embedded is not None:
            rows = merge_records(self.embedded)
            return HistoryTable(downsample(rows, HISTORY_ROWS), len(rows), summarize(rows))
        return history_table(self.path, HISTORY_ROWS, self.up_to_step, self.monitor, self.mode)


def print_json_stream(records: Iterable[dict[str, Any]]) -> None:
    """As `fmt.print_json` prints a list, one record at a time."""
    out = sys.stdout
    first = True
    for record in records:
        out.write(("[\n  " if first else ",\n  ") + json.dumps(record, allow_nan=False))
        first = False
    out.write("[]\n" if first else "\n]\n")


def history_source(path: Path) -> HistorySource:
    if path.is_dir():
        if not (path / HISTORY_FILE).exists():
            what = "" if is_run_dir(path) else " (it is not a tui-trainer run dir)"
            raise RunDirError(f"{path} has no {HISTORY_FILE}{what}; pass a run dir or a checkpoint file")
        return HistorySource(str(path), [], path / HISTORY_FILE, **monitored_by(path))
    file = existing_file(path, "pass a run dir or a checkpoint file")
    meta = read_sidecar(sidecar_path(file))
    if meta is None:
        from tui_trainer.engine.checkpoints import file as checkpoint_file  # imports torch

        obj = checkpoint_file.load_checkpoint(file, mmap=True)
        if not checkpoint_file.is_own_format(obj):
            embedded = checkpoint_file.foreign_history(obj) if isinstance(obj, dict) else None
            if embedded is None and isinstance(obj, dict) and isinstance(obj.get("history"), list):
                embedded = obj["history"]
            if embedded is None:
                raise CheckpointError(
                    f"{file} holds no training history (looked for training_history and history)"
                )
            records, notes = records_from_embedded(embedded)
            return HistorySource(f"{file} (embedded)", notes, embedded=[fmt.json_safe(r) for r in records])
        meta = checkpoint_file.read_meta(file)
    run_history_file = file.parent / HISTORY_FILE
    if not run_history_file.exists():
        raise RunDirError(f"{file.parent} has no {HISTORY_FILE} for {file.name}")
    note = f"the run's history up to step {meta.step}, where {file.name} was saved"
    return HistorySource(str(file), [note], run_history_file, up_to_step=meta.step, **monitored_by(file.parent))


def monitored_by(run_dir: Path) -> dict[str, str]:
    """The run's monitored metric and mode, from run.json; val_loss (min) for a plain folder."""
    try:
        policy = read_run(run_dir).policy
    except (TrainerError, OSError):  # not a run dir, or a damaged run.json: the history still shows
        return {}
    return {"monitor": policy.monitor, "mode": policy.mode}


def history_summary_lines(s: HistorySummary) -> list[str]:
    lines = [
        f"{counted(s.steps_logged, 'step')} logged (steps {fmt.or_dash(s.first_step)}-{fmt.or_dash(s.last_step)}), "
        f"{counted(s.evaluations, 'evaluation')}" + (f", last epoch {s.last_epoch}" if s.last_epoch is not None else "")
    ]
    if s.first_loss is not None:
        lines.append(
            f"loss {fmt.format_loss(s.first_loss)} -> {fmt.format_loss(s.last_loss)}, "
            f"lowest {fmt.format_loss(s.min_loss)} at step {fmt.or_dash(s.min_loss_step)}"
        )
    m = s.monitored
    if m is not None and m.last is not None:
        best = f"best {fmt.format_loss(m.best)} at step {m.best_step}" if m.best is not None else "no finite value"
        lines.append(f"{m.name} {best} ({m.mode}), last {fmt.format_loss(m.last)}")
    if s.best_val_loss is not None:
        lines.append(
            f"val_loss best {fmt.format_loss(s.best_val_loss)} at step {s.best_val_step}, "
            f"last {fmt.format_loss(s.last_val_loss)}"
        )
    if s.non_finite_losses:
        lines.append(f"{counted(s.non_finite_losses, 'step')} had a non-finite loss (NaN or inf)")
    lines.extend(_anomaly_lines(s.anomalies))
    last = s.last_logged
    if last is not None and last.elapsed is not None:
        wall = f" (wall time {fmt.format_duration(s.elapsed_s)}, pauses included)" if s.elapsed_s is not None else ""
        lines.append(f"training time {fmt.format_duration(last.elapsed)}{wall}")
    elif s.elapsed_s is not None:
        lines.append(f"time {fmt.format_duration(s.elapsed_s)}")
    if last is not None:
        lines.extend(_last_step_lines(last))
    return lines


SHOWN_ANOMALIES = 3


def _anomaly_lines(anomalies: Sequence[Mapping[str, Any]]) -> list[str]:
    """How many anomalies the guard met and, for the last few, what it did about each."""
    if not anomalies:
        return []
    count = len(anomalies)
    lines = [f"{count} {'anomaly' if count == 1 else 'anomalies'}" + (f", the last {SHOWN_ANOMALIES}:"
                                                                    if count > SHOWN_ANOMALIES else ":")]
    for record in anomalies[-SHOWN_ANOMALIES:]:
        what = f"step {record.get('bad_step', record.get('step'))}: {record.get(ANOMALY_KEY)}"
        detail = f" ({record['detail']})" if record.get("detail") else ""
        action = record.get("action")
        if action == "rollback" and record.get("rolled_back_to"):
            done = f"rolled back to {record['rolled_back_to']}, skipping {record.get('skipped_batches', '?')} batches"
        else:
            done = {"pause": "paused", "stop": "stopped the run", "continue": "went on without its update"}.get(
                str(action), str(action))
        lines.append(f"  {what}{detail}; {done}")
    return lines


def _last_step_lines(last: HistoryRow) -> list[str]:
    """The numbers logged beside the loss, at the last logged step (an older run logged none)."""
    said = []
    if last.grad_norm is not None:
        said.append(f"grad norm {_number(last.grad_norm)}")
    if last.samples_per_sec is not None:
        said.append(f"{_number(last.samples_per_sec)} samples/s")
    if last.tokens_per_sec is not None:
        said.append(f"{_number(last.tokens_per_sec)} tokens/s")
    said.extend(f"{name} {_number(value)}" for name, value in last.scalars.items())
    return [f"at step {last.step}: " + ", ".join(said)] if said else []


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if math.isfinite(value) else str(value).lower()
