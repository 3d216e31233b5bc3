"""`--job-opt KEY=VALUE` values, parsed as JSON where they are JSON (numbers, true, null)."""

from __future__ import annotations

import json
from typing import Any

from tui_trainer.engine.errors import JobLoadError


def parse_job_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise JobLoadError(f"--job-opt must look like KEY=VALUE with KEY a Python name, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options
