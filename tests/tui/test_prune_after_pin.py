"""The dashboard's prune (x) and the runs screen's (R, x), driven with Pilot: a checkpoint pinned
from another terminal while the preview is open is kept, with its sidecar, and the app says so."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input
from tui_pilot import driving, run_async, screen_up, wait_for

from tests.factories import make_run
from tui_trainer.engine.checkpoints.meta import sidecar_path
from tui_trainer.engine.checkpoints.previewed_prune import PINNED_SINCE
from tui_trainer.engine.rundir.layout import read_run, store_for, write_run
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.screens.prune_modal import PruneScreen
from tui_trainer.tui.screens.runs_prune_modal import RunsPruneScreen
from tui_trainer.tui.screens.runs_screen import RunsScreen
from tui_trainer.tui.widgets.event_log import EventLog

STEPS = (100, 200, 300, 400, 500)  # val_loss falls with the step: 500 is best and latest


def _finished_run(path: Path) -> Path:
    run_dir = make_run(path, steps=STEPS)
    info = read_run(run_dir)
    info.state = "finished"
    write_run(run_dir, info)
    return run_dir


def _on_disk(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("*.pt"))


def _assert_pinned_and_whole(path: Path) -> None:
    assert path.is_file() and sidecar_path(path).is_file()
    assert json.loads(sidecar_path(path).read_text())["pinned"] is True
    assert store_for(path.parent).orphan_sidecars() == []


def _messages(app) -> list[str]:
    return [n.message for n in app._notifications]


async def _preview(pilot, app, screen_type, keep: str):
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type), what=f"{screen_type.__name__}")
    modal = app.screen
    modal.query_one(Input).value = keep
    await wait_for(pilot, lambda: modal.preview is not None and modal.preview.keep_last == int(keep),
                   what=f"the preview for keep-last {keep}")
    return modal


def test_dashboard_prune_keeps_a_checkpoint_pinned_while_its_preview_was_open(tmp_path):
    run_dir = _finished_run(tmp_path / "run")
    app = make_attach_app(run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) == len(STEPS), what="the checkpoints")
            modal = await _preview(pilot, app, PruneScreen, "1")
            previewed = modal.preview.names
            assert previewed == tuple(f"step_{s:08d}.pt" for s in (100, 200, 300, 400))
            pinned = previewed[1]
            store_for(run_dir).set_pinned(pinned, True)  # `ckpt pin` from another terminal

            await pilot.press("enter")
            says = f"kept {pinned}: {PINNED_SINCE}"
            log = app.query_one(EventLog)
            await wait_for(pilot, lambda: any("pruned 3 checkpoints" in line for line in log.lines_written),
                           what="the prune's summary")
            assert any(says in line for line in log.lines_written)
            assert says in _messages(app)
            summary = next(line for line in log.lines_written if "pruned 3 checkpoints" in line)
            assert pinned not in summary
            assert _on_disk(run_dir) == sorted([pinned, "step_00000500.pt"])
            _assert_pinned_and_whole(run_dir / pinned)

    run_async(scenario)


def test_runs_screen_prune_keeps_a_checkpoint_pinned_while_its_preview_was_open(tmp_path):
    watched = _finished_run(tmp_path / "watched")
    other = _finished_run(tmp_path / "other")
    app = make_attach_app(watched)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.run_dir is not None, what="the watched run")
            await pilot.press("R")
            await wait_for(pilot, lambda: screen_up(app, RunsScreen) and app.screen.index is not None,
                           what="the runs screen")
            modal = await _preview(pilot, app, RunsPruneScreen, "1")
            assert "other/step_00000300.pt" in modal.preview.keys
            store_for(other).set_pinned("step_00000300.pt", True)  # `ckpt pin` from another terminal

            await pilot.press("enter")
            says = f"kept other/step_00000300.pt: {PINNED_SINCE}"
            await wait_for(pilot, lambda: says in _messages(app), what="the kept note")
            pruned = next(m for m in _messages(app) if m.startswith("pruned "))
            assert "other/step_00000300.pt" not in pruned and "pruned 7 checkpoints" in pruned
            assert _on_disk(other) == ["step_00000300.pt", "step_00000500.pt"]
            assert _on_disk(watched) == ["step_00000500.pt"]
            _assert_pinned_and_whole(other / "step_00000300.pt")

    run_async(scenario)
