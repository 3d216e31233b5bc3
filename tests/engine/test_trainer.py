import dataclasses
import json
import math
import shutil
import time
from collections import namedtuple

import pytest
from tiny_runs import Gate, at_step, step_records, stop_at, wait_until

from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.hashing_writer import checksum_of_file
from tui_trainer.engine.checkpoints.meta import FINAL, INTERRUPTED, MANUAL, PERIODIC, checkpoint_name
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.rundir.layout import HISTORY_FILE, SUMMARY_FILE, is_locked, read_run

DiskUsage = namedtuple("DiskUsage", "total used free")
FOREVER = 1_000_000


def non_step_events(run):
    return [e for e in run.events if not isinstance(e, ev.StepCompleted)]


# --- events -----------------------------------------------------------------------------------


def test_events_are_frozen_dataclasses_in_order(tiny_run):
    run = tiny_run(max_iters=20, every_steps=10)
    run.run()
    assert isinstance(run.events[0], ev.Started) and run.events[0].step == 0 and run.events[0].target == 20
    finished = run.events[-1]
    assert finished == ev.Finished(20, "target", time=finished.time)
    assert [e.step for e in run.of(ev.StepCompleted)] == list(range(1, 21))
    for event in run.events:
        assert dataclasses.is_dataclass(event) and type(event).__dataclass_params__.frozen
        assert event.time > 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.time = 0.0
    assert [(type(e).__name__, e.step) for e in non_step_events(run)[1:-1]] == [
        ("Evaluated", 10),
        ("CheckpointSaved", 10),
        ("Evaluated", 20),
        ("CheckpointSaved", 20),
    ]


def test_each_save_is_evaluated_first_when_eval_before_save(tiny_run):
    run = tiny_run(max_iters=30, every_steps=7)
    run.run()
    saves = run.of(ev.CheckpointSaved)
    assert [s.step for s in saves] == [7, 14, 21, 28, 30]
    for save in saves:
        before = run.events[run.events.index(save) - 1]
        assert isinstance(before, ev.Evaluated) and before.step == save.step
        assert math.isfinite(before.metrics["val_loss"])


def test_without_eval_before_save_only_the_final_save_is_evaluated(tiny_run):
    run = tiny_run(max_iters=20, every_steps=5, eval_before_save=False)
    run.run()
    assert [e.step for e in run.of(ev.Evaluated)] == [20]
    assert run.checkpoints() == {5: PERIODIC, 10: PERIODIC, 15: PERIODIC, 20: PERIODIC}
    assert CheckpointStore(run.run_dir, read_run(run.run_dir).run_id).best().meta.step == 20


def test_log_every_and_eval_every(tiny_run):
    run = tiny_run(max_iters=20, log_every=3, eval_every=4)
    run.run()
    assert [e.step for e in run.of(ev.StepCompleted)] == [3, 6, 9, 12, 15, 18, 20]
    assert [e.step for e in run.of(ev.Evaluated)] == [4, 8, 12, 16, 20]
    assert [r["step"] for r in step_records(run.history())] == [3, 6, 9, 12, 15, 18, 20]


# --- checkpoints and retention ----------------------------------------------------------------


def test_periodic_checkpoints_every_n_steps_then_a_final_one(tiny_run):
    run = tiny_run(max_iters=45, every_steps=10)
    result = run.run()
    assert run.checkpoints() == {10: PERIODIC, 20: PERIODIC, 30: PERIODIC, 40: PERIODIC, 45: FINAL}
    assert result.last_checkpoint == run.run_dir / checkpoint_name(45)
    assert read_run(run.run_dir).state == "finished"


def test_a_final_checkpoint_on_a_periodic_step_is_not_saved_twice(tiny_run):
    run = tiny_run(max_iters=20, every_steps=10)
    run.run()
    assert [s.step for s in run.of(ev.CheckpointSaved)] == [10, 20]


def test_checkpoints_verify_and_load(tiny_run):
    run = tiny_run(max_iters=10, every_steps=5)
    run.run()
    store = CheckpointStore(run.run_dir, read_run(run.run_dir).run_id)
    for stored in store.list():
        assert stored.meta.checksum == checksum_of_file(stored.path)
        assert store.integrity_problem(stored) is None
        state = load_checkpoint(stored.path)
        assert state["meta"]["step"] == stored.meta.step
        assert set(state["model"]) == set(run.trainer.job.model.state_dict())


def test_done_means_keep_last_3_leaves_the_last_three_and_the_best(tiny_run):
    run = tiny_run(max_iters=300, every_steps=50, keep_last=3)
    run.run()
    store = CheckpointStore(run.run_dir, read_run(run.run_dir).run_id)
    best = store.best()
    assert best is not None
    assert set(run.checkpoints()) == {200, 250, 300} | {best.meta.step}
    evaluated = {e.step: e.metrics["val_loss"] for e in run.of(ev.Evaluated)}
    assert best.meta.val_loss == min(evaluated.values())
    pruned = [p for e in run.of(ev.CheckpointPruned) for p in e.paths]
    assert all(not (run.run_dir / p).exists() for p in pruned)


# --- history ----------------------------------------------------------------------------------


def test_history_has_one_line_per_step_and_per_eval(tiny_run):
    run = tiny_run(max_iters=25, every_steps=10)
    run.run()
    lines = (run.run_dir / HISTORY_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    assert len(records) == len(steps) + len(evals)
    assert [r["step"] for r in steps] == list(range(1, 26))
    assert [r["step"] for r in evals] == [10, 20, 25]
    completed = {e.step: e for e in run.of(ev.StepCompleted)}
    for record in steps:
        assert record["loss"] == completed[record["step"]].loss
        assert record["lr"] == completed[record["step"]].lr
        assert record["epoch"] == 0


def test_training_history_summarises_each_epoch(tiny_run):
    run = tiny_run(max_iters=20, every_steps=10)
    run.run()
    summary = json.loads((run.run_dir / SUMMARY_FILE).read_text())
    assert set(summary) >= {"train_loss", "val_loss", "epochs"}
    assert summary["epochs"] == [0]
    losses = [e.loss for e in run.of(ev.StepCompleted)]
    assert summary["train_loss"] == [pytest.approx(sum(losses) / len(losses))]
    assert summary["val_loss"] == [run.of(ev.Evaluated)[-1].metrics["val_loss"]]


def test_history_is_readable_while_training(tiny_run):
    run = tiny_run(max_iters=FOREVER)
    run.start_thread()
    wait_until(lambda: len(step_records(run.history())) >= 3)
    assert not run.of(ev.Finished)
    run.control.stop()
    run.join()


# --- control from another thread --------------------------------------------------------------


def test_pause_holds_training_and_save_now_adds_one_manual_checkpoint(tiny_run):
    run = tiny_run(max_iters=FOREVER)
    run.start_thread()
    run.wait_for(ev.StepCompleted, lambda e: e.step >= 5)
    run.control.pause()
    paused = run.wait_for(ev.Paused)
    wait_until(lambda: read_run(run.run_dir).state == "paused")
    history_size = (run.run_dir / HISTORY_FILE).stat().st_size
    assert [r["step"] for r in step_records(run.history())] == list(range(1, paused.step + 1))
    time.sleep(0.3)
    assert run.last_step() == paused.step
    assert (run.run_dir / HISTORY_FILE).stat().st_size == history_size

    run.control.save_now()
    saved = run.wait_for(ev.CheckpointSaved)
    assert (saved.step, saved.kind) == (paused.step, MANUAL)
    time.sleep(0.2)
    assert run.checkpoints() == {paused.step: MANUAL}
    assert len(run.of(ev.CheckpointSaved)) == 1

    run.control.resume()
    resumed = run.wait_for(ev.Resumed)
    assert resumed.step == paused.step
    run.wait_for(ev.StepCompleted, lambda e: e.step > paused.step + 2)
    assert read_run(run.run_dir).state == "running"
    run.control.stop()
    result = run.join()
    assert result.reason == "stopped"
    assert run.checkpoints() == {paused.step: MANUAL}  # stop() saves nothing more
    kinds = [type(e) for e in run.events]
    assert kinds.index(ev.Paused) < kinds.index(ev.CheckpointSaved) < kinds.index(ev.Resumed)


def test_save_now_on_a_step_just_saved_keeps_it_as_manual(tiny_run):
    gate = Gate(at_step(10, ev.CheckpointSaved))
    run = tiny_run(max_iters=40, every_steps=10, keep_last=1, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    run.control.save_now()
    gate.release()
    run.join()
    assert run.checkpoints()[10] == MANUAL
    assert run.checkpoints()[40] == PERIODIC


def test_stop_while_paused_ends_the_run(tiny_run):
    run = tiny_run(max_iters=FOREVER)
    run.start_thread()
    run.wait_for(ev.StepCompleted, lambda e: e.step >= 3)
    run.control.pause()
    paused = run.wait_for(ev.Paused)
    run.control.stop("interrupted")
    result = run.join()
    assert (result.reason, result.step) == ("interrupted", paused.step)
    assert run.checkpoints() == {paused.step: INTERRUPTED}


def test_raising_the_target_continues_with_a_smooth_lr(tiny_run):
    gate = Gate(at_step(30))
    run = tiny_run(max_iters=60, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    run.control.set_target(90)
    gate.release()
    result = run.join()
    assert (result.reason, result.step, result.target) == ("target", 90, 90)
    changed = run.of(ev.TargetChanged)
    assert [(c.step, c.old_target, c.new_target) for c in changed] == [(30, 60, 90)]
    assert "LR continues from" in changed[0].note
    lr = {e.step: e.lr for e in run.of(ev.StepCompleted)}
    assert lr[31] <= lr[30] and lr[31] == pytest.approx(lr[30], rel=0.01)  # no jump back up
    assert all(lr[s + 1] <= lr[s] for s in range(30, 90))
    peak = run.trainer.job.scheduler.peak_lr
    assert lr[90] == pytest.approx(peak / 10) and lr[60] > lr[90]  # the floor moved to the new target
    assert read_run(run.run_dir).settings.max_iters == 90
    assert run.checkpoints() == {90: FINAL}


def test_lowering_the_target_ends_the_run_earlier(tiny_run):
    gate = Gate(at_step(10))
    run = tiny_run(max_iters=60, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    run.control.set_target(25)
    gate.release()
    result = run.join()
    assert (result.reason, result.step) == ("target", 25)
    assert [(c.old_target, c.new_target) for c in run.of(ev.TargetChanged)] == [(60, 25)]
    assert run.checkpoints() == {25: FINAL}


def test_lowering_the_target_below_the_current_step_ends_the_run_here(tiny_run):
    gate = Gate(at_step(20))
    run = tiny_run(max_iters=FOREVER, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    run.control.set_target(5)
    gate.release()
    result = run.join()
    assert (result.reason, result.step, result.target) == ("target", 20, 20)
    changed = run.of(ev.TargetChanged)
    assert [(c.step, c.new_target) for c in changed] == [(20, 20)]
    assert "already at step 20" in changed[0].note
    assert run.checkpoints() == {20: FINAL}
    assert read_run(run.run_dir).settings.max_iters == 20
    assert isinstance(run.events[-1], ev.Finished)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_bad_commands_are_refused_at_once(bad):
    control = TrainingControl()
    with pytest.raises(ValueError, match="positive integer"):
        control.set_target(bad)
    with pytest.raises(ValueError, match=">= 0"):
        control.set_keep_last(bad if bad != 0 else -1)
    assert not control.has_requests()


def test_set_keep_last_prunes_down_at_once(tiny_run):
    gate = Gate(at_step(30, ev.CheckpointSaved))
    run = tiny_run(max_iters=40, every_steps=5, keep_last=0, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    assert set(run.checkpoints()) == {5, 10, 15, 20, 25, 30}
    run.control.set_keep_last(2)
    gate.release()
    changed = run.wait_for(ev.PolicyChanged)
    assert changed.keep_last == 2
    pruned = run.wait_for(ev.CheckpointPruned)
    assert run.events.index(pruned) == run.events.index(changed) + 1  # before another step
    run.join()
    assert read_run(run.run_dir).policy.keep_last == 2
    best = CheckpointStore(run.run_dir, read_run(run.run_dir).run_id).best().meta.step
    assert set(run.checkpoints()) == {35, 40, best}


# --- stopping ---------------------------------------------------------------------------------


def test_stop_ends_without_a_checkpoint(tiny_run):
    control = TrainingControl()
    run = tiny_run(max_iters=FOREVER, control=control, on_event=stop_at(12, control))
    result = run.run()
    assert (result.reason, result.step, result.last_checkpoint) == ("stopped", 12, None)
    assert run.checkpoints() == {}
    assert read_run(run.run_dir).state == "stopped"
    assert run.events[-1].reason == "stopped"


def test_stop_interrupted_saves_an_interrupted_checkpoint(tiny_run):
    control = TrainingControl()
    run = tiny_run(max_iters=FOREVER, every_steps=10, control=control, on_event=stop_at(13, control, "interrupted"))
    result = run.run()
    assert (result.reason, result.step) == ("interrupted", 13)
    assert run.checkpoints() == {10: PERIODIC, 13: INTERRUPTED}
    assert result.last_checkpoint == run.run_dir / checkpoint_name(13)
    assert read_run(run.run_dir).state == "interrupted"
    assert not [e for e in run.of(ev.Evaluated) if e.step == 13]  # no eval delays an interrupted save


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_ends_the_run_cleanly_and_keeps_earlier_checkpoints(tiny_run, monkeypatch):
    gate = Gate(at_step(10, ev.CheckpointSaved))
    run = tiny_run(max_iters=40, every_steps=10, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    first = run.run_dir / checkpoint_name(10)
    saved = first.read_bytes()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(1 << 30, (1 << 30) - 1000, 1000))
    gate.release()
    result = run.join()
    assert (result.reason, result.step) == ("disk_full", 20)
    failed = run.of(ev.CheckpointFailed)
    assert [(f.step, f.kind) for f in failed] == [(20, PERIODIC)]
    assert "free" in failed[0].reason and "prune" in failed[0].reason
    assert any("prune" in note for note in result.notes)
    assert run.checkpoints() == {10: PERIODIC}
    assert first.read_bytes() == saved
    assert [p.name for p in run.run_dir.iterdir() if p.name.startswith(".step")] == []
    assert read_run(run.run_dir).state == "disk_full"
    assert run.of(ev.DiskFull) == [] and not run.control.paused  # headless: the run ends, it does not wait
    assert load_checkpoint(first)["meta"]["step"] == 10


# --- a failing job ----------------------------------------------------------------------------


def test_an_error_in_the_job_is_reported_last_and_lets_the_run_dir_go(tiny_run):
    run = tiny_run(max_iters=20, every_steps=5)
    loss_fn = run.trainer.job.loss_fn

    def breaks_at_step_8(model, batch):
        if run.trainer.step == 7:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return loss_fn(model, batch)

    run.trainer.job.loss_fn = breaks_at_step_8
    with pytest.raises(RuntimeError, match="device-side assert"):
        run.run()
    failed = run.events[-1]
    assert isinstance(failed, ev.Failed) and failed.step == 7 and "RuntimeError" in failed.error
    assert not run.of(ev.Finished)
    assert read_run(run.run_dir).state == "failed"
    assert not is_locked(run.run_dir)
    assert [r["step"] for r in step_records(run.history())] == list(range(1, 8))
    assert run.checkpoints() == {5: PERIODIC}
