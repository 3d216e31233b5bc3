"""The run's journal: every event a dashboard shows, appended to `journal.jsonl` in the run dir.

A viewer in another process (`JournalTail`) reads it to be as informed as the dashboard in the
trainer's own process: saves, prunes, failed saves, a full disk with its numbers, target changes
with their LR note, pause and resume, the end, what the launch decided, and the job's own output.
Step summaries and evaluations are not here: they are in `history.jsonl`.

Writing it must never stop training. Events and notes are written at once; the job's output is
batched (about once a second) and bounded: lines are cut to `line_chars`, and past
`output_lines` lines or `output_bytes` bytes a minute the rest is counted and written as one
"N lines not journaled" record. A write that fails (a full disk, an I/O error) is counted and
kept to retry later, up to `MAX_PENDING_BYTES`. Past `max_bytes` the file moves to
`journal.1.jsonl` (one kept), so the journal stays bounded whatever the run's length.
This module does not import torch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tui_trainer.engine.errors import UnsafePath
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.journal_records import (
    DROPPED,
    JOURNAL_FILE,
    NOTE,
    OUTPUT,
    ROTATED_FILE,
    JournalLine,
    decode,
    encode_dropped,
    encode_event,
    encode_text,
    open_regular,
)

__all__ = ["JOURNAL_FILE", "ROTATED_FILE", "JournalLine", "JournalWriter", "decode", "DROPPED", "NOTE", "OUTPUT"]

MAX_BYTES = 16 << 20
LINE_CHARS = 1000
OUTPUT_LINES = 120  # per OUTPUT_WINDOW_S
OUTPUT_BYTES = 64 << 10  # per OUTPUT_WINDOW_S
OUTPUT_WINDOW_S = 60.0
FLUSH_S = 1.0
RETRY_S = 1.0
NEWLINE = ord("\n")
MAX_PENDING_BYTES = 1 << 20


class JournalWriter:
    """Appends records to the run dir's journal. Thread-safe; never raises from a write."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        max_bytes: int = MAX_BYTES,
        line_chars: int = LINE_CHARS,
        output_lines: int = OUTPUT_LINES,
        output_bytes: int = OUTPUT_BYTES,
        output_window_s: float = OUTPUT_WINDOW_S,
        flush_s: float = FLUSH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(run_dir) / JOURNAL_FILE
        self.rotated_path = Path(run_dir) / ROTATED_FILE
        self.max_bytes = max_bytes
        self.line_chars = line_chars
        self.output_lines = output_lines
        self.output_bytes = output_bytes
        self.output_window_s = output_window_s
        self.flush_s = flush_s
        self.clock = clock
        self.failed_writes = 0  # write attempts that raised; what they held is retried
        self.lost_records = 0  # records given up on: more failed writes than MAX_PENDING_BYTES holds
        self.problem: str | None = None  # why the last write failed, while it does
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._size = 0
        self._pending = bytearray()  # lines not yet written, oldest first
        self._line_start = True  # the file ends with a whole line (a short write can leave half)
        self._timer: threading.Timer | None = None
        self._window_start = clock()
        self._window_lines = 0
        self._window_bytes = 0
        self._unjournaled = 0  # output lines left out in this window

    def ready(self) -> str | None:
        """Open the journal now; None if it can be written, else why not (training goes on)."""
        with self._lock:
            try:
                self._open()
            except (OSError, UnsafePath) as exc:
                self.problem = str(exc)
            return self.problem

    # --- what goes in -------------------------------------------------------------------------

    def record(self, event: ev.Event) -> None:
        """Journal an event now (with the output before it); step summaries are left out."""
        line = encode_event(event)
        if line is None:
            return
        with self._lock:
            self._roll_window()
            self._pending += line
            self._write_pending()

    def note(self, text: str, level: str = "info") -> None:
        """Journal what the launch or the trainer decided, now."""
        with self._lock:
            self._roll_window()
            self._pending += encode_text(NOTE, self._cut(text), level, time.time())
            self._write_pending()

    def output(self, text: str, level: str = "info") -> None:
        """Journal a line the job printed, logged or warned, within a second; bounded in rate."""
        with self._lock:
            self._roll_window()
            self._schedule(self.flush_s)
            if self._window_lines >= self.output_lines:  # the common case for a chatty job: no encoding
                self._unjournaled += 1
                return
            line = encode_text(OUTPUT, self._cut(text), level, time.time())
            if self._window_bytes + len(line) > self.output_bytes:
                self._unjournaled += 1
                return
            self._window_lines += 1
            self._window_bytes += len(line)
            self._pending += line

    def flush(self) -> None:
        """Write what is batched (and retry what failed); a no-op when nothing is."""
        with self._lock:
            self._roll_window()
            self._write_pending()
            if self._pending:
                self._schedule(RETRY_S)
            elif self._unjournaled:
                self._schedule(self._window_start + self.output_window_s - self.clock())

    def close(self) -> None:
        """Write everything held, the count of output left out included, and close the file.

        Writing again afterwards opens it again: the job's last line may come after the run.
        """
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._end_window()
            self._write_pending()
            self._close_fd()

    # --- writing ------------------------------------------------------------------------------

    def _write_pending(self) -> None:
        while self._pending:
            try:
                fd = self._open()
                if self._line_start and self._size and self._size + len(self._pending) > self.max_bytes:
                    fd = self._rotate()
                written = os.write(fd, self._pending)
                if not written:
                    raise OSError("the journal took no bytes")
            except (OSError, UnsafePath) as exc:
                self.failed_writes += 1
                self.problem = str(exc)
                self._bound_pending()
                self._schedule(RETRY_S)
                return
            self._line_start = self._pending[written - 1] == NEWLINE
            del self._pending[:written]
            self._size += written
        self.problem = None

    def _open(self) -> int:
        if self._fd is None:
            fd = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            self._fd, self._size = fd, os.fstat(fd).st_size
            if self._size and os.pread(fd, 1, self._size - 1) != b"\n" and self._line_start:
                self._pending[:0] = b"\n"  # an earlier writer's torn last line: end it there
        return self._fd

    def _rotate(self) -> int:
        """Move a full journal aside (replacing the older one) and start a new one."""
        fd = self._fd
        assert fd is not None
        try:
            ours = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            ours = False
        if ours:
            os.replace(self.path, self.rotated_path)
        self._close_fd()
        return self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def _bound_pending(self) -> None:
        """Drop the oldest whole lines held past MAX_PENDING_BYTES, counting them."""
        excess = len(self._pending) - MAX_PENDING_BYTES
        if excess <= 0:
            return
        cut = self._pending.find(b"\n", excess - 1) + 1 or len(self._pending)
        self.lost_records += self._pending.count(b"\n", 0, cut)
        del self._pending[:cut]
        if not self._line_start:  # end the half line already written, so it spoils nothing else
            self._pending[:0] = b"\n"

    # --- output's rate and the flush timer ----------------------------------------------------

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.line_chars else text[: self.line_chars - 1] + "…"

    def _roll_window(self) -> None:
        if self.clock() - self._window_start >= self.output_window_s:
            self._end_window()

    def _end_window(self) -> None:
        if self._unjournaled:
            self._pending += encode_dropped(self._unjournaled, time.time())
        self._window_start = self.clock()
        self._window_lines = self._window_bytes = self._unjournaled = 0

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            return
        self._timer = threading.Timer(max(delay, 0.0), self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            self.flush()


def read_journal(run_dir: str | os.PathLike[str]) -> list[ev.Event | JournalLine]:
    """Every record of a run's journal, the rotated part first; for tests and small tools."""
    records: list[ev.Event | JournalLine] = []
    for name in (ROTATED_FILE, JOURNAL_FILE):
        try:
            fd = open_regular(Path(run_dir) / name, os.O_RDONLY)
        except (FileNotFoundError, UnsafePath):
            continue
        with open(fd, "rb") as f:
            records += [r for r in map(decode, f) if r is not None]
    return records
