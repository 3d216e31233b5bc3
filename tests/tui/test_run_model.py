"""The dashboard's view of a run, fed engine events directly (no Textual, no torch)."""

from __future__ import annotations

from tui_trainer.engine.loop import events as ev
from tui_trainer.session.runner import EventBuffer, LaunchFailed, RunEnded
from tui_trainer.tui.run_model import Changed, RunModel


def _started(**kw):
    fields = dict(run_dir="/runs/demo-1", run_id="r1", job="tui_trainer.demo.job:make_job", step=0, target=100,
                  device="cpu")
    fields.update(kw)
    return ev.Started(**fields, time=1000.0)


def _step(step, loss=2.0):
    return ev.StepCompleted(step, 0, loss, 1e-3, 50.0, 800.0, 100, time=1000.0 + step)


def test_a_run_goes_from_loading_to_running_to_finished():
    model = RunModel()
    assert model.state == "loading" and not model.training
    changed = model.apply([_started(), _step(1), _step(2)])
    assert model.state == "running" and model.training
    assert model.run_name == "demo-1" and model.job_name == "demo"
    assert model.step == 2 and len(model.train) == 2
    assert Changed.CHART in changed and Changed.STATUS in changed
    assert model.eta_seconds() == (100 - 2) / 50.0

    model.apply([ev.Finished(100, "target", time=1200.0), RunEnded("target", time=1200.0)])
    assert model.state == "finished" and not model.training
    assert model.elapsed_seconds(now=5000.0) == 200.0  # the clock stops when the run ends


def test_pause_resume_target_and_checkpoint_events_reach_the_log():
    model = RunModel()
    model.apply([_started()])
    model.take_log()
    changed = model.apply([
        ev.Paused(5, time=1.0),
        ev.TargetChanged(5, 100, 600, "LR re-anchored", time=2.0),
        ev.CheckpointSaved("/runs/demo-1/step_00000005.pt", 5, "manual", 2048, 0.25, time=3.0),
    ])
    assert model.state == "paused" and model.target == 600 and model.eta_seconds() is None
    assert Changed.CHECKPOINTS in changed
    lines = [line.text for line in model.take_log()]
    assert lines[0] == "paused at step 5"
    assert "600" in lines[1]
    assert "step_00000005.pt" in lines[2] and "0.25 s" in lines[2] and "manual" in lines[2]
    assert model.take_log() == []
    model.apply([ev.Resumed(5, time=4.0)])
    assert model.state == "running"


def test_evaluations_fill_the_val_series():
    model = RunModel()
    model.apply([_started(), ev.Evaluated(10, {"val_loss": 1.5, "acc": 0.3}), ev.Evaluated(20, {"acc": 0.4})])
    assert list(model.val.values) == [1.5]


def test_failures_are_states_with_the_error_kept():
    model = RunModel()
    model.apply([LaunchFailed("run dir is busy", time=1.0)])
    assert model.state == "failed" and model.error == "run dir is busy" and model.worker_done

    model = RunModel()
    model.apply([_started(), ev.Failed(7, "RuntimeError: boom", time=2.0), RunEnded("failed", error="boom")])
    assert model.state == "failed" and "boom" in model.error
    assert any(line.level == "error" for line in model.log)


def test_the_buffer_hands_over_batches_in_order():
    buffer = EventBuffer()
    for i in range(1000):
        buffer.put(i)
    assert buffer.drain() == list(range(1000))
    assert buffer.drain() == []
