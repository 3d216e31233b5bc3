"""Following a run's journal from another process: the recent backlog first, then what is added.

Attaching costs the same whatever the journal's length: the first `read()` finds its last
`backlog` records by reading backwards from the end (topped up from `journal.1.jsonl` when the
journal has just been rotated). After that each `read()` returns the records appended since the
last one, following the journal across rotation: the old file is drained through the descriptor
still open on it before the new one is read from its start. A torn last line waits for its end;
a line that is not a record is skipped and counted. This module does not import torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from tui_trainer.engine.errors import UnsafePath
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.journal_records import JOURNAL_FILE, ROTATED_FILE, JournalLine, decode, open_regular

BACKLOG = 500
CHUNK_BYTES = 4 << 20  # at most this much is read per read(); `caught_up` says if more is left
BACK_BLOCK = 64 << 10
MAX_BACKLOG_BYTES = 8 << 20  # a backlog never reads further back than this, whatever the lines' length

Record = ev.Event | JournalLine


class JournalTail:
    """Records added to a run's journal since the last `read()`. Not thread-safe; close() it."""

    def __init__(self, run_dir: str | os.PathLike[str], backlog: int = BACKLOG, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = Path(run_dir) / JOURNAL_FILE
        self.rotated_path = Path(run_dir) / ROTATED_FILE
        self.backlog = backlog
        self.chunk_bytes = chunk_bytes
        self.skipped = 0  # lines that held no record we know
        self.problem: str | None = None  # why the journal cannot be read (not a regular file), while so
        self._fd: int | None = None
        self._ino = 0
        self._offset = 0
        self._attached = False
        self._caught_up = False

    @property
    def caught_up(self) -> bool:
        """True if the last `read()` reached the end of the journal."""
        return self._caught_up

    def read(self) -> list[Record]:
        """The records added since the last call; the first call returns the last `backlog` ones."""
        records = []
        for line in self._read_lines():
            record = decode(line)
            if record is not None:
                records.append(record)
            elif line.strip():
                self.skipped += 1
        return records

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JournalTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- lines --------------------------------------------------------------------------------

    def _read_lines(self) -> list[bytes]:
        if self._fd is None:
            fd = self._open(self.path)
            if fd is None:
                self._attached = True  # a journal that appears later is new: read all of it
                self._caught_up = True
                return []
            if not self._attached:
                self._attached = True
                return self._read_backlog(fd)
            self._adopt(fd, 0)
        lines = self._read_chunk()
        if self._caught_up and self._was_replaced():
            lines += self._drain()  # what the writer added between our read and its move
            fd = self._open(self.path)
            if fd is not None:
                self.close()
                self._adopt(fd, 0)
                lines += self._read_chunk()
        return lines

    def _drain(self) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            lines += self._read_chunk()
            if self._caught_up:
                return lines

    def _read_backlog(self, fd: int) -> list[bytes]:
        size = os.fstat(fd).st_size
        lines, end = _last_lines(fd, size, self.backlog)
        self._adopt(fd, end)
        self._caught_up = True
        if len(lines) < self.backlog:
            lines = self._rotated_tail(self.backlog - len(lines)) + lines
        return lines

    def _rotated_tail(self, count: int) -> list[bytes]:
        fd = self._open(self.rotated_path)
        if fd is None:
            return []
        try:
            st = os.fstat(fd)
            if st.st_ino == self._ino:  # rotated since we opened it: we read it to its end anyway
                return []
            return _last_lines(fd, st.st_size, count)[0]
        finally:
            os.close(fd)

    def _read_chunk(self) -> list[bytes]:
        assert self._fd is not None
        data = os.pread(self._fd, self.chunk_bytes, self._offset)
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) >= self.chunk_bytes:
            end = len(data)  # one absurdly long line: skip it rather than stall on it forever
        self._offset += end
        self._caught_up = len(data) < self.chunk_bytes
        return data[:end].split(b"\n")[:-1]

    def _was_replaced(self) -> bool:
        """True if the journal moved aside (rotated): what follows is in a new file."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False  # moved, and the new one not made yet: wait for it
        if st.st_ino == self._ino:
            if st.st_size < self._offset:  # cut short under us: start over
                self._offset = 0
            return False
        return True

    def _adopt(self, fd: int, offset: int) -> None:
        self._fd, self._ino, self._offset = fd, os.fstat(fd).st_ino, offset

    def _open(self, path: Path) -> int | None:
        try:
            fd = open_regular(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except (UnsafePath, OSError) as exc:
            self.problem = str(exc)
            return None
        self.problem = None
        return fd


def _last_lines(fd: int, size: int, count: int) -> tuple[list[bytes], int]:
    """The last `count` complete lines before `size`, read backwards; and where the last one ends."""
    pos, blocks, newlines = size, [], 0
    while pos > 0 and newlines <= count and size - pos < MAX_BACKLOG_BYTES:
        take = min(BACK_BLOCK, pos)
        pos -= take
        block = os.pread(fd, take, pos)
        blocks.append(block)
        newlines += block.count(b"\n")
    data = b"".join(reversed(blocks))
    end = data.rfind(b"\n") + 1  # a torn last line is left for the next read
    lines = data[:end].split(b"\n")[:-1]
    if pos > 0 and lines and os.pread(fd, 1, pos - 1) != b"\n":
        lines = lines[1:]  # the first began before where we started reading
    return (lines[-count:] if count > 0 else []), pos + end
