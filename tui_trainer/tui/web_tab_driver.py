"""The Textual driver of a `tui-trainer serve` browser tab: it leaves promptly, whatever the app is doing.

Textual's web driver turns SIGINT and SIGTERM into an exit message; an app that never handles it
(busy, or still starting) ignores them, and one whose server is gone (stdin at its end) runs on.
This driver also takes SIGHUP, treats the end of stdin as the server leaving, and in every such
case ends the process with `os._exit` if the app has not exited within `EXIT_GRACE_S`: a closed
tab must leave no process behind. The trainer runs in its own process and is not touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

from textual import messages
from textual.drivers.web_driver import WebDriver

DRIVER_PATH = "tui_trainer.tui.web_tab_driver:TabDriver"  # for TEXTUAL_DRIVER
EXIT_GRACE_S = 2.0
_EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_EXIT_SERVER_GONE = 1


def exit_within(seconds: float, code: int) -> None:
    """End this process with `code` in `seconds` unless it has ended by then (a daemon thread)."""

    def watchdog() -> None:
        time.sleep(seconds)
        os._exit(code)

    threading.Thread(target=watchdog, name="tab-exit-watchdog", daemon=True).start()


class TabDriver(WebDriver):
    """Textual's web driver, plus: SIGHUP and the end of stdin also exit; any exit is bounded in time."""

    _loop: asyncio.AbstractEventLoop | None = None

    def start_application_mode(self) -> None:
        super().start_application_mode()
        self._loop = loop = asyncio.get_running_loop()
        for number in _EXIT_SIGNALS:
            loop.add_signal_handler(number, self._leave, 128 + number)

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # stdin ended without a quit: the server is gone
            self._leave(_EXIT_SERVER_GONE)

    def _leave(self, code: int) -> None:
        exit_within(EXIT_GRACE_S, code)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._app._post_message(messages.ExitApp()), loop=loop)
