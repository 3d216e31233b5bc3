"""`ckpt list`: one row per checkpoint, read from sidecars alone; a folder of runs, run by run.

For a run dir of our checkpoints neither torch nor (with `--json`) Rich is imported, so listing
a thousand checkpoints takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tui_trainer.cli import ckpt_format as fmt
from tui_trainer.cli.ckpt_paths import existing_dir
from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.meta import file_size
from tui_trainer.engine.checkpoints.store import FOREIGN_SUFFIXES, CheckpointStore, StoredCheckpoint
from tui_trainer.engine.errors import TrainerError
from tui_trainer.engine.rundir.discover import find_run_dirs
from tui_trainer.engine.rundir.layout import is_locked, is_run_dir, store_for
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted

LEADING = ("name", "step", "epoch", "train loss")
TRAILING = ("size", "created", "marks")
VAL_LOSS = "val_loss"
LEFT_ALIGNED = frozenset({"name", "created", "marks"})  # the rest are numbers
DROPPED_FIRST = ("created", "epoch", "train loss")  # on a narrow terminal
GAP = "  "
MARK_STYLE = "cyan"


class NoReadableCheckpoints(TrainerError):
    """Files named like checkpoints, none of which loads: exit 1, as `ckpt verify` would."""

    exit_code = 1


def run_list(args: argparse.Namespace) -> int:
    directory = existing_dir(args.dir, "use `tui-trainer ckpt show` for one checkpoint file")
    if not is_run_dir(directory) and (hf_trainer.is_output_dir(directory) or hf_trainer.is_checkpoint_dir(directory)):
        return list_trainer_output(directory, as_json=args.json)
    store = store_for(directory)
    checkpoints = store.list()
    runs = [] if checkpoints or is_run_dir(directory) else find_run_dirs(directory)
    if runs:
        return list_runs(directory, runs, as_json=args.json)
    if args.json:
        fmt.print_json([list_record(c) for c in checkpoints])
        return 0
    if not checkpoints:
        unreadable = _unreadable(directory)
        if unreadable:  # files that look like checkpoints but none loads: that is not "none here"
            shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
            raise NoReadableCheckpoints(
                f"no readable checkpoints in {directory}: {counted(len(unreadable), 'file')} that {'looks' if len(unreadable) == 1 else 'look'} like checkpoints "
                f"do not load ({shown}); `tui-trainer ckpt verify {directory}` says why")
        print(f"no checkpoints in {directory}")
        return 0
    print_table(store, checkpoints)
    return 0


def print_table(store: CheckpointStore, checkpoints: list[StoredCheckpoint]) -> None:
    console = fmt.console()
    metrics = metric_columns(store.monitor, checkpoints)
    rows = [table_row(c, metrics) for c in checkpoints]
    columns = [*LEADING, *(column_name(m) for m in metrics), *TRAILING]
    console.print(render_table(rows, fitting_columns(rows, columns, console.width)), end="", crop=False,
                  soft_wrap=True)
    print(list_footer(store, checkpoints))


def list_trainer_output(directory: Path, *, as_json: bool) -> int:
    """A Hugging Face Trainer's output dir (or one `checkpoint-N/`), from trainer_state.json alone."""
    if hf_trainer.is_output_dir(directory):
        listing = hf_trainer.list_output_dir(directory)
    else:
        meta = hf_trainer.checkpoint_meta(directory)
        listing = hf_trainer.HfListing([StoredCheckpoint(directory, meta, latest=True)], hf_trainer.VAL_LOSS, "min")
    if as_json:
        fmt.print_json([list_record(c) for c in listing.checkpoints])
        return 0
    print_table(CheckpointStore(directory, None, listing.monitor, listing.mode), listing.checkpoints)
    return 0


def list_runs(folder: Path, runs: list[Path], *, as_json: bool) -> int:
    """A folder of runs (`checkpoints/`): each run's checkpoints under its name, then the total.

    With `--json`, one flat array as for a run dir: each record has its path and run id.
    """
    records: list[dict[str, Any]] = []
    count = total = 0
    unreadable = []
    for run_dir in runs:
        try:
            store = store_for(run_dir)
            checkpoints = store.list()
        except (TrainerError, OSError) as exc:  # a damaged run.json: the runs beside it still list
            unreadable.append(f"{run_dir}: {exc}")
            continue
        count += len(checkpoints)
        total += sum(_size_of(c) or 0 for c in checkpoints)
        if as_json:
            records.extend(list_record(c) for c in checkpoints)
            continue
        print(f"{run_dir}")
        if checkpoints:
            print_table(store, checkpoints)
        else:
            print("no checkpoints yet")
        print()
    if as_json:
        fmt.print_json(records)
        return 0
    for line in unreadable:
        print(f"unreadable: {line}")
    print(f"{counted(len(runs), 'run')} in {folder}: {counted(count, 'checkpoint')}, "
          f"{human_bytes(total)}")
    return 0


def _unreadable(directory: Path) -> list[str]:
    """Regular files here named like checkpoints (none of which listed)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(e.name for e in entries if e.name.endswith(FOREIGN_SUFFIXES) and not e.name.startswith(".")
                          and e.is_file(follow_symlinks=False))
    except OSError:
        return []


def metric_columns(monitor: str, checkpoints: list[StoredCheckpoint]) -> list[str]:
    """The metrics given a column: the monitored one, then val_loss if any checkpoint has it."""
    shown = [] if monitor == "train_loss" else [monitor]  # train loss has its own column
    if monitor != VAL_LOSS and any(c.meta.metric(VAL_LOSS) is not None for c in checkpoints):
        shown.append(VAL_LOSS)
    return shown


def column_name(metric: str) -> str:
    return "val loss" if metric == VAL_LOSS else metric


def table_row(c: StoredCheckpoint, metrics: list[str]) -> dict[str, str]:
    m = c.meta
    return {
        "name": m.name,
        "step": fmt.or_dash(m.step if m.step >= 0 else None),
        "epoch": fmt.or_dash(m.epoch),
        "train loss": fmt.format_loss(m.train_loss),
        **{column_name(metric): fmt.format_loss(m.metric(metric)) for metric in metrics},
        "size": human_bytes(_size_of(c)),
        "created": fmt.format_created(m.created),
        "marks": ", ".join(marks_of(c)),
    }


def fitting_columns(rows: list[dict[str, str]], columns: list[str], width: int) -> list[str]:
    """All `columns` if they fit in `width`, else without the least needed ones."""
    columns = list(columns)
    for optional in DROPPED_FIRST:
        if sum(column_widths(rows, columns).values()) + len(GAP) * (len(columns) - 1) <= width:
            break
        columns.remove(optional)
    return columns


def column_widths(rows: list[dict[str, str]], columns: list[str]) -> dict[str, int]:
    return {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}


def render_table(rows: list[dict[str, str]], columns: list[str]) -> Any:
    """The rows as one aligned Rich Text: Rich's Table takes over a second for 1,000 rows."""
    from rich.text import Text

    widths = column_widths(rows, columns)

    def cells(row: dict[str, str]) -> list[str]:
        return [row[c].ljust(widths[c]) if c in LEFT_ALIGNED else row[c].rjust(widths[c]) for c in columns]

    text = Text(no_wrap=True)
    text.append(GAP.join(cells({c: c for c in columns})).rstrip() + "\n", style="bold")
    for row in rows:
        line = GAP.join(cells(row)).rstrip()
        marks = row["marks"] if "marks" in columns else ""
        if marks:
            text.append(line[: len(line) - len(marks)])
            text.append(marks, style=MARK_STYLE)
        else:
            text.append(line)
        text.append("\n")
    return text


def list_record(c: StoredCheckpoint) -> dict[str, Any]:
    """One checkpoint as JSON: unknown values and NaN are null."""
    m = c.meta
    return {
        "name": m.name,
        "path": str(c.path),
        "step": m.step if m.step >= 0 else None,
        "epoch": m.epoch,
        "train_loss": fmt.finite_or_none(m.train_loss),
        "val_loss": fmt.finite_or_none(m.metric(VAL_LOSS)),
        "metrics": {name: fmt.finite_or_none(m.metric(name)) for name in m.metrics},  # null: stale or NaN
        "size_bytes": _size_of(c),
        "created": fmt.iso_or_none(m.created),
        "best": c.best,
        "latest": c.latest,
        "pinned": c.pinned,
        "kind": m.kind,
        "run_id": m.run_id,
    }


def marks_of(c: StoredCheckpoint) -> list[str]:
    marks = list(c.marks)
    if c.meta.kind not in ("periodic", "foreign"):
        marks.append(c.meta.kind)
    return marks


def list_footer(store: CheckpointStore, checkpoints: list[StoredCheckpoint]) -> str:
    total = sum(_size_of(c) or 0 for c in checkpoints)
    count = len(checkpoints)
    parts = [f"{counted(count, 'checkpoint')}, {human_bytes(total)}"]
    best = next((c for c in checkpoints if c.best), None)
    latest = next((c for c in checkpoints if c.latest), None)
    if best is not None:
        parts.append(f"best {best.meta.name} ({store.monitor} {fmt.format_loss(best.meta.metric(store.monitor))})")
    if latest is not None:
        parts.append(f"latest {latest.meta.name}")
    footer = "; ".join(parts)
    if is_locked(store.directory):
        footer += " (a trainer is running in this dir)"
    return footer


def _size_of(c: StoredCheckpoint) -> int | None:
    return c.meta.size_bytes if c.meta.size_bytes is not None else file_size(c.path)
