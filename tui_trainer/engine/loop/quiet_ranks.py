"""What a rank other than 0 has in place of the run dir's writers: the same interface, nothing written.

Under several processes (`distributed`) rank 0 alone writes the history, run.json and the
checkpoints; the other ranks train the same steps with these.
"""

from __future__ import annotations

from typing import Any

from tui_trainer.engine.checkpoints.checkpointer import Checkpointer
from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.engine.loop.run_records import RunRecords


class QuietHistory:
    """A HistoryWriter's interface for the ranks that do not write the history."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.unwritten = None

    def summary_state(self) -> dict[str, Any]:
        return {}

    def log_step(self, *_: Any) -> None: ...

    def log_eval(self, *_: Any) -> None: ...

    def log_anomaly(self, *_: Any) -> None: ...

    def flush(self) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class QuietRecords(RunRecords):
    """run.json is rank 0's: the other ranks keep their state in memory only."""

    def write_info(self) -> None: ...


class QuietCheckpointer(Checkpointer):
    """Saving and pruning are rank 0's: the other ranks only contribute their state (`gather_rank_states`)."""

    def prune(self) -> None: ...

    def write(self, meta: CheckpointMeta, state: dict[str, Any]) -> Any:
        raise AssertionError("only rank 0 saves checkpoints")

    begin_write = amend = write  # type: ignore[assignment]
