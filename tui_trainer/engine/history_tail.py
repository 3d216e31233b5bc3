"""Following `history.jsonl` while another process appends to it, reading each byte once.

The trainer only appends, except on resume, when it rewrites the file shorter (and under a
new inode) to drop the superseded steps. A tail notices that and starts over; readers treat a
step at or below one they already have as replacing their tail, as `LossSeries` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# One read's worth: about 40k records, so a week-long history loads in steps the UI can apply
# between keystrokes instead of all at once.
CHUNK_BYTES = 4 << 20


class HistoryTail:
    """Records appended to a history file since the last `read()`. Not thread-safe."""

    def __init__(self, path: str | os.PathLike[str], chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = 0
        self.restarts = 0  # times the file was rewritten under us (a resume)
        self._inode: int | None = None
        self._caught_up = False

    @property
    def caught_up(self) -> bool:
        """True if the last `read()` reached the end of the file: no backlog is left to read."""
        return self._caught_up

    def read(self) -> list[dict[str, Any]]:
        """New complete records, at most about `chunk_bytes` of them; a partial last line waits."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._caught_up = True
            return []
        with f:
            st = os.fstat(f.fileno())
            if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
                self.offset = 0
                self.restarts += 1
            self._inode = st.st_ino
            f.seek(self.offset)
            data = f.read(self.chunk_bytes)
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) >= self.chunk_bytes:
            end = len(data)  # one absurdly long line: skip it rather than stall on it forever
        self.offset += end
        self._caught_up = len(data) < self.chunk_bytes
        return [r for r in map(parse_record, data[:end].splitlines()) if r is not None]


def parse_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("step"), int) and not isinstance(record["step"], bool):
        return record
    return None
