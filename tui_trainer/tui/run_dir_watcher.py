"""Noticing changes to a run dir made by anyone: this trainer, another shell, `ckpt prune`.

watchdog's Observer calls the handler on its own thread; the handler only raises a flag
under a lock. The UI's timer asks `take_change()`, which says yes once a burst has settled
(`DEBOUNCE_S` without a new event) or has gone on for `MAX_DELAY_S`, so a save (temporary
file, rename, sidecar, run.json) is one refresh and a steady stream of writes still shows
within a second. No Textual here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

DEBOUNCE_S = 0.2
MAX_DELAY_S = 0.6


class RunDirWatcher:
    """Watches one run dir at a time; `take_change()` is for the UI thread, the rest is thread-safe."""

    def __init__(self, *, debounce_s: float = DEBOUNCE_S, max_delay_s: float = MAX_DELAY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self.run_dir: str | None = None
        self.problem: str | None = None  # why the dir is not watched (the timers still refresh)
        self.events = 0
        self._observer: Any = None
        self._lock = threading.Lock()
        self._first: float | None = None
        self._last = 0.0

    def watch(self, run_dir: str) -> None:
        """Watch `run_dir` (idempotent); a new dir replaces the old one."""
        if run_dir == self.run_dir:
            return
        self.stop()
        self.run_dir = run_dir
        try:
            self._observer = self._start(run_dir)
            self.problem = None
        except OSError as exc:  # e.g. the inotify watch limit: fall back to polling the dir
            try:
                self._observer = self._start(run_dir, polling=True)
                self.problem = f"watching by polling ({exc.strerror or exc})"
            except OSError as again:
                self.problem = f"cannot watch {run_dir}: {again.strerror or again}"

    def _start(self, run_dir: str, polling: bool = False) -> Any:
        if polling:
            from watchdog.observers.polling import PollingObserver

            observer: Any = PollingObserver(timeout=0.5)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        from tui_trainer.tui.run_dir_changes import EVENT_FILTER, ChangeHandler

        # The filter also narrows the inotify mask, so unwanted events never reach Python.
        observer.schedule(ChangeHandler(self.changed), run_dir, recursive=False, event_filter=EVENT_FILTER)
        observer.daemon = True
        observer.start()
        return observer

    def changed(self) -> None:
        """Record a change now (called on the observer's thread)."""
        now = self.clock()
        with self._lock:
            self.events += 1
            if self._first is None:
                self._first = now
            self._last = now

    def take_change(self) -> bool:
        """True once per settled burst of changes."""
        now = self.clock()
        with self._lock:
            if self._first is None:
                return False
            if now - self._last < self.debounce_s and now - self._first < self.max_delay_s:
                return False
            self._first = None
            return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        self.run_dir = None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=2)
