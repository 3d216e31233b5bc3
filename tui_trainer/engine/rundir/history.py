"""The run's history: `history.jsonl` as it happens, `training_history.json` as a summary.

`history.jsonl` has one object per logged step (`step`, `epoch`, `loss`, `lr`, `time`; then
`elapsed`, the run's training time in seconds across resumes, `grad_norm` before clipping,
`samples_per_sec`, `tokens_per_sec` if the job gives tokens per batch, `lrs` when there are
several param groups, and the job's own scalars by name; older runs have the first five only)
and one per evaluation (`step` and the metrics, e.g. `val_loss`); `history.idx` indexes it (see
`history_index`). A record with `anomaly` (its kind, as a string) tells of an anomaly the
trainer found and what it did (`action`, `bad_step`, `detail`; after a roll-back `rolled_back_to`
and `skipped_batches`); it is neither a step nor an evaluation. After a resume from step N every line past N is cut off first, in place, so
the file always reads as one continuous run, at a cost that does not grow with its length.

Reading lives here (no numpy, for listings); writing in `history_writer`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any


# A step record's own fields; any other number in one is a scalar the job logged (its loss_fn's dict).
STEP_RECORD_KEYS = frozenset({"step", "epoch", "loss", "lr", "lrs", "time", "elapsed", "grad_norm",
                              "samples_per_sec", "tokens_per_sec"})
# The key of an anomaly record (see above): readers of steps and evaluations pass over it.
ANOMALY_KEY = "anomaly"
# A step record's fields that measure time, not training: two runs of the same steps differ in these alone.
TIMING_KEYS = frozenset({"time", "elapsed", "samples_per_sec", "tokens_per_sec"})


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record in a history file; a torn last line (a crash mid-write) is skipped."""
    return list(iter_history(path))


def iter_history(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                yield record


def dump_record(record: Mapping[str, Any]) -> str:
    # NaN/inf are written as null: a diverged loss must not make the file unreadable elsewhere.
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()})


def __getattr__(name: str) -> Any:
    # The writer's names, where they were before it had a module of its own.
    if name in ("HistoryWriter", "Truncation", "truncate_history"):
        from tui_trainer.engine.rundir import history_writer

        return getattr(history_writer, name)
    raise AttributeError(name)
