"""Writing the run's history: `history.jsonl` and its index, cut in place on resume.

See `history` for the file's records and `history_index` for the index.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui_trainer.engine.atomic import atomic_write_json
from tui_trainer.engine.errors import WriteDidNotFit, is_disk_full
from tui_trainer.engine.rundir.history import dump_record
from tui_trainer.engine.rundir.history_cuts import cut_offset, log_cut, step_of
from tui_trainer.engine.rundir.history_epochs import EpochSummary
from tui_trainer.engine.rundir.history_index import build_index, create_index, index_path, load_index, truncate_index
from tui_trainer.engine.rundir.history_scan import KIND_OTHER, KIND_TRAIN, KIND_VAL, RECORD, scan_records
from tui_trainer.engine.rundir.history_tail import parse_record

FLUSH_INTERVAL_S = 1.0
BUFFER_BYTES = 1 << 16
_PACK = struct.Struct("<qqdii").pack
assert struct.calcsize("<qqdii") == RECORD.itemsize


@dataclass
class Truncation:
    dropped: int  # records past the resume step
    offset: int  # bytes of history.jsonl kept
    records: int  # records kept, as indexed
    notes: list[str] = field(default_factory=list)


def truncate_history(path: Path, last_step: int) -> Truncation:
    """Drop records after `last_step` in place: a binary search and `os.truncate`, the index cut
    by record count, the cut logged for tails. Builds the index first if the run has none.

    Safe to kill at any instant: each step only shortens files to the same cut point, which the
    next call finds again, and the cut is logged before anything is appended.
    """
    path = Path(path)
    notes = []
    with open(path, "ab+") as f:  # creates a missing history, so the run and its index agree
        size = os.fstat(f.fileno()).st_size
        offset = cut_offset(f, size, last_step)
    records = load_index(path)
    if records is None:
        built = build_index(path)
        records = load_index(path)
        if size:
            notes.append(f"built {index_path(path).name}, an index of {path.name} ({built} records), once for this older run")
    assert records is not None
    keep = int(np.searchsorted(records["end"], offset, "right"))
    if keep and not _indexes_line(path, records[keep - 1]):
        build_index(path)
        records = load_index(path)
        assert records is not None
        keep = int(np.searchsorted(records["end"], offset, "right"))
        notes.append(f"{index_path(path).name} did not match {path.name}: rebuilt it")
    before = len(records)
    indexed_to = int(records["end"][keep - 1]) if keep else 0
    epoch = int(records["epoch"][keep - 1]) if keep else 0
    del records
    if size > offset:
        os.truncate(path, offset)
    truncate_index(path, keep)
    if indexed_to < offset:  # a crash left the index behind the jsonl: index the rest
        with open(path, "rb") as f:
            missing = scan_records(f, indexed_to, offset, epoch)
        with open(index_path(path), "ab") as out:
            out.write(missing.tobytes())
        keep += len(missing)
    log_cut(path, offset, last_step)
    return Truncation(max(0, before - keep), offset, keep, notes)


def _indexes_line(path: Path, record: np.ndarray) -> bool:
    """Whether the history line ending at the record's offset has the record's step (O(1))."""
    end = int(record["end"])
    with open(path, "rb") as f:
        f.seek(max(0, end - 4096))
        data = f.read(end - f.tell())
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
    return data.endswith(b"\n") and step_of(line) == int(record["step"])


class HistoryWriter:
    """Appends to `history.jsonl` and its index; flushes at least once a second while records arrive.

    On resume the history is cut in place (see `truncate_history`) and the per-epoch summary is
    taken from `summary_state` (what the checkpoint carried) when given. Not thread-safe: the
    training thread owns it.

    A full disk loses nothing and tears nothing: a write that does not fit is cut back to the
    last whole record on disk, the records stay in memory, and `unwritten` says so (a
    `WriteDidNotFit`) until a later `flush` writes them all. `flush` and `sync` raise it; the
    appends made every step do not, so the trainer decides when to stop for it.
    """

    def __init__(self, run_dir: str | os.PathLike[str], resume_step: int | None = None,
                 summary_state: Mapping[str, Any] | None = None) -> None:
        from tui_trainer.engine.rundir.layout import HISTORY_FILE, SUMMARY_FILE

        self.path = Path(run_dir) / HISTORY_FILE
        self.summary_path = Path(run_dir) / SUMMARY_FILE
        self.summary = EpochSummary()
        self.dropped = 0
        self.notes: list[str] = []
        self.unwritten: WriteDidNotFit | None = None
        self._end = 0  # bytes of history.jsonl written, buffered ones included
        self._last_step = -1
        self.resumed_elapsed = 0.0  # the training time its last kept step record holds (older runs: none, 0)
        if resume_step is not None:
            cut = truncate_history(self.path, resume_step)
            self.dropped, self._end, self.notes = cut.dropped, cut.offset, cut.notes
            self.summary = self._restore_summary(summary_state, cut.records)
            self.resumed_elapsed = self._elapsed_at(cut.records)
        elif self.path.exists() and self.path.stat().st_size:
            raise FileExistsError(f"{self.path} already exists; resume the run instead")
        else:
            create_index(self.path)
        self._file = _Appender(self.path)
        self._index = _Appender(index_path(self.path))
        self._last_flush = time.monotonic()

    def _restore_summary(self, state: Mapping[str, Any] | None, count: int) -> EpochSummary:
        loaded = load_index(self.path)
        assert loaded is not None  # truncate_history made one
        records = loaded[:count]
        if count:
            self._last_step = int(records["step"][-1])
        state = state if isinstance(state, Mapping) else {}
        summary = EpochSummary.from_state(state.get("epochs"))
        covered = state.get("history_end")
        if summary is not None and isinstance(covered, int):
            at = int(np.searchsorted(records["end"], covered, "left"))
            if covered == 0 or (at < count and records["end"][at] == covered
                                and records["step"][at] == state.get("history_step")):
                summary.add_records(np.asarray(records[at + 1 if covered else 0 :]))  # logged after the save
                return summary
        return EpochSummary.from_records(np.asarray(records))

    def _elapsed_at(self, count: int) -> float:
        """`elapsed` of the last step record among the first `count`, read from its line alone."""
        loaded = load_index(self.path)
        assert loaded is not None
        records = loaded[:count]
        train = np.flatnonzero(records["kind"] == KIND_TRAIN)
        if not len(train):
            return 0.0
        at = int(train[-1])
        start, end = (int(records["end"][at - 1]) if at else 0), int(records["end"][at])
        with open(self.path, "rb") as f:
            f.seek(start)
            record = parse_record(f.read(end - start))
        elapsed = record.get("elapsed") if record else None
        return float(elapsed) if isinstance(elapsed, (int, float)) and math.isfinite(elapsed) and elapsed > 0 else 0.0

    def summary_state(self) -> dict[str, Any]:
        """For the checkpoint: the per-epoch summary and how much of the history it covers."""
        return {"epochs": self.summary.state(), "history_end": self._end, "history_step": self._last_step}

    def log_step(self, step: int, epoch: int, loss: float, lr: float, now: float,
                 more: Mapping[str, Any] | None = None) -> None:
        """One step record; `more` adds fields after `time` (see `history`): numbers, lists of
        numbers, None. Positional only, as the ranks that write no history take it."""
        # Called every step: formatted by hand, as json.dumps would, at a third of its cost.
        extra = "".join(f", {_key(k)}: {_json_value(v)}" for k, v in more.items()) if more else ""
        line = (f'{{"step": {step}, "epoch": {epoch}, "loss": {_json_value(loss)}, "lr": {lr!r}, '
                f'"time": {now:.3f}{extra}}}\n')
        self._append(line.encode(), step, loss, epoch, KIND_TRAIN)
        self.summary.add_step(epoch, step, loss)

    def log_eval(self, step: int, epoch: int, metrics: Mapping[str, float], now: float) -> None:
        line = (dump_record({"step": step, **metrics, "time": round(now, 3)}) + "\n").encode()
        kind = KIND_VAL if "val_loss" in metrics else KIND_OTHER
        self._append(line, step, float(metrics.get("val_loss", math.nan)), epoch, kind)
        self.summary.add_eval(epoch, metrics)

    def log_anomaly(self, step: int, epoch: int, fields: Mapping[str, Any], now: float) -> None:
        """An anomaly and what was done about it (`history.ANOMALY_KEY`), at the step training goes on from."""
        line = (dump_record({"step": step, **fields, "time": round(now, 3)}) + "\n").encode()
        self._append(line, step, math.nan, epoch, KIND_OTHER)

    def _append(self, line: bytes, step: int, value: float, epoch: int, kind: int) -> None:
        self._file.held += line
        self._end += len(line)
        self._last_step = step
        self._index.held += _PACK(step, self._end, value, epoch, kind)
        if (len(self._file.held) >= BUFFER_BYTES or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S) \
                and self.unwritten is None:  # on a full disk, held until the trainer retries
            with contextlib.suppress(WriteDidNotFit):
                self.flush()

    def flush(self) -> None:
        """Write every record held; WriteDidNotFit (recorded in `unwritten`) if the disk is full."""
        self._last_flush = time.monotonic()
        try:
            self._file.write_held()
            self._index.write_held()  # after the jsonl: the index never points past it
        except WriteDidNotFit as exc:
            self.unwritten = exc
            raise
        self.unwritten = None

    def sync(self) -> None:
        """Flush to disk and rewrite the summary; called at checkpoints and at the end."""
        self.flush()
        os.fsync(self._file.fd)
        os.fsync(self._index.fd)
        try:
            atomic_write_json(self.summary_path, self.summary.to_json(), durable=False)  # derived from the history
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise WriteDidNotFit(self.summary_path, exc) from None

    def close(self) -> None:
        """Sync and close. On a full disk the records still held are dropped: the file ends at the
        last whole record that fit, and none of them is covered by a checkpoint (a save syncs first)."""
        if self._file.fd < 0:
            return
        with contextlib.suppress(WriteDidNotFit):
            self.sync()
        self._file.close()
        self._index.close()


_KEYS: dict[str, str] = {}  # a name as a JSON string, made once: the same few names come every step


def _key(name: str) -> str:
    key = _KEYS.get(name)
    if key is None:
        key = json.dumps(name)
        if len(_KEYS) < 1024:
            _KEYS[name] = key
    return key


def _json_value(value: Any) -> str:
    """A number as json.dumps writes it, NaN and inf as null (a diverged value must not make the file unreadable)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_json_value, value)) + "]"
    return repr(value) if isinstance(value, int) else json.dumps(value)


class _Appender:
    """One append-only file and the bytes held for it; a write that does not fit is undone whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = _no_follow(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC)
        self.held = bytearray()

    def write_held(self) -> None:
        if not self.held:
            return
        start = os.fstat(self.fd).st_size
        data = bytes(self.held)  # not a view: `held` grows while the exception is kept
        try:
            done = os.write(self.fd, data)
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            os.ftruncate(self.fd, start)  # a torn record would corrupt the next one appended
            raise WriteDidNotFit(self.path, exc) from None
        self.held.clear()

    def close(self) -> None:
        os.close(self.fd)
        self.fd = -1


def _no_follow(path: str, flags: int) -> int:
    # A link planted in place of the history must not carry the run's appends outside the run dir.
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
