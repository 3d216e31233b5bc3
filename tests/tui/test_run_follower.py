"""Following a run dir written by another process, as engine events (files made by hand, no torch)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tui_trainer.engine.atomic import atomic_write_json
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, sidecar_path
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.commands import ACK_FILE, write_json_atomic
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunInfo, RunSettings, write_run
from tui_trainer.session.run_follower import RunFollower
from tui_trainer.session.runner import Launched
from tui_trainer.tui.run_model import RunModel


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _run_dir(tmp_path, state="running", target=100):
    info = RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job", settings=RunSettings(max_iters=target), state=state)
    write_run(tmp_path, info)
    return info


def _append(tmp_path, *records):
    with open(tmp_path / HISTORY_FILE, "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def _follower(tmp_path):
    events, clock = [], Clock()
    return RunFollower(tmp_path, events.append, clock=clock), events, clock


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_the_history_so_far_arrives_at_once_and_what_follows_step_by_step(tmp_path):
    from tui_trainer.session.runner import CurveLoaded

    _run_dir(tmp_path)
    _append(tmp_path, {"step": 1, "epoch": 0, "loss": 3.0, "lr": 0.01, "time": 10.0},
            {"step": 2, "epoch": 0, "loss": None, "lr": 0.01, "time": 10.5},
            {"step": 2, "val_loss": 2.5, "time": 10.6})
    follower, events, _ = _follower(tmp_path)
    follower.poll()
    started = _of(events, ev.Started)[0]
    assert started.run_id == "r1" and started.target == 100 and started.time == 10.0
    curve = _of(events, CurveLoaded)[0]
    assert list(curve.steps) == [1, 2] and curve.losses[0] == 3.0 and math.isnan(curve.losses[1])
    assert list(curve.val_steps) == [2] and list(curve.val_losses) == [2.5]
    assert "no index" in curve.note  # written by hand, as an older version would have: said once
    assert _of(events, ev.StepCompleted) == []

    events.clear()
    follower.poll()
    assert _of(events, ev.StepCompleted) == [] and _of(events, CurveLoaded) == []  # nothing new, nothing re-read
    _append(tmp_path, {"step": 3, "epoch": 0, "loss": 2.0, "lr": 0.01, "time": 11.5},
            {"step": 4, "epoch": 0, "loss": 1.9, "lr": 0.01, "time": 13.0},
            {"step": 4, "val_loss": 1.8, "time": 13.1})
    follower.poll()
    assert [s.step for s in _of(events, ev.StepCompleted)] == [3, 4]
    assert _of(events, ev.StepCompleted)[1].steps_per_sec == 1 / 1.5  # 1 step in the 1.5 s since step 3
    assert _of(events, ev.Evaluated)[0].metrics == {"val_loss": 1.8}


def test_state_changes_in_run_json_become_pause_resume_target_and_end(tmp_path):
    info = _run_dir(tmp_path)
    _append(tmp_path, {"step": 1, "epoch": 0, "loss": 3.0, "lr": 0.01, "time": 10.0})
    follower, events, _ = _follower(tmp_path)
    model = RunModel()
    follower.poll()

    def step(**changes):
        for key, value in changes.items():
            setattr(info, key, value)
        write_run(tmp_path, info)
        events.clear()
        follower.poll()
        model.apply(list(events))
        return [type(e).__name__ for e in events if not isinstance(e, Launched)]

    model.apply(list(events))
    assert model.state == "running"
    assert step(state="paused") == ["Paused"] and model.state == "paused"
    assert step(state="running") == ["Resumed"] and model.state == "running"
    info.settings.max_iters = 300
    assert step() == ["TargetChanged"] and model.target == 300
    assert step(state="finished") == ["Finished"] and model.state == "finished"
    assert step(state="running") == ["Started"] and model.state == "running"  # a resume took it over


def test_a_killed_trainer_shows_as_stopped_with_a_warning(tmp_path):
    _run_dir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json_atomic(tmp_path / ACK_FILE, {"format": 1, "trainer": "t1", "applied": 0, "pid": dead.pid,
                                            "host": __import__("socket").gethostname(), "device": "cuda:0"})
    follower, events, _ = _follower(tmp_path)
    model = RunModel()
    follower.poll()
    model.apply(events)
    assert model.state == "stopped" and model.device == "cuda:0"
    assert any("gone" in line.text and line.level == "info" for line in model.log)


def test_checkpoints_appearing_and_disappearing_reach_the_log(tmp_path):
    _run_dir(tmp_path)
    follower, events, clock = _follower(tmp_path)
    follower.poll()  # the first look takes what is there as known
    meta = CheckpointMeta("step_00000010.pt", 10, run_id="r1", size_bytes=2000)
    (tmp_path / meta.name).write_bytes(b"x" * 2000)
    atomic_write_json(sidecar_path(tmp_path / meta.name), meta.to_json())
    clock.now += 1.0
    follower.poll()
    saved = _of(events, ev.CheckpointSaved)
    assert [(s.step, s.size_bytes) for s in saved] == [(10, 2000)]
    (tmp_path / meta.name).unlink()
    sidecar_path(tmp_path / meta.name).unlink()
    clock.now += 1.0
    follower.poll()
    pruned = _of(events, ev.CheckpointPruned)
    assert pruned[0].freed_bytes == 2000 and pruned[0].paths[0].endswith("step_00000010.pt")
    model = RunModel()
    model.apply(events)
    assert any(line.text.startswith("saved step_00000010.pt (periodic, 2.0 KB)") for line in model.log)


def test_garbled_or_missing_files_do_not_break_following(tmp_path):
    follower, events, _ = _follower(tmp_path)
    follower.poll()  # no run.json yet
    assert events == []
    (tmp_path / "run.json").write_text("{garbage")
    follower.poll()
    assert events == []
    _run_dir(tmp_path)
    (tmp_path / HISTORY_FILE).write_text('not json\n{"step": 1, "epoch": 0, "loss": 1.0, "lr": 0.1, "time": 1.0}\n')
    (tmp_path / ACK_FILE).write_text("[1, 2")
    follower.poll()
    from tui_trainer.session.runner import CurveLoaded

    assert list(_of(events, CurveLoaded)[0].steps) == [1] and follower.ack is None


def test_a_followed_run_is_timed_by_its_training_time_so_a_pause_is_not_step_time(tmp_path):
    _run_dir(tmp_path)
    follower, events, _ = _follower(tmp_path)
    follower.poll()
    # 20 steps/s of training; a minute's pause (wall time) between steps 10 and 11.
    for step in range(1, 21):
        wall = 100.0 + step * 0.05 + (60.0 if step > 10 else 0.0)
        _append(tmp_path, {"step": step, "epoch": 0, "loss": 1.0, "lr": 0.1, "time": wall, "elapsed": step * 0.05,
                           "grad_norm": 0.5, "samples_per_sec": 640.0, "accuracy": 0.25})
    follower.poll()
    last = _of(events, ev.StepCompleted)[-1]
    assert 19.9 <= last.steps_per_sec <= 20.1 and last.elapsed == 1.0
    assert (last.grad_norm, last.samples_per_sec, last.lrs, last.scalars) == (0.5, 640.0, (0.1,), {"accuracy": 0.25})


def test_an_older_history_without_training_time_is_timed_by_its_clock(tmp_path):
    _run_dir(tmp_path)
    follower, events, _ = _follower(tmp_path)
    follower.poll()
    _append(tmp_path, *({"step": i, "epoch": 0, "loss": 1.0, "lr": 0.1, "time": 10.0 + i * 0.01} for i in range(1, 251)))
    follower.poll()
    last = _of(events, ev.StepCompleted)[-1]
    assert 99 <= last.steps_per_sec <= 101 and last.grad_norm is None and last.scalars == {}


def _journal(tmp_path, *items):
    from tui_trainer.engine.rundir.journal import JournalWriter

    journal = JournalWriter(tmp_path)
    for item in items:
        if isinstance(item, tuple):
            journal.output(*item)
        else:
            journal.record(item)
    journal.close()


def test_a_viewer_attached_later_learns_from_the_journal_what_the_trainer_said(tmp_path):
    _run_dir(tmp_path, state="paused")
    _append(tmp_path, *({"step": s, "epoch": 0, "loss": 3.0, "lr": 0.01, "time": 10.0 + s} for s in range(1, 41)))
    _journal(tmp_path,
             ev.Started("elsewhere/run", "r1", "job", 0, 100, "cpu", time=10.0),
             ("epoch 0 begins", "info"),
             ev.TargetChanged(20, 100, 40, "the LR decays from 3.0e-04 to its floor by step 40", time=30.0),
             ev.CheckpointSaved(str(tmp_path / "step_00000040.pt"), 40, "periodic", 2000, 0.01, time=50.0),
             ev.DiskFull(40, "final", "step_00000040.pt", 10_000, 100, str(tmp_path), "no room", time=51.0))
    follower, events, _ = _follower(tmp_path)
    follower.poll()
    model = RunModel()
    model.apply(list(events))
    assert model.run_dir == str(tmp_path)  # not the trainer's own relative name for it
    assert model.state == "paused" and model.target == 40 and model.step == 40
    alert = model.take_disk_full_alert()
    assert alert is not None and alert.needed_bytes == 10_000 and alert.free_bytes == 100
    said = [line.text for line in model.log]
    assert any("the LR decays from 3.0e-04" in text for text in said)
    assert any(line.text == "epoch 0 begins" and line.source == "job" for line in model.log)
    assert any(text.startswith("saved step_00000040.pt") for text in said)

    events.clear()
    follower.poll()  # run.json says paused too: nothing is told twice
    assert [e for e in events if not isinstance(e, Launched)] == []


def test_a_disk_full_pause_that_was_resolved_raises_no_alert_on_attach(tmp_path):
    _run_dir(tmp_path)
    _journal(tmp_path,
             ev.Started(str(tmp_path), "r1", "job", 0, 100, "cpu", time=10.0),
             ev.DiskFull(40, "periodic", "step_00000040.pt", 10_000, 100, str(tmp_path), "no room", time=11.0),
             ev.Resumed(40, time=12.0))
    follower, events, _ = _follower(tmp_path)
    follower.poll()
    model = RunModel()
    model.apply(list(events))
    assert model.state == "running" and model.take_disk_full_alert() is None
