"""One checkpoint at a time written on a saver thread, while the training loop goes on.

The training thread hands over a state; `start` copies it into reusable CPU buffers
(`SnapshotBuffers`) and a thread of its own serialises, fsyncs, renames, checksums and prunes it
(`Checkpointer.write_quietly`). Nothing reaches the loop from that thread but the outcome, which
the loop takes between steps (`take`) and reports itself, so events keep their thread and order.

At most one save is in flight: the buffers are reused by the next snapshot. A save that failed
keeps its snapshot until `retry` writes it again or `discard` lets it go. The thread is not a
daemon: a process that exits with a save in flight finishes writing it first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.engine.checkpoints.snapshot import SnapshotBuffers

if TYPE_CHECKING:
    from tui_trainer.engine.checkpoints.checkpointer import SaveOutcome

Write = Callable[[CheckpointMeta, dict[str, Any]], "SaveOutcome"]


class BackgroundSaver:
    """Writes snapshots with `write` on a saver thread. Every method is the training thread's."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._buffers = SnapshotBuffers()
        self._thread: threading.Thread | None = None
        self._meta: CheckpointMeta | None = None  # of the save in flight, or of the failed one kept
        self._snapshot: dict[str, Any] | None = None
        self._outcome: SaveOutcome | None = None

    @property
    def in_flight(self) -> CheckpointMeta | None:
        """The save being written, or written and not yet taken."""
        return self._meta if self._thread is not None else None

    @property
    def finished(self) -> bool:
        """Whether `take()` has an outcome waiting (a cheap check, made every step)."""
        return self._thread is not None and not self._thread.is_alive()

    def start(self, meta: CheckpointMeta, state: dict[str, Any]) -> None:
        """Snapshot `state` now and write it on the saver thread. None may be in flight."""
        if self._thread is not None:
            raise RuntimeError(f"the save of {self._meta.name if self._meta else '?'} is still in flight")
        self._meta, self._snapshot = meta, self._buffers.copy(state)
        self._thread = threading.Thread(target=self._run, name="checkpoint-saver")
        self._thread.start()

    def _run(self) -> None:
        assert self._meta is not None and self._snapshot is not None
        self._outcome = self._write(self._meta, self._snapshot)

    def take(self, wait: bool = False) -> SaveOutcome | None:
        """The outcome of the save in flight once it is done (waiting for it if asked), else None."""
        thread = self._thread
        if thread is None or (not wait and thread.is_alive()):
            return None
        thread.join()
        outcome, self._thread, self._outcome = self._outcome, None, None
        assert outcome is not None
        if outcome.stored is not None:  # written: nothing to retry
            self._snapshot = None
        return outcome

    def retry(self) -> SaveOutcome:
        """Write the snapshot of the save that failed again, on this thread (the loop is paused)."""
        assert self._thread is None and self._meta is not None and self._snapshot is not None
        outcome = self._write(self._meta, self._snapshot)
        if outcome.stored is not None:
            self._snapshot = None
        return outcome

    def discard(self) -> None:
        """Let the snapshot of a failed save go."""
        self._snapshot = None
