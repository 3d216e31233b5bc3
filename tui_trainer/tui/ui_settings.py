"""The dashboard's remembered settings (the theme): a small JSON file in the user's config dir.

An unreadable or malformed file counts as empty: losing a remembered theme is no reason to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

APP_DIR_NAME = "tui-trainer"
SETTINGS_NAME = "settings.json"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/tui-trainer`, or `~/.config/tui-trainer` when that is unset."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / APP_DIR_NAME


def settings_path() -> Path:
    return config_dir() / SETTINGS_NAME


def load_settings(path: Path | None = None) -> dict[str, Any]:
    """The saved settings, or {} when the file is missing, unreadable or not a JSON object."""
    try:
        data = json.loads((path or settings_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_setting(key: str, value: Any, path: Path | None = None) -> None:
    """Set one setting, keeping the others. Atomic: a temporary file renamed into place.

    Raises OSError when the config dir cannot be written.
    """
    path = path or settings_path()
    settings = load_settings(path)
    settings[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(settings, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

