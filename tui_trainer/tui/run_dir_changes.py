"""Which file-system events in a run dir are changes the dashboard shows, for watchdog's Observer.

Imported when a run dir is first watched: watchdog and the checkpoint store's names are not
needed for the dashboard's first frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MOVED,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from tui_trainer.engine.checkpoints.meta import SIDECAR_SUFFIX
from tui_trainer.engine.checkpoints.store import FOREIGN_SUFFIXES
from tui_trainer.engine.rundir.layout import RUN_FILE

# Every change this tool makes ends in a rename (atomic writes) or a delete, and other tools'
# copies end in a close after writing. Modify events are left out on purpose: writing a 10 GB
# checkpoint is ~150k writes, each one an event for Python to handle beside the training loop.
# Opening and reading are left out too: listing the checkpoints must not look like a change.
CHANGE_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED})
EVENT_FILTER = [FileCreatedEvent, FileDeletedEvent, FileMovedEvent, FileClosedEvent]


def is_relevant(name: str) -> bool:
    """Checkpoints, their sidecars and run.json; not temporary files, the history or the lock."""
    if not name or name.startswith("."):
        return False
    return name == RUN_FILE or name.endswith(SIDECAR_SUFFIX) or name.endswith(FOREIGN_SUFFIXES)


class ChangeHandler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in CHANGE_EVENTS:
            return
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if any(is_relevant(os.path.basename(os.fsdecode(p))) for p in paths if p):
            self.on_change()
