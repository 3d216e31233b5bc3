"""A full disk under the dashboard: the run pauses, a red alert says how much room the save needs.

And under `watch`, a headless run that ended on a full disk shows as such.
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Label
from tui_pilot import driving, run_async, screen_up, wait_for

from tests.full_disk import FullDisk
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunInfo, RunSettings, store_for, write_run
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.session.run_follower import RunFollower
from tui_trainer.tui.app import make_app
from tui_trainer.tui.run_model import RunModel
from tui_trainer.tui.screens.disk_full_modal import DiskFullScreen
from tui_trainer.tui.screens.export_modal import ExportScreen
from tui_trainer.tui.screens.prune_modal import PruneScreen
from tui_trainer.tui.widgets.event_log import EventLog

FREE_BYTES = 900


@pytest.fixture
def disk(monkeypatch):
    return FullDisk(monkeypatch)


def _saved_steps(run_dir) -> list[int]:
    return [c.meta.step for c in store_for(run_dir).list()] if run_dir.is_dir() else []


def _header(app) -> str:
    return str(app.query_one("#run-state", Label).render())


def _alert_text(screen) -> str:
    return "\n".join(str(label.render()) for label in screen.query(Label))


async def _full_after_one_save(pilot, app, disk, run_dir) -> DiskFullScreen:
    """Too little room from the start: the save at step 10 goes through unchecked (its size is not
    known yet), the one at step 20 is checked against that size and does not fit."""
    disk.free = FREE_BYTES
    await wait_for(pilot, lambda: screen_up(app, DiskFullScreen), what="the disk-full alert")
    assert _saved_steps(run_dir) == [10]
    return app.screen


async def _alert_again(pilot, app, alerts_before: int) -> None:
    """p with the disk still full: the retry fails and a fresh alert comes up."""
    await pilot.press("p")
    await wait_for(pilot, lambda: _disk_full_lines(app) > alerts_before and screen_up(app, DiskFullScreen),
                   what="a fresh alert")


def _disk_full_lines(app) -> int:
    return sum(1 for line in app.model.log if line.level == "error" and line.text.startswith("disk full"))


def test_the_alert_gives_the_numbers_and_dismiss_prune_export_leave_the_run_paused(tiny_launch, disk):
    launch_fn = tiny_launch(every_steps=10)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            alert = await _full_after_one_save(pilot, app, disk, launch_fn.run_dir)
            event = app.model.disk_full
            assert (event.step, event.kind, event.free_bytes) == (20, "periodic", FREE_BYTES)
            shown = _alert_text(alert)
            assert "ERROR" in shown and "disk full" in shown and "step 20" in shown
            assert f"needs about {human_bytes(event.needed_bytes)}" in shown and "900 B is free" in shown
            assert "step_00000020.pt" in shown
            assert _header(app) == "PAUSED: DISK FULL"
            written = app.query_one(EventLog).lines_written
            assert any(line.startswith("error") and "disk full" in line and "900 B is free" in line
                       for line in written), written

            await pilot.press("escape")  # dismiss: the run stays paused, nothing written
            await wait_for(pilot, lambda: not isinstance(app.screen, DiskFullScreen), what="the alert to close")
            await pilot.pause(0.6)
            assert app.runner.trainer.step == 20 and app.model.state == "paused"
            assert _header(app) == "PAUSED: DISK FULL"
            assert _saved_steps(launch_fn.run_dir) == [10]

            await _alert_again(pilot, app, 1)
            await pilot.press("e")  # the export modal, on the selected checkpoint
            await wait_for(pilot, lambda: screen_up(app, ExportScreen), what="the export modal")
            await pilot.press("escape")

            await _alert_again(pilot, app, 2)
            await pilot.press("x")  # the prune preview
            await wait_for(pilot, lambda: screen_up(app, PruneScreen), what="the prune modal")
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert app.runner.trainer.step == 20 and _saved_steps(launch_fn.run_dir) == [10]

            disk.free = None  # room made elsewhere
            await pilot.press("p")
            await wait_for(pilot, lambda: 20 in _saved_steps(launch_fn.run_dir), what="the retried save")
            await wait_for(pilot, lambda: app.model.step > 21, what="training to go on")
            assert _header(app) == "RUNNING"

    run_async(scenario)


def test_resume_from_the_alert_after_making_room_saves_and_trains_on(tiny_launch, disk):
    launch_fn = tiny_launch(every_steps=10)
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await _full_after_one_save(pilot, app, disk, launch_fn.run_dir)
            disk.free = None
            await pilot.press("r")
            await wait_for(pilot, lambda: 20 in _saved_steps(launch_fn.run_dir), what="the retried save")
            await wait_for(pilot, lambda: app.model.step > 21, what="training to go on")
            assert not isinstance(app.screen, DiskFullScreen)
            assert app.model.disk_full is None and _header(app) == "RUNNING"
            assert any("saved step_00000020.pt" in line.text for line in app.model.log)

    run_async(scenario)


def test_watch_shows_a_headless_run_that_ended_on_a_full_disk(tmp_path):
    info = RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job", settings=RunSettings(max_iters=100),
                   state="running")
    write_run(tmp_path, info)
    with open(tmp_path / HISTORY_FILE, "w") as f:
        f.write(json.dumps({"step": 20, "epoch": 0, "loss": 3.0, "lr": 0.01, "time": 10.0}) + "\n")
    events: list = []
    follower, model = RunFollower(tmp_path, events.append), RunModel()
    follower.poll()
    info.state = "disk_full"  # what a headless trainer writes as it exits with 4
    write_run(tmp_path, info)
    follower.poll()
    model.apply(events)
    assert model.state == "failed" and model.end_reason == "disk_full"
    assert any(line.level == "error" and "disk is full" in line.text for line in model.log)


def test_a_history_write_that_does_not_fit_pauses_with_the_alert_and_p_writes_it_all(tiny_launch, disk):
    launch_fn = tiny_launch(max_iters=300)
    app = make_app(launch_fn)
    run_dir = launch_fn.run_dir

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.step >= 20, what="training under way")
            disk.refuse(HISTORY_FILE)
            await wait_for(pilot, lambda: screen_up(app, DiskFullScreen), what="the disk-full alert")
            shown = _alert_text(app.screen)
            assert "ERROR: disk full" in shown and "history.jsonl could not be written" in shown
            assert "Nothing is lost" in shown
            assert _header(app) == "PAUSED: DISK FULL"
            assert any(line.level == "error" and "history.jsonl could not be written" in line.text
                       for line in app.model.log)
            disk.make_room()
            await pilot.press("escape")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish", timeout=60)

    run_async(scenario)
    records = [json.loads(line) for line in (run_dir / HISTORY_FILE).read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 301))  # every step once, none torn
