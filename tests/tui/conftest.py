"""Fixtures for the dashboard tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tui_pilot import TinyLaunch


@pytest.fixture(autouse=True)
def own_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config dir per test: no test reads the user's remembered theme or writes to it."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return config / "tui-trainer"


@pytest.fixture
def tiny_launch(tmp_path: Path) -> Callable[..., TinyLaunch]:
    def make(*, max_iters: int = 100_000, every_steps: int = 0, keep_last: int = 0, eval_every: int = 0,
             gated: bool = False) -> TinyLaunch:
        return TinyLaunch(tmp_path / "run", max_iters=max_iters, every_steps=every_steps, keep_last=keep_last,
                          eval_every=eval_every, gated=gated)

    return make
