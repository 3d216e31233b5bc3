"""Finding run dirs under a folder by their `run.json`, and nothing more.

Small on purpose: `tui-trainer` looks for a live demo run before its first frame, and the
runs screen and `attach` find runs the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_FILE = "run.json"
SUPERSEDED_DIR = "superseded"


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs at `root`, directly under it, or under a plain folder directly under it."""
    if _is_run_dir(root):
        return [root]
    found = []
    for child in _subdirs(root):
        if _is_run_dir(child):
            found.append(child)
        else:
            found.extend(grandchild for grandchild in _subdirs(child) if _is_run_dir(grandchild))
    return found


def _is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries
                          if not e.name.startswith(".") and e.name != SUPERSEDED_DIR and e.is_dir())
    except OSError:
        return []
