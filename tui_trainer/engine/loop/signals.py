"""SIGINT, SIGTERM and SIGHUP ask the trainer to save an interrupted checkpoint and stop.

A dropped SSH session sends SIGHUP. The handler only sets a flag on the TrainingControl; the
trainer finishes its current step, saves, and returns. A second Ctrl+C while that save runs is
acknowledged and ignored, so it cannot leave a half-written file under a final name.

Before those handlers are in place (the interpreter starting, torch importing, the job being
built) a Ctrl+C is held, not raised: a KeyboardInterrupt there could land in code that swallows
it (a bare `except:` in an import, a job's own setup) and the run then trained to its target.
`interrupt_saves` takes a held Ctrl+C as its first signal, so the run stops before its first step.
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
    held, _held.signal = _held.signal, None  # taken once ours are in place, so none falls between
    if held is not None and caught.signal is None:
        caught.signal = held
        control.stop("interrupted")
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_held = CaughtSignal()


def _hold(signum: int, _frame: object) -> None:
    if _held.signal is None:
        _held.signal = signum
        _say("SIGINT: stopping as soon as the run is set up, before it trains (ctrl+c again to abort now)")
    else:
        raise KeyboardInterrupt


def hold_interrupts() -> None:
    """From now until `interrupt_saves`, a first Ctrl+C is held for it; a second one aborts at once."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _hold)


@contextlib.contextmanager
def holding_interrupts() -> Iterator[None]:
    """`hold_interrupts` for the block, then the SIGINT handler it found (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous is not _hold:
            _held.signal = None  # in-process callers (tests) each start with none held


def release_interrupts() -> None:
    """Back to Python's KeyboardInterrupt, raising it now for a Ctrl+C that was held."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not _hold:
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    held, _held.signal = _held.signal, None
    if held is not None:
        raise KeyboardInterrupt


def _say(message: str) -> None:
    # stderr may be gone after SIGHUP; the checkpoint matters more than the message.
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), f"\n{message}\n".encode())
