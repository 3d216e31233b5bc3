"""`watch` on a run nobody trains shows its true state from the first frame, not RUNNING while its history loads.

A long history takes seconds to replay (one without an index is read line by line); here the
curve's read is held for two seconds to stand for one, and the state word is sampled throughout.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from textual.widgets import Label
from tui_pilot import TINY, driving, run_async

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir import history_index
from tui_trainer.engine.rundir.commands import ACK_FILE
from tui_trainer.engine.rundir.journal_records import JOURNAL_FILE
from tui_trainer.engine.rundir.layout import RunSettings, read_run, write_run
from tui_trainer.tui.attach_app import make_attach_app

CURVE_READ_S = 2.0
STEPS = 30


def _run_to(run_dir: Path, stop_at: int | None) -> None:
    """A tiny run that finishes at STEPS, or is stopped (a ctrl+c without saving) at `stop_at`."""
    trainer = launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=0, keep_last=0),
                               settings=RunSettings(max_iters=STEPS))
    if stop_at is not None:
        trainer.control.set_target(stop_at)
        trainer.run()
        info = read_run(run_dir)
        info.state, info.settings.max_iters = "stopped", STEPS
        write_run(run_dir, info)
    else:
        assert trainer.run().reason == "target"


def _older_run(run_dir: Path) -> None:
    """A run from before the journal: only run.json and the history say what happened."""
    (run_dir / JOURNAL_FILE).unlink()


def _killed(run_dir: Path) -> None:
    """Its trainer was killed (kill -9): run.json still says running, the pid in its ack is gone."""
    journal = run_dir / JOURNAL_FILE
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if json.loads(line)["type"] != "Finished"))
    info = read_run(run_dir)
    info.state = "running"
    write_run(run_dir, info)
    dead = subprocess.Popen(["true"])
    dead.wait()
    ack = {"format": 1, "trainer": "t", "applied": 0, "pid": dead.pid, "host": socket.gethostname()}
    (run_dir / ACK_FILE).write_text(json.dumps(ack))


CASES = {
    "stopped, no journal": (20, _older_run, "STOPPED"),
    "finished, no journal": (None, _older_run, "FINISHED"),
    "finished": (None, None, "FINISHED"),
    "trainer killed": (20, _killed, "STOPPED"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_state_word_is_true_from_the_first_frame_while_a_long_history_loads(tmp_path, monkeypatch, case):
    stop_at, damage, word = CASES[case]
    run_dir = tmp_path / "run"
    _run_to(run_dir, stop_at)
    if damage is not None:
        damage(run_dir)
    read_curves = history_index.read_curves

    def long_history(*args, **kwargs):
        time.sleep(CURVE_READ_S)
        return read_curves(*args, **kwargs)

    monkeypatch.setattr(history_index, "read_curves", long_history)
    app = make_attach_app(run_dir)
    seen: list[tuple[str, int]] = []

    async def scenario():
        async with driving(app) as pilot:
            deadline = time.monotonic() + CURVE_READ_S + 20
            while not len(app.model.train) and time.monotonic() < deadline:
                seen.append((str(app.query_one("#run-state", Label).render()), len(app.model.train)))
                await pilot.pause(0.05)
            seen.append((str(app.query_one("#run-state", Label).render()), len(app.model.train)))

    run_async(scenario)
    words = [w for w, _ in seen]
    assert set(words) <= {"LOADING", word}, words  # never RUNNING, not for one frame
    assert (word, 0) in seen, seen  # and said while the curve was still loading
    assert seen[-1][0] == word and seen[-1][1] > 0
    assert app.model.step == (stop_at or STEPS)
