"""Cutting `history.jsonl` in place on resume, and the log of cuts that tails follow.

A resume from step N drops every line past N. Steps never decrease in the file, so the cut
point is found by binary search over byte offsets (a few reads whatever the file's length),
and the file is `os.truncate`d there: same inode, nothing rewritten.

`history.cuts` gets one line per cut (`{"offset": B, "step": N}`), appended and fsynced
*after* the truncation and before anything new is appended. A tail that sees a new line knows
every byte from B on may have changed and goes back there, even if the file has grown past its
old offset again; the number of lines is the history's generation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PROBE_BYTES = 4096  # one read of a binary-search probe
LINEAR_BYTES = 64 << 10  # below this, the last span is read line by line


@dataclass(frozen=True)
class Cut:
    offset: int  # history.jsonl was truncated to this many bytes
    step: int  # ...keeping the records up to this step


def cuts_path(history_path: str | os.PathLike[str]) -> Path:
    return Path(history_path).with_suffix(".cuts")


def read_cuts(history_path: str | os.PathLike[str]) -> list[Cut]:
    """Every complete cut logged for this history, oldest first; a torn or garbled line is skipped
    (a crash between truncating and logging is followed by another resume's cut, at or below it)."""
    try:
        data = cuts_path(history_path).read_bytes()
    except FileNotFoundError:
        return []
    cuts = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            record = json.loads(line)
            cuts.append(Cut(int(record["offset"]), int(record["step"])))
        except (ValueError, KeyError, TypeError):
            continue
    return cuts


def log_cut(history_path: str | os.PathLike[str], offset: int, step: int) -> None:
    """Append a cut durably; called after the truncation, before the history grows again."""
    path = cuts_path(history_path)
    with open(path, "ab") as f:
        torn = f.tell() > 0 and not path.read_bytes().endswith(b"\n")
        f.write((b"\n" if torn else b"") + json.dumps({"offset": offset, "step": step}).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def cut_offset(f: IO[bytes], size: int, last_step: int) -> int:
    """The byte offset where the records after `last_step` begin: the end of the last complete
    record at or before it. Reads O(log size) blocks; torn and garbled lines are not records."""
    lo, hi = 0, size  # lo: a line start, no record before it is past last_step; none from hi on is kept
    while hi - lo > LINEAR_BYTES:
        mid = (lo + hi) // 2
        found = _first_record(f, mid, hi)
        if found is None:
            hi = mid  # only garbage or a torn line from mid to hi
        elif found[2] <= last_step:
            lo = found[1]
        else:
            hi = found[0]
    keep = lo
    for start, end, step in _records(f, lo, hi):
        if step > last_step:
            break
        keep = end
    return keep


def _first_record(f: IO[bytes], pos: int, hi: int) -> tuple[int, int, int] | None:
    """(start, end, step) of the first complete record that starts after `pos`'s line, before `hi`."""
    f.seek(pos)
    head = f.read(PROBE_BYTES)
    newline = head.find(b"\n")
    while newline < 0 and len(head) == PROBE_BYTES and pos + len(head) < hi:
        pos += len(head)
        head = f.read(PROBE_BYTES)
        newline = head.find(b"\n")
    if newline < 0:
        return None
    return next(_records(f, pos + newline + 1, hi), None)


def _records(f: IO[bytes], start: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, step) of each complete record whose line starts in [start, hi)."""
    f.seek(start)
    buffer, base = b"", start
    while base < hi:
        newline = buffer.find(b"\n")
        if newline < 0:
            more = f.read(PROBE_BYTES)
            if not more:
                return  # a torn last line
            buffer += more
            continue
        line, buffer = buffer[:newline], buffer[newline + 1 :]
        end = base + newline + 1
        step = step_of(line)
        if step is not None:
            yield base, end, step
        base = end


def step_of(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None
