"""Parsing `history.jsonl` bytes straight into index records (numpy), without a dict per line.

Step lines as the writer formats them are read by one regular expression per chunk; any other
line (evaluations, hand-edited or foreign lines) goes through `json.loads`. Used to build the
index of an older run, to catch up an index a crash left behind, and by readers of a run dir
that has no index.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

KIND_TRAIN = 0  # a logged step: `loss`
KIND_VAL = 1  # an evaluation with `val_loss`
KIND_OTHER = 2  # any other record with a step (an evaluation without val_loss)

# step int64, end offset of the line in history.jsonl, value (loss or val_loss; NaN for null),
# epoch (of the step; for evaluations the writer's epoch), kind. 32 bytes, little-endian.
RECORD = np.dtype([("step", "<i8"), ("end", "<i8"), ("value", "<f8"), ("epoch", "<i4"), ("kind", "<i4")])
SCAN_CHUNK = 4 << 20

# One alternative per line: the writer's own step format (fast), or any line (slow path).
_LINE_RE = re.compile(rb'\{"step": (\d+), "epoch": (-?\d+), "loss": ([-+.\deE]+|null|NaN|-?Infinity), "lr": [^\n]*\n|([^\n]*)\n')


def scan_records(f: IO[bytes], start: int = 0, stop: int | None = None, epoch: int = 0) -> np.ndarray:
    """Index records of the complete lines in `f` between byte `start` and `stop` (a torn last
    line is left out). `epoch` is the epoch before `start`, for evaluations, which carry none."""
    parts = [part for part, _ in scan_chunks(f, start, stop, epoch)]
    return np.concatenate(parts) if parts else np.empty(0, RECORD)


def scan_chunks(f: IO[bytes], start: int, stop: int | None, epoch: int) -> Iterator[tuple[np.ndarray, int]]:
    pos = start
    f.seek(start)
    while stop is None or pos < stop:
        data = f.read(SCAN_CHUNK if stop is None else min(SCAN_CHUNK, stop - pos))
        if not data:
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) < SCAN_CHUNK:
                return  # a torn last line
            pos += len(data)  # one absurdly long line: skip it
            continue
        part, epoch = parse_chunk(data[:cut], pos, epoch)
        yield part, epoch
        pos += cut
        f.seek(pos)


def parse_chunk(data: bytes, base: int, epoch: int) -> tuple[np.ndarray, int]:
    """Records of the newline-terminated lines in `data`, which starts at byte `base` of the file."""
    matches = _LINE_RE.findall(data)
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + (1 + base)
    out = np.empty(len(matches), RECORD)
    out["end"] = ends[: len(matches)]
    steps, epochs, losses, others = zip(*matches) if matches else ((), (), (), ())
    fast = np.fromiter(map(bool, steps), bool, len(matches))
    keep = np.ones(len(matches), bool)
    has_epoch = fast.copy()
    try:
        if fast.all():
            _fill_fast(out, steps, epochs, losses)
        else:
            at = np.flatnonzero(fast).tolist()
            part = np.empty(len(at), RECORD)
            _fill_fast(part, [steps[i] for i in at], [epochs[i] for i in at], [losses[i] for i in at])
            for name in ("step", "epoch", "value", "kind"):
                out[name][at] = part[name]
    except (ValueError, OverflowError):  # a token numpy does not read: every line through json
        fast[:] = False
        has_epoch[:] = False
        others = tuple(_line_of(m) for m in matches)
    for i in np.flatnonzero(~fast).tolist():
        parsed = _parse_line(others[i])
        if parsed is None:
            keep[i] = False
            continue
        try:
            out[i] = (parsed[0], out["end"][i], parsed[1], parsed[2] or 0, parsed[3])
        except (ValueError, OverflowError):
            keep[i] = False
        has_epoch[i] = parsed[2] is not None
    out, has_epoch = out[keep], has_epoch[keep]
    # Evaluations carry no epoch: theirs is that of the record logged before them.
    if not has_epoch.all():
        last_known = np.maximum.accumulate(np.where(has_epoch, np.arange(len(out)), -1))
        out["epoch"] = np.r_[epoch, out["epoch"]][last_known + 1]
    return out, int(out["epoch"][-1]) if len(out) else epoch


def _line_of(match: tuple[bytes, bytes, bytes, bytes]) -> bytes:
    step, ep, loss, other = match
    return other if not step else b'{"step": %s, "epoch": %s, "loss": %s}' % (step, ep, loss)


def _fill_fast(out: np.ndarray, steps: Sequence[bytes], epochs: Sequence[bytes], losses: Sequence[bytes]) -> None:
    out["step"] = np.fromiter(map(int, steps), np.int64, len(steps))
    out["epoch"] = np.fromiter(map(int, epochs), np.int64, len(epochs))
    if b"null" in losses or b"NaN" in losses:
        losses = [b"nan" if t in (b"null", b"NaN") else t for t in losses]
    out["value"] = np.fromiter(map(float, losses), np.float64, len(losses))
    out["kind"] = KIND_TRAIN


def _parse_line(line: bytes) -> tuple[int, float, int | None, int] | None:
    """(step, value, epoch if it has one, kind) of a line in any valid form, or None if it is not a record."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    if "loss" in record:
        ep = record.get("epoch")
        return step, number(record["loss"]), ep if isinstance(ep, int) and not isinstance(ep, bool) else None, KIND_TRAIN
    if "val_loss" in record:
        return step, number(record["val_loss"]), None, KIND_VAL
    return step, math.nan, None, KIND_OTHER


def number(value: Any) -> float:
    """A loss as a float; NaN for null or anything that is not a number (as the summaries read it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan
