"""What the job's own code prints, logs or warns, taken from the training thread only.

While the dashboard runs, stdout and stderr belong to Textual, and other threads (the UI, a
checkpoint lister) write too. So nothing is redirected wholesale (`contextlib.redirect_stdout`
swaps the stream for every thread): `capture_job_output` wraps `sys.stdout`, `sys.stderr`,
`warnings.showwarning` and the root logger so that what the capturing thread writes goes to
`sink(text, level)` one line at a time, and everything else passes through untouched.

A headless run keeps its terminal: with `passthrough=True` what the job writes also goes on to
where it went before, as it would without the capture. Plain Python, no Textual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Sink = Callable[[str, str], None]  # sink(line, level): level is info, warning or error


class _ThreadStream:
    """A text stream that hands one thread's lines to a sink and passes other threads through."""

    def __init__(self, wrapped: TextIO, thread_id: int, sink: Sink, level: str, passthrough: bool = False) -> None:
        self.wrapped = wrapped
        self.thread_id = thread_id
        self.sink = sink
        self.level = level
        self.passthrough = passthrough
        self.active = True
        self._partial = ""

    def write(self, text: str) -> int:
        if not self.active or threading.get_ident() != self.thread_id:
            return self.wrapped.write(text)
        self.pass_through(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if not self.active or threading.get_ident() != self.thread_id:
            self.wrapped.flush()
        elif self.passthrough:
            self.pass_through("")

    def pass_through(self, text: str) -> None:
        """Write on to the wrapped stream, if passing through; once that fails (a terminal gone), stop."""
        if not self.passthrough:
            return
        try:
            if text:
                self.wrapped.write(text)
            self.wrapped.flush()
        except (OSError, ValueError):
            self.passthrough = False

    def close_capture(self) -> None:
        self.active = False
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def _emit(self, line: str) -> None:
        # A progress bar redraws its line with \r: only what is left visible counts.
        line = line.rstrip("\r").rpartition("\r")[2].rstrip()
        if line:
            self.sink(line, self.level)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.wrapped, name)


class _ThreadLogHandler(logging.Handler):
    def __init__(self, thread_id: int, sink: Sink, stderr: _ThreadStream) -> None:
        super().__init__(logging.NOTSET)
        self.thread_id = thread_id
        self.sink = sink
        self.stderr = stderr
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        last_resort = logging.lastResort
        if self.stderr.passthrough and last_resort is not None and record.levelno >= last_resort.level \
                and not self._other_handler_for(record):
            # Without us on the root logger, Python's last resort would have printed it.
            self.stderr.pass_through(last_resort.format(record) + "\n")
        level = "info"
        if record.levelno >= logging.WARNING:
            level = "error" if record.levelno >= logging.ERROR else "warning"
        try:
            text = self.format(record)
        except Exception:  # a bad format string in the job must not stop training
            text = str(record.msg)
        for line in text.splitlines():
            if line.strip():
                self.sink(line.rstrip(), level)

    def _other_handler_for(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False


@contextlib.contextmanager
def capture_job_output(sink: Sink, *, passthrough: bool = False) -> Iterator[None]:
    """Send this thread's prints, log records and warnings to `sink` until the block ends.

    With `passthrough`, they also still reach the terminal (or whatever stdout and stderr were)
    as they would have without the capture; a write there that fails is dropped, and the
    capture carries on. Restores what it replaced on exit; if someone wrapped a stream on top
    of ours in the meantime, ours stays in place but passes everything through.
    """
    thread_id = threading.get_ident()
    out = _ThreadStream(sys.stdout, thread_id, sink, "info", passthrough)
    err = _ThreadStream(sys.stderr, thread_id, sink, "warning", passthrough)
    handler = _ThreadLogHandler(thread_id, sink, err)
    previous_showwarning = warnings.showwarning

    def showwarning(message: Any, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:
        if threading.get_ident() != thread_id:
            previous_showwarning(message, category, filename, lineno, file, line)
            return
        sink(f"{category.__name__}: {message} ({os.path.basename(filename)}:{lineno})", "warning")
        if passthrough:
            err.pass_through(warnings.formatwarning(message, category, filename, lineno, line))

    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    warnings.showwarning = showwarning
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        if warnings.showwarning is showwarning:
            warnings.showwarning = previous_showwarning
        for stream, name in ((out, "stdout"), (err, "stderr")):
            stream.close_capture()
            if getattr(sys, name) is stream:
                setattr(sys, name, stream.wrapped)


class JournalOutput:
    """A sink for `capture_job_output` that feeds a run's journal.

    The job prints while it is built, before the trainer and its journal exist: those lines
    are held (up to `HELD`) and sent once `send_to(journal)` names it.
    """

    HELD = 200

    def __init__(self) -> None:
        self.journal: Any = None
        self.held: list[tuple[str, str]] = []

    def put(self, text: str, level: str) -> None:
        if self.journal is not None:
            self.journal.output(text, level)
        elif len(self.held) < self.HELD:
            self.held.append((text, level))

    def send_to(self, journal: Any) -> None:
        """Journal the held lines and every later one in `journal` (None: drop them)."""
        self.journal = journal
        if journal is not None:
            for text, level in self.held:
                journal.output(text, level)
        self.held.clear()

    def close(self) -> None:
        """Write out what the journal batched (the job's last line may come as a capture ends)."""
        if self.journal is not None:
            self.journal.close()
