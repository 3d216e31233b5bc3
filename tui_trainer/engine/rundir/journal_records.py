"""The journal's lines: one JSON object each, an engine event or a line of text, and back.

An event is its dataclass's fields plus `"type": <class name>`; a note (what the launch decided)
is `{"type": "note", "time", "text", "level"}`, a line of the job's own output the same with
`"type": "output"`, and `{"type": "dropped", "time", "count"}` stands for output lines the
writer left out. Decoding is plain `json` and checks every field against the event's own type
hints, so a garbled or hostile line is skipped, never trusted. This module does not import torch.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tui_trainer.engine.errors import UnsafePath
from tui_trainer.engine.loop import events as ev

JOURNAL_FILE = "journal.jsonl"
ROTATED_FILE = "journal.1.jsonl"

# Step summaries and evaluations stay in history.jsonl; everything else a dashboard shows is here.
JOURNALED_EVENTS: tuple[type[ev.Event], ...] = (
    ev.Started, ev.CheckpointSaved, ev.CheckpointPruned, ev.CheckpointFailed, ev.DiskFull,
    ev.TargetChanged, ev.PolicyChanged, ev.Paused, ev.Resumed, ev.Finished, ev.Failed,
    ev.AnomalyFound, ev.RolledBack,
)
NOTE, OUTPUT, DROPPED = "note", "output", "dropped"
LEVELS = ("info", "warning", "error")
# JournalLine.source, as the dashboard's log names them: the run's own words, or the job's.
RUN_SOURCE, JOB_SOURCE = "run", "job"


@dataclass(frozen=True)
class JournalLine:
    """A note from the launch or the trainer (source "run"), or a line the job printed ("job")."""

    time: float
    text: str
    level: str = "info"
    source: str = RUN_SOURCE


def encode_event(event: ev.Event) -> bytes | None:
    """The journal line for `event`, or None for events the journal does not keep."""
    if type(event) not in _SCHEMAS:
        return None
    return _line({"type": type(event).__name__, **asdict(event)})


def encode_text(kind: str, text: str, level: str, at: float) -> bytes:
    return _line({"type": kind, "time": at, "text": text, "level": level})


def encode_dropped(count: int, at: float) -> bytes:
    return _line({"type": DROPPED, "time": at, "count": count})


def decode(line: bytes) -> ev.Event | JournalLine | None:
    """The event or line a journal line holds; None for anything malformed or unknown."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    kind = record.get("type")
    at = record.get("time", 0.0)
    if not isinstance(kind, str) or not _is_number(at):
        return None
    if kind in (NOTE, OUTPUT):
        text, level = record.get("text"), record.get("level", "info")
        if not isinstance(text, str) or not isinstance(level, str):
            return None
        return JournalLine(float(at), text, level if level in LEVELS else "info",
                           RUN_SOURCE if kind == NOTE else JOB_SOURCE)
    if kind == DROPPED:
        count = record.get("count")
        if not _is_int(count):
            return None
        return JournalLine(float(at), f"{count} lines of the job's output not journaled", "warning", JOB_SOURCE)
    return _decode_event(kind, record, float(at))


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` that refuses a symlink, a FIFO or a device in place of a file, without blocking."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a symbolic link; remove it so the journal can be used") from exc
        if exc.errno == errno.ENXIO:  # a FIFO that nobody reads
            raise UnsafePath(f"{path} is not a regular file; remove it so the journal can be used") from exc
        raise
    try:
        is_file = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if not is_file:
        os.close(fd)
        raise UnsafePath(f"{path} is not a regular file; remove it so the journal can be used")
    return fd


# --- decoding events against their type hints -------------------------------------------------


class _Bad(Exception):
    pass


def _schema(cls: type[ev.Event]) -> list[tuple[str, Any, bool]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls) if f.name != "time"]


_SCHEMAS = {cls: _schema(cls) for cls in JOURNALED_EVENTS}
_BY_NAME = {cls.__name__: cls for cls in JOURNALED_EVENTS}


def _decode_event(kind: str, record: dict[str, Any], at: float) -> ev.Event | None:
    cls = _BY_NAME.get(kind)
    if cls is None:
        return None
    values: dict[str, Any] = {}
    try:
        for name, hint, required in _SCHEMAS[cls]:
            if name in record:
                values[name] = _conform(record[name], hint)
            elif required:
                return None
    except _Bad:
        return None
    return cls(**values, time=at)


def _conform(value: Any, hint: Any) -> Any:
    """`value` as the type `hint` asks for (a JSON list as a tuple, an int as a float), or _Bad."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            try:
                return _conform(value, arg)
            except _Bad:
                continue
        raise _Bad
    if hint is type(None):
        if value is None:
            return None
    elif hint is int:
        if _is_int(value):
            return value
    elif hint is float:
        if _is_number(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, list):
            return tuple(_conform(v, item) for v in value)
    elif origin is dict:
        key, item = typing.get_args(hint)
        if isinstance(value, dict):
            return {_conform(k, key): _conform(v, item) for k, v in value.items()}
    raise _Bad


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _line(record: dict[str, Any]) -> bytes:
    # ensure_ascii: any text a job prints (lone surrogates included) encodes, and no newline
    # inside a record can ever split it.
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")
