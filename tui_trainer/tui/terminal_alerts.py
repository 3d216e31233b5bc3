"""The dashboard's word when it is not looked at: a bell and a desktop notification (OSC 9 / 777)
when the run it shows ends, fails or pauses on a full disk.

Only what happens while this dashboard is open: an attached view replays the run's journal,
and an end it reads from there is history, not news. Nor the end this dashboard asked for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tui_trainer.session.terminal_alert import alert

if TYPE_CHECKING:  # the engine's events are imported with the first batch of them, not for the first frame
    from tui_trainer.session.run_notices import Notice, NoticeWatcher


class TerminalAlerts:
    """Mixed into the App; `alert_on(events)` is called with every drained batch, on the app's thread."""

    _notices: NoticeWatcher | None = None
    _news_since = 0.0
    quitting: bool

    def alert_on(self, events: list[Any]) -> None:
        if self._notices is None:
            from tui_trainer.session.run_notices import NoticeWatcher

            # What happened before the first drain is the journal's past (an attach), or was on screen at once.
            self._notices, self._news_since = NoticeWatcher(), time.time()
        for event in events:
            notice = self._notices.see(event)
            if notice is not None and notice.time >= self._news_since and not self.quitting:
                self.ring(notice)

    def ring(self, notice: Notice) -> None:
        # Textual writes its frames through the driver on this thread, so the sequence lands
        # between two frames, never inside one; a terminal draws nothing for either. There is no
        # public way to write raw output (Textual's own bell and clipboard use `_driver.write`).
        driver = getattr(self, "_driver", None)
        if driver is None:
            return
        # A browser tab (textual-serve) gets the bell only: xterm.js has no desktop notification.
        driver.write(alert(notice.title, notice.text, osc=not getattr(self, "is_web", False)))
