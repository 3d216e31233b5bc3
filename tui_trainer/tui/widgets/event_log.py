"""The log of what happened: launch notes, saves with their time taken, prunes, errors.

Lines the job's own code printed or logged are marked `job|`, so they read apart from the
trainer's events without colour. Lines wrap at word boundaries, and wrap again when the log's
width changes (RichLog keeps the width a line was written at).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from rich.text import Text
from textual import events
from textual.widgets import RichLog

from tui_trainer.tui.run_model import LogLine

LEVEL_PREFIX = {"info": "", "warning": "warning: ", "error": "error: "}
LEVEL_STYLE = {"info": "", "warning": "bold yellow", "error": "bold red"}
JOB_MARK = "job| "


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        min-height: 3;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=1000, min_width=20, wrap=True, markup=False, highlight=False, **kwargs)  # type: ignore[arg-type]
        self.lines_written: list[str] = []
        self._texts: deque[Text] = deque(maxlen=1000)  # as written, to wrap again at a new width
        self._wrapped_at = 0

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)  # RichLog writes what came before its size was known
        width = self.scrollable_content_region.width
        if width != self._wrapped_at and self._texts and self._size_known:
            self._wrapped_at = width
            self.clear()
            for text in self._texts:
                self.write(text, scroll_end=True)

    def add(self, lines: list[LogLine]) -> None:
        for line in lines:
            stamp = datetime.fromtimestamp(line.time).strftime("%H:%M:%S")
            # The prefix says the level in words too, for monochrome terminals.
            body = f"{LEVEL_PREFIX.get(line.level, '')}{line.text}"
            mark = JOB_MARK if line.source == "job" else ""
            text = Text(f"{stamp} {mark}", style="dim")
            text.append(body, style=LEVEL_STYLE.get(line.level, ""))
            self._texts.append(text)
            self._wrapped_at = self.scrollable_content_region.width
            self.write(text)
            self.lines_written.append(mark + body)
            if len(self.lines_written) > 1000:
                del self.lines_written[:100]
