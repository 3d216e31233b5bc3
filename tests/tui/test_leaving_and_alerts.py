"""Leaving the attached dashboard says what was saved and what to type next; ctrl+c exits 130; a run
that ends while the dashboard shows it rings the bell and asks for a desktop notification (OSC 9)."""

from __future__ import annotations

import threading
import time

from tui_pilot import TINY, driving, run_async, wait_for

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.tui.attach_app import make_attach_app


def _finished_run(run_dir, to: int = 20) -> None:
    trainer = launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=10, keep_last=0),
                               settings=RunSettings(max_iters=to))
    assert trainer.run().reason == "target"


def _leave_finished_run_with(tmp_path, key: str):
    run_dir = tmp_path / "run"
    _finished_run(run_dir)
    app = make_attach_app(run_dir)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the finished run")
            await pilot.press(key)
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    run_async(scenario)
    return run_dir, app


def test_ctrl_c_on_a_finished_run_exits_130_naming_its_checkpoint_and_the_resume_command(tmp_path):
    run_dir, app = _leave_finished_run_with(tmp_path, "ctrl+c")
    assert app.exit_status == 130
    said = "\n".join(app.exit_lines)
    assert "finished at step 20" in said and "step_00000020" in said
    assert f"tui-trainer resume {run_dir} --max-iters N" in said


def test_q_on_a_finished_run_names_its_checkpoint_too(tmp_path):
    _, app = _leave_finished_run_with(tmp_path, "q")
    assert app.exit_status == 0 and "step_00000020" in "\n".join(app.exit_lines)


def _capture_writes(app) -> list[str]:
    writes: list[str] = []
    real = app._driver.write

    def write(data: str) -> None:
        writes.append(data)
        real(data)

    app._driver.write = write
    return writes


def test_a_run_that_finishes_while_attached_rings_the_bell_and_writes_osc_9(tmp_path, monkeypatch):
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("VTE_VERSION", raising=False)
    trainer = launch.start_run(tmp_path / "run", job_options=TINY, policy=CheckpointPolicy(every_steps=0),
                               settings=RunSettings(max_iters=100_000))
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    app = make_attach_app(tmp_path / "run")

    async def scenario():
        async with driving(app) as pilot:
            writes = _capture_writes(app)
            await wait_for(pilot, lambda: app.model.step >= 3 and app.control.listening, what="some steps")
            assert not any("\a" in w for w in writes)
            trainer.control.set_target(trainer.step + 3)
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
            await pilot.pause(0.1)
            alerts = [w for w in writes if "\a" in w]
            assert sum(w.count("\a") for w in alerts) == 2  # the bell, and the OSC's terminator
            osc = next(w for w in alerts if "\x1b]9;" in w)
            assert "tui-trainer: run finished: run finished at step" in osc
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")

    try:
        run_async(scenario)
    finally:
        trainer.control.stop()
        thread.join(30)


def test_an_end_read_from_the_journal_of_the_past_rings_nothing_and_a_served_tab_gets_no_osc(tmp_path):
    _finished_run(tmp_path / "run")
    app = make_attach_app(tmp_path / "run")

    async def scenario():
        async with driving(app) as pilot:
            writes = _capture_writes(app)
            await wait_for(pilot, lambda: app.model.state == "finished", what="the finished run")
            await pilot.pause(0.2)
            assert not any("\a" in w for w in writes)  # it ended before this dashboard opened
            type(app).is_web = property(lambda self: True)
            try:
                app.alert_on([ev.Finished(20, "target", time=time.time())])
            finally:
                del type(app).is_web
            assert writes[-1] == "\a"
            await pilot.press("q")

    run_async(scenario)
