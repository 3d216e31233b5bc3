"""The Textual dashboard. Importing this package imports neither Textual nor torch.

The CLI calls `run_dashboard(launch_fn)`, where `launch_fn(on_event=..., control=...,
when_disk_full=...)` returns a Trainer (e.g. a `functools.partial` of
`tui_trainer.engine.launch.start_run`).
"""

from __future__ import annotations

import gc
from typing import Any


def run_dashboard(launch_fn: Any, theme: str | None = None) -> int:
    """See `tui_trainer.tui.app.run_dashboard`."""
    # Start-up allocates much and frees little, so the collector's passes over it only delay the
    # first frame (~0.1 s here); the app turns it back on once that frame has painted.
    gc.disable()
    try:
        from tui_trainer.tui.app import run_dashboard as _run_dashboard

        return _run_dashboard(launch_fn, theme=theme)
    finally:
        gc.enable()
