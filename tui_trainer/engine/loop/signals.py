"""SIGINT, SIGTERM and SIGHUP ask the trainer to save an interrupted checkpoint and stop.

A dropped SSH session sends SIGHUP. The handler only sets a flag on the TrainingControl; the
trainer finishes its current step, saves, and returns. A second Ctrl+C while that save runs is
acknowledged and ignored, so it cannot leave a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tui_trainer.engine.loop.control import TrainingControl

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class CaughtSignal:
    signal: int | None = None


@contextlib.contextmanager
def interrupt_saves(control: TrainingControl, hangup: bool = True) -> Iterator[CaughtSignal]:
    """Install the handlers for the duration of the block (main thread only; else a no-op).

    `hangup=False` ignores SIGHUP for the block instead: a trainer with no terminal has none to
    lose. Every disposition is put back as it was when the block ends.
    """
    caught = CaughtSignal()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handle(signum: int, _frame: object) -> None:
        if caught.signal is None:
            caught.signal = signum
            control.stop("interrupted")
            _say(f"{signal.Signals(signum).name}: saving a checkpoint after this step, then exiting")
        else:
            _say("already saving; please wait")

    previous = {sig: signal.signal(sig, handle if hangup or sig != signal.SIGHUP else signal.SIG_IGN)
                for sig in HANDLED_SIGNALS}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str) -> None:
    # stderr may be gone after SIGHUP; the checkpoint matters more than the message.
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), f"\n{message}\n".encode())
