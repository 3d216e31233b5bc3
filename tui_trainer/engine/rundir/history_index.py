"""`history.idx`: the run's curve as fixed-size binary records beside `history.jsonl`.

A 16-byte header (magic, record size) then one 32-byte little-endian record per history line:
step, end offset of the line in history.jsonl, value (loss or val_loss), epoch, kind (see
`history_scan.RECORD`); `np.fromfile(path, RECORD, offset=HEADER_BYTES)` reads it. The writer
appends to it at the same flush points as to the jsonl, always after the jsonl, so an index
never points past the jsonl; a partial last record (a crash mid-write) is ignored. The jsonl
stays the source of truth: the index can always be rebuilt from it.

`read_curves` gives a viewer the whole curve as arrays in milliseconds, and the byte offset from
which a `HistoryTail` continues. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tui_trainer.engine.atomic import atomic_open
from tui_trainer.engine.rundir.history_cuts import read_cuts
from tui_trainer.engine.rundir.history_scan import KIND_TRAIN, KIND_VAL, RECORD, scan_chunks, scan_records

MAGIC = b"TTHIDX\x00\x01"
HEADER = MAGIC + RECORD.itemsize.to_bytes(4, "little") + bytes(4)
HEADER_BYTES = len(HEADER)


def index_path(history_path: str | os.PathLike[str]) -> Path:
    return Path(history_path).with_suffix(".idx")


def load_index(history_path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray | None:
    """The index's complete records (memory-mapped, read-only), or None if it is missing or not
    an index. Records pointing past the end of the jsonl (a reader racing a resume's cut) are left out."""
    path = index_path(history_path)
    try:
        with open(path, "rb") as f:
            if f.read(HEADER_BYTES) != HEADER:
                return None
            count = (os.fstat(f.fileno()).st_size - HEADER_BYTES) // RECORD.itemsize
            if count <= 0:
                records = np.empty(0, RECORD)
            elif mmap:
                records = np.memmap(f, RECORD, "r", HEADER_BYTES, (count,))
            else:
                records = np.fromfile(f, RECORD, count)
    except (FileNotFoundError, ValueError):
        return None
    try:
        size = os.stat(history_path).st_size
    except FileNotFoundError:
        size = 0
    if count and records["end"][-1] > size:
        records = records[: int(np.searchsorted(records["end"], size, "right"))]
    return records


def build_index(history_path: str | os.PathLike[str]) -> int:
    """Write the index of a history file that has none (or a damaged one); return its record count.

    Reads the jsonl once, in chunks; written under a temporary name and renamed, so a crash
    leaves either no index or a whole one.
    """
    count = 0
    with atomic_open(index_path(history_path), "wb", durable=False) as out:
        out.write(HEADER)
        try:
            f = open(history_path, "rb")
        except FileNotFoundError:
            return 0
        with f:
            for part, _ in scan_chunks(f, 0, None, 0):
                out.write(part.tobytes())
                count += len(part)
    return count


def create_index(history_path: str | os.PathLike[str]) -> None:
    """An empty index, for a new run."""
    with open(index_path(history_path), "wb") as f:
        f.write(HEADER)


def truncate_index(history_path: str | os.PathLike[str], count: int) -> None:
    os.truncate(index_path(history_path), HEADER_BYTES + count * RECORD.itemsize)


@dataclass
class HistoryCurves:
    """A run's whole curve: train loss per logged step, val loss per evaluation (float64 arrays).

    A `HistoryTail(path, offset=tail_offset, generation=generation)` continues from here;
    its records start at or after the last step here, and a step at or below one already held
    replaces the tail from that step on (as `LossSeries.append` does).
    """

    steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    val_steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    val_losses: np.ndarray = field(default_factory=lambda: np.empty(0))  # the monitored metric's
    metric: str = "val_loss"  # what val_steps and val_losses are: the run's monitored metric
    tail_offset: int = 0
    generation: int = 0  # cuts seen in history.cuts when the index was read
    note: str | None = None


def read_curves(run_dir: str | os.PathLike[str], metric: str = "val_loss") -> HistoryCurves:
    """The whole curve of the run in `run_dir`, from its index; without one (an older run),
    from one streaming pass over history.jsonl, and `note` says so. The evaluations' curve is
    `metric`'s (the run's monitored one): for any but val_loss, only evaluation lines are read."""
    from tui_trainer.engine.rundir.layout import HISTORY_FILE

    history = Path(run_dir) / HISTORY_FILE
    generation = len(read_cuts(history))  # before the records: a cut after this is seen by the tail
    records = load_index(history)
    note = None
    if records is None:
        records = _scan_whole(history)
        if len(records) or history.exists():
            note = (f"{history.name} has no index (a run from an older version): read it line by line; "
                    "resuming the run builds the index")
    curves = curves_of(records)
    if metric not in ("val_loss", "train_loss", "loss"):
        from tui_trainer.engine.rundir.history_evals import metric_curve

        curves.val_steps, curves.val_losses = metric_curve(history, records, metric)
        curves.metric = metric
    curves.tail_offset = int(records["end"][-1]) if len(records) else 0
    curves.generation = generation
    curves.note = note
    return curves


def curves_of(records: np.ndarray) -> HistoryCurves:
    kind = records["kind"]
    train, val = kind == KIND_TRAIN, kind == KIND_VAL
    return HistoryCurves(
        steps=records["step"][train].astype(np.float64),
        losses=records["value"][train].astype(np.float64),
        val_steps=records["step"][val].astype(np.float64),
        val_losses=records["value"][val].astype(np.float64),
    )


def _scan_whole(history: Path) -> np.ndarray:
    try:
        f = open(history, "rb")
    except FileNotFoundError:
        return np.empty(0, RECORD)
    with f:
        return scan_records(f)
