"""Following `history.jsonl` while another process appends to it, reading each byte once.

The trainer only appends, except on resume, when it cuts the superseded tail off in place and
logs the cut in `history.cuts` before appending again (see `history_cuts`). A tail that sees a
new cut goes back to the cut's offset, even if the file has meanwhile grown past where it was;
readers treat a step at or below one they already have as replacing their tail, as
`LossSeries` does. A file replaced under a new inode (an older version's resume) starts over.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tui_trainer.engine.rundir.history_cuts import cuts_path, read_cuts

# One read's worth: about 40k records, so a week-long history loads in steps the UI can apply
# between keystrokes instead of all at once.
CHUNK_BYTES = 4 << 20


class HistoryTail:
    """Records appended to a history file since the last `read()`. Not thread-safe.

    Starts at byte `offset` (e.g. `HistoryCurves.tail_offset`), having seen `generation` cuts
    (`HistoryCurves.generation`); None takes the cuts logged now.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_bytes: int = CHUNK_BYTES,
                 offset: int = 0, generation: int | None = None) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = offset
        self.restarts = 0  # times the file was cut or replaced under us (a resume)
        self._inode: int | None = None
        self._caught_up = False
        # The cut log is re-read whenever its size differs from this; given a generation, the
        # first read() compares it with the log, in case a cut came between the two.
        self._cuts_size = self._cuts_file_size() if generation is None else -2
        self.generation = len(read_cuts(self.path)) if generation is None else generation

    @property
    def caught_up(self) -> bool:
        """True if the last `read()` reached the end of the file: no backlog is left to read."""
        return self._caught_up

    def read(self) -> list[dict[str, Any]]:
        """New complete records, at most about `chunk_bytes` of them; a partial last line waits."""
        for _ in range(3):
            try:
                f = open(self.path, "rb")
            except FileNotFoundError:
                self._caught_up = True
                return []
            with f:
                st = os.fstat(f.fileno())
                if self._inode is not None and st.st_ino != self._inode:
                    self._restart(0)
                elif st.st_size < self.offset:
                    self._restart(st.st_size)  # cut, its log not written yet: bytes before the cut stand
                self._inode = st.st_ino
                f.seek(self.offset)
                data = f.read(self.chunk_bytes)
            # Checked after reading: a cut logged since means these bytes may be superseded ones.
            if not self._cut_since():
                break
        else:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) >= self.chunk_bytes:
            end = len(data)  # one absurdly long line: skip it rather than stall on it forever
        self.offset += end
        self._caught_up = len(data) < self.chunk_bytes
        return [r for r in map(parse_record, data[:end].splitlines()) if r is not None]

    def _cut_since(self) -> bool:
        size = self._cuts_file_size()
        if size == self._cuts_size:
            return False
        self._cuts_size = size
        cuts = read_cuts(self.path)
        if len(cuts) < self.generation:
            self._restart(0)  # the log was replaced: nothing is known to stand
        elif len(cuts) > self.generation:
            self._restart(min(self.offset, *(c.offset for c in cuts[self.generation :])))
        else:
            return False
        self.generation = len(cuts)
        return True

    def _restart(self, offset: int) -> None:
        if offset < self.offset:
            self.offset = offset
            self.restarts += 1

    def _cuts_file_size(self) -> int:
        try:
            return os.stat(cuts_path(self.path)).st_size
        except FileNotFoundError:
            return -1


def parse_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("step"), int) and not isinstance(record["step"], bool):
        return record
    return None
