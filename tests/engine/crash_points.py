"""SIGKILL at one exact file operation: the Nth rename, replace, unlink, mkdir or rmdir of a process.

`install(trace, kill_at, when)` wraps those `os` functions (pathlib and the engine call them
through `os`) so that each call appends one line to `trace`, and the `kill_at`-th one kills the
process with SIGKILL just `before` or `after` it happens. `kill_at=0` only traces: a first run
counts the operations, then one run per operation and side kills at each of them.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

OPERATIONS = ("rename", "replace", "unlink", "mkdir", "rmdir")


def install(trace: str, kill_at: int = 0, when: str = "before") -> None:
    counter = itertools.count(1)
    for name in OPERATIONS:
        setattr(os, name, _wrapped(getattr(os, name), name, counter, trace, kill_at, when))


def _wrapped(real, name, counter, trace, kill_at, when):  # noqa: ANN001, ANN202 - os's own signatures
    def operation(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        n = next(counter)
        with open(trace, "a") as f:
            f.write(f"{n} {when if n == kill_at else '-'} {name} {' '.join(map(str, args))}\n")
        if n == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            return real(*args, **kwargs)
        finally:  # also after a call that failed (a mkdir of a folder whose parent is missing)
            if n == kill_at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)

    return operation


def operations_traced(trace: Path) -> list[str]:
    return trace.read_text().splitlines() if trace.exists() else []
