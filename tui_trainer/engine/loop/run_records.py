"""The run's own records, `run.json` and the history, written so that a full disk loses nothing.

A record that does not fit is held in memory (`unwritten` says which file) and written whole by
`retry` once there is room; the trainer pauses or stops for it between steps. Checkpoints have
their own full-disk path (the store's space check and atomic save).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tui_trainer.engine.checkpoints.meta import checkpoint_name
from tui_trainer.engine.errors import NotEnoughDiskSpace, WriteDidNotFit, is_disk_full
from tui_trainer.engine.rundir.history_writer import HistoryWriter, truncate_history
from tui_trainer.engine.rundir.layout import RUN_FILE, RunInfo, write_run


class RunRecords:
    """Writes `info` to the run dir's run.json beside `history`, holding what a full disk refuses."""

    def __init__(self, run_dir: Path, info: RunInfo, history: HistoryWriter) -> None:
        self.run_dir = run_dir
        self.info = info
        self.history = history
        self._info_unwritten: WriteDidNotFit | None = None

    @property
    def unwritten(self) -> WriteDidNotFit | None:
        """The first record a full disk held back, or None when everything is on disk."""
        return self.history.unwritten or self._info_unwritten

    def set_state(self, state: str) -> None:
        self.info.state = state
        self.write_info()

    def write_info(self) -> None:
        """Write run.json; on a full disk, hold it for `retry`."""
        try:
            write_run(self.run_dir, self.info)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._info_unwritten = WriteDidNotFit(self.run_dir / RUN_FILE, exc)
        else:
            self._info_unwritten = None

    def retry(self) -> None:
        """Write what a full disk held back; WriteDidNotFit if it still does not fit."""
        self.history.flush()
        if self._info_unwritten is not None:
            self.write_info()
            if self._info_unwritten is not None:
                raise self._info_unwritten

    def end_state_fits(self, last_saved: int) -> str | None:
        """run.json must not say `running` once a full disk has ended the run: if its end state did
        not fit, the history's records past the last checkpoint (which a resume cuts anyway) give
        back the room. Returns the note saying so, or None when nothing was cut."""
        if self._info_unwritten is None:
            return None
        with contextlib.suppress(OSError):
            truncate_history(self.history.path, last_saved)
        self.write_info()
        if self._info_unwritten is not None:
            return None
        return (f"{self.history.path.name} was cut back to step {last_saved}, the last checkpoint, "
                f"to make room for {RUN_FILE}: a resume starts there")


def disk_full_note(problem: NotEnoughDiskSpace, step: int, last_saved: int, run_dir: str | os.PathLike[str]) -> str:
    """The line a run ended by a full disk leaves: a save's says what to do; another write's, where it stopped."""
    if not isinstance(problem, WriteDidNotFit):
        return str(problem)
    since = f"the last checkpoint is {checkpoint_name(last_saved)}" if last_saved else "no checkpoint was saved"
    return (f"{problem}; training stopped at step {step} with nothing torn on disk ({since}): "
            f"make room, then `tui-trainer resume {run_dir}`")
