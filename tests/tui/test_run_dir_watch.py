"""Files changed from outside the dashboard (another shell, `ckpt prune`) show up within a second."""

from __future__ import annotations

import time

from tui_pilot import driving, run_async, wait_for

from tui_trainer.engine.checkpoints.meta import MANUAL, CheckpointMeta
from tui_trainer.engine.rundir.layout import read_run, store_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.run_dir_changes import is_relevant
from tui_trainer.tui.run_dir_watcher import RunDirWatcher
from tui_trainer.tui.widgets.disk_panel import DiskPanel


def _names(app) -> set[str]:
    return {row.name for row in app.checkpoints}


def test_checkpoints_deleted_or_added_from_outside_reach_the_table_and_disk_panel(tiny_launch):
    launch_fn = tiny_launch(every_steps=20)
    app = make_app(launch_fn)
    observer = None

    async def scenario():
        nonlocal observer
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.checkpoints) >= 3, what="three checkpoints")
            await pilot.press("p")
            await wait_for(pilot, lambda: app.model.state == "paused", what="the pause")
            await pilot.pause(0.5)
            disk = app.query_one(DiskPanel)
            await wait_for(pilot, lambda: disk.forecast is not None and disk.forecast.count_now == len(app.checkpoints),
                           what="the disk panel to count them")
            count = disk.forecast.count_now
            store = store_for(launch_fn.run_dir)
            victim = sorted(_names(app))[1]

            started = time.monotonic()
            store.delete(victim)  # as `tui-trainer ckpt delete` in another shell would
            await wait_for(pilot, lambda: victim not in _names(app), timeout=5, what="the row to go")
            assert time.monotonic() - started < 1.5  # the watcher, not the 15 s refresh
            await wait_for(pilot, lambda: disk.forecast.count_now == count - 1, timeout=2, what="the disk panel")

            info = read_run(launch_fn.run_dir)
            extra = CheckpointMeta("step_09999999.pt", 9_999_999, kind=MANUAL, run_id=info.run_id)
            store.save(extra, lambda f: f.write(b"\0" * 1000))
            await wait_for(pilot, lambda: extra.name in _names(app), timeout=1.5, what="the new row")
            observer = app.watcher._observer
            assert observer is not None and observer.is_alive()

    run_async(scenario)
    assert not observer.is_alive() and app.watcher.run_dir is None  # stopped on exit


def test_a_burst_of_changes_is_one_refresh_and_reads_do_not_count(tmp_path):
    clock = [0.0]
    watcher = RunDirWatcher(clock=lambda: clock[0])
    for t in (0.0, 0.05, 0.1):
        clock[0] = t
        watcher.changed()
    assert not watcher.take_change()  # still bursting
    clock[0] = 0.35
    assert watcher.take_change() and not watcher.take_change()
    # A steady stream still shows within MAX_DELAY_S.
    for i in range(10):
        clock[0] = 1.0 + i * 0.1
        watcher.changed()
    clock[0] = 1.65
    assert watcher.take_change()

    assert is_relevant("step_00000100.pt") and is_relevant("step_00000100.meta.json") and is_relevant("run.json")
    assert not is_relevant(".step_00000100.pt.tmp-12-ab") and not is_relevant("history.jsonl")
    assert not is_relevant(".lock") and not is_relevant("control.json")

    # Listing and reading the dir (as a refresh does) is not a change.
    (tmp_path / "step_00000001.meta.json").write_text("{}")
    real = RunDirWatcher()
    real.watch(str(tmp_path))
    try:
        time.sleep(0.2)
        before = real.events
        store_for(tmp_path).list()
        (tmp_path / "step_00000001.meta.json").read_text()
        time.sleep(0.3)
        assert real.events == before
        (tmp_path / "step_00000002.meta.json").write_text("{}")
        deadline = time.monotonic() + 2
        while real.events == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert real.events > before

        # Writing a big file is not one event per write: created, then closed after writing.
        time.sleep(0.3)
        before = real.events
        with open(tmp_path / "step_00000003.pt", "wb") as f:
            for _ in range(200):
                f.write(b"\0" * 4096)
                f.flush()
        time.sleep(0.3)
        assert 1 <= real.events - before <= 2
    finally:
        real.stop()
