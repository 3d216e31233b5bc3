"""Helpers for the dashboard tests: a tiny-run `launch_fn`, and driving the app with Pilot."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.tui.app import TrainerApp

# Two cores shared with the UI thread and other test processes: one intra-op thread keeps a
# tiny step at a few milliseconds.
torch.set_num_threads(1)

TINY = {"size": "tiny"}


class TinyLaunch:
    """A `launch_fn` for `make_app`: a new tiny demo run in tmp_path.

    `gate` holds the launch until the test sets it, so a test can look at the loading state.
    """

    def __init__(self, run_dir: Path, *, max_iters: int, every_steps: int, keep_last: int, eval_every: int,
                 gated: bool) -> None:
        self.run_dir = run_dir
        self.max_iters = max_iters
        self.policy = CheckpointPolicy(every_steps=every_steps, keep_last=keep_last)
        self.eval_every = eval_every
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, **kwargs: Any) -> Any:
        self.gate.wait(30)
        return launch.start_run(
            self.run_dir,
            job_options=TINY,
            policy=self.policy,
            settings=RunSettings(max_iters=self.max_iters, eval_every=self.eval_every),
            **kwargs,
        )


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        await pilot.pause(0.05)


def screen_up(app: Any, kind: type) -> bool:
    """`kind` is on top and composed. `app.screen` is a screen as soon as it is pushed, before its
    widgets are mounted; reading or typing into it then races its compose on a loaded machine."""
    return isinstance(app.screen, kind) and app.screen.is_mounted


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def driving(app: TrainerApp, size: tuple[int, int] = (120, 40)) -> AsyncIterator[Any]:
    """`app.run_test()`, then wait for the trainer thread, so no test leaves one training."""
    try:
        async with app.run_test(size=size) as pilot:
            yield pilot
    finally:
        gate = getattr(app.runner.launch_fn, "gate", None)
        if gate is not None:
            gate.set()  # a launch still held by its test must not wait out its timeout
        assert app.runner.stop_and_wait(timeout=60), "the trainer did not stop"


def shown_text(widget: Any) -> str:
    """What a Label or Static shows, as plain text (Rich tables included)."""
    from rich.console import Console
    from textual.widgets import Static

    content = widget.content if isinstance(widget, Static) else widget.render()
    if isinstance(content, str):
        return content
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(content)
    return console.file.getvalue()
