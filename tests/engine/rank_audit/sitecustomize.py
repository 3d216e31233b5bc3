"""Imported at start-up by the ranks of test_ddp: logs every write a rank makes under a watched folder.

`TUI_TRAINER_AUDIT_DIR` is watched; each rank appends what it wrote to `TUI_TRAINER_AUDIT_LOG.rank<N>`
(outside it), so a test can assert that rank 1 wrote nothing in the run dir, and rank 0 did.
"""

import os
import sys

WATCH = os.environ.get("TUI_TRAINER_AUDIT_DIR")
LOG = os.environ.get("TUI_TRAINER_AUDIT_LOG")
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod", "os.link", "os.symlink",
           "os.utime", "shutil.move", "shutil.rmtree"}


def _inside(path: object, root: str) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    full = os.path.realpath(os.fsdecode(path))
    return full == root or full.startswith(root + os.sep)


def _install(root: str, log: str) -> None:
    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = bool(mode and any(c in str(mode) for c in "wax+")) or bool(isinstance(flags, int) and flags & WRITING)
            paths = [path] if writes else []
        elif event in CHANGES:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for path in paths:
            if _inside(path, root):
                with open(log, "a") as out:
                    out.write(f"{event} {os.fsdecode(path)}\n")

    sys.addaudithook(audit)


if WATCH and LOG and "RANK" in os.environ:
    _install(os.path.realpath(WATCH), f"{LOG}.rank{os.environ['RANK']}")
