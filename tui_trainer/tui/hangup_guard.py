"""Ending the process after SIGHUP/SIGTERM once the trainer has saved, even if Textual cannot.

When an SSH session drops, the terminal goes away. Textual's output thread dies on the first
failed write and the UI thread then blocks forever queueing the next frame, so the app never
returns from `run()`. The signal handler (engine.signals) only asks the trainer to save and
stop; this guard waits for that to finish, gives the app a moment to close on its own, and
otherwise ends the process with the conventional 128 + signal exit code.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

GRACE_S = 3.0
POLL_S = 0.2


class HangupGuard:
    """A daemon thread; `close()` it once the app has returned normally."""

    def __init__(self, caught_signal: Callable[[], int | None], trainer_active: Callable[[], bool],
                 grace_s: float = GRACE_S, exit_fn: Callable[[int], None] = os._exit) -> None:
        self._caught_signal = caught_signal
        self._trainer_active = trainer_active
        self._grace_s = grace_s
        self._exit_fn = exit_fn
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hangup-guard", daemon=True)

    def __enter__(self) -> HangupGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        deadline: float | None = None
        while not self._closed.wait(POLL_S):
            signum = self._caught_signal()
            if signum is None or self._trainer_active():
                continue  # no signal yet, or the trainer is still saving: wait as long as that takes
            if deadline is None:
                deadline = time.monotonic() + self._grace_s
            elif time.monotonic() >= deadline:
                self._exit_fn(128 + signum)
                return
